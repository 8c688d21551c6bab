package notify

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/monitor"
)

//go:embed templates
var templateFS embed.FS

var (
	textTemplate = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/email.txt"))
	htmlTemplate = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/email.html"))
)

// subjectPrefix starts every subject and chat title.
const subjectPrefix = "[collector] "

// subjectServers is how many servers a subject names before "and N more".
const subjectServers = 3

// Caps on text that comes from servers (host names, error messages).
const (
	maxServerLen  = 100
	maxRuleLen    = 100
	maxSummaryLen = 300
)

// A digest is a notification laid out for people: a headline that counts
// the alerts and names the servers, and one line per alert, firing first.
type digest struct {
	ID       string
	Test     bool
	Created  string
	Subject  string // Headline with the prefix
	Headline string // "3 alerts firing on web1, web7 (+1 resolved)"
	Firing   []line
	Resolved []line
}

// A line is one alert, cleaned of control characters and capped.
type line struct {
	Server  string
	Rule    string
	Summary string
	When    string // "since 2024-05-01 10:17 UTC (2h5m)", "resolved 2024-05-01 11:02 UTC after 45m"
}

func newDigest(n alerts.Notification) digest {
	d := digest{ID: n.ID, Test: n.Test, Created: formatTime(n.Created)}
	var firingServers, resolvedServers []string
	for _, a := range n.Alerts {
		l := line{
			Server:  clean(a.Server, maxServerLen),
			Rule:    clean(a.Rule, maxRuleLen),
			Summary: clean(a.Summary, maxSummaryLen),
		}
		if a.State == monitor.AlertResolved {
			l.When = resolvedWhen(a)
			d.Resolved = append(d.Resolved, l)
			resolvedServers = appendNew(resolvedServers, l.Server)
			continue
		}
		l.When = firingWhen(a, n.Created)
		d.Firing = append(d.Firing, l)
		firingServers = appendNew(firingServers, l.Server)
	}
	switch {
	case len(d.Firing) > 0:
		d.Headline = fmt.Sprintf("%s firing on %s", count(len(d.Firing), "alert"), serverList(firingServers))
		if len(d.Resolved) > 0 {
			d.Headline += fmt.Sprintf(" (+%d resolved)", len(d.Resolved))
		}
	case len(d.Resolved) > 0:
		d.Headline = fmt.Sprintf("%s resolved on %s", count(len(d.Resolved), "alert"), serverList(resolvedServers))
	default:
		d.Headline = "no alerts"
	}
	if n.Test {
		d.Headline = "TEST: " + d.Headline
	}
	d.Subject = subjectPrefix + d.Headline
	return d
}

// renderText returns the plain-text body of an e-mail.
func (d digest) renderText() (string, error) {
	var b bytes.Buffer
	if err := textTemplate.Execute(&b, d); err != nil {
		return "", fmt.Errorf("render text: %w", err)
	}
	return b.String(), nil
}

// renderHTML returns the HTML body of an e-mail; html/template escapes
// everything that came from a server.
func (d digest) renderHTML() (string, error) {
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, d); err != nil {
		return "", fmt.Errorf("render html: %w", err)
	}
	return b.String(), nil
}

// A chatStyle says how chat kinds mark up a digest.
type chatStyle struct {
	heading  func(string) string // the headline
	section  func(string) string // "Firing", "Resolved"
	item     func(line) string   // one alert
	escape   func(string) string // applied to every field first
	maxBytes int                 // the service's limit, with room to spare
}

// renderChat lays a digest out as one chat message no longer than
// style.maxBytes: alerts that do not fit are counted in a last line.
func (d digest) renderChat(style chatStyle) string {
	esc := style.escape
	if esc == nil {
		esc = func(s string) string { return s }
	}
	var b strings.Builder
	b.WriteString(style.heading(esc(subjectPrefix + d.Headline)))
	b.WriteString("\n")
	if d.Test {
		b.WriteString("\nThis is a test notification: the channel works. No action is needed.\n")
	}
	left := len(d.Firing) + len(d.Resolved)
	full := false
	for _, sec := range []struct {
		name  string
		lines []line
	}{{"Firing", d.Firing}, {"Resolved", d.Resolved}} {
		if len(sec.lines) == 0 || full {
			continue
		}
		head := "\n" + style.section(sec.name) + "\n"
		for i, l := range sec.lines {
			l = line{Server: esc(l.Server), Rule: esc(l.Rule), Summary: esc(l.Summary), When: esc(l.When)}
			next := style.item(l) + "\n"
			if i == 0 {
				next = head + next
			}
			// Leave room for the "and N more" line.
			if b.Len()+len(next)+40 > style.maxBytes {
				full = true
				break
			}
			b.WriteString(next)
			left--
		}
	}
	if left > 0 {
		fmt.Fprintf(&b, "\n… and %d more\n", left)
	}
	return strings.TrimRight(b.String(), "\n")
}

// plainItem is one alert as plain text: server, rule, summary, since.
func plainItem(l line) string {
	return fmt.Sprintf("- %s  %s: %s — %s", l.Server, l.Rule, l.Summary, l.When)
}

// markdownItem is one alert in chat markdown.
func markdownItem(l line) string {
	return fmt.Sprintf("- **%s** %s: %s — %s", l.Server, l.Rule, l.Summary, l.When)
}

func firingWhen(a alerts.Alert, now time.Time) string {
	if a.StartsAt.IsZero() {
		return "firing"
	}
	s := "since " + formatTime(a.StartsAt)
	if !now.IsZero() && now.After(a.StartsAt) {
		s += " (" + formatDuration(now.Sub(a.StartsAt)) + ")"
	}
	return s
}

func resolvedWhen(a alerts.Alert) string {
	if a.EndsAt.IsZero() {
		return "resolved"
	}
	s := "resolved " + formatTime(a.EndsAt)
	if !a.StartsAt.IsZero() && a.EndsAt.After(a.StartsAt) {
		s += " after " + formatDuration(a.EndsAt.Sub(a.StartsAt))
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// formatDuration is d to the minute (to the second under one), in at most
// two units: "45s", "12m", "2h5m", "3d4h".
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) % 60; m > 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	}
	days := int(d.Hours()) / 24
	if h := int(d.Hours()) % 24; h > 0 {
		return fmt.Sprintf("%dd%dh", days, h)
	}
	return fmt.Sprintf("%dd", days)
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// serverList names at most subjectServers servers: "web1, web7 and 2 more".
func serverList(servers []string) string {
	if len(servers) <= subjectServers {
		return strings.Join(servers, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(servers[:subjectServers], ", "), len(servers)-subjectServers)
}

func appendNew(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

// clean makes text from a server safe for a one-line field: control
// characters (newlines included) become spaces, invalid UTF-8 is replaced,
// and it is capped at max runes with "…".
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	runes := []rune(s)
	return string(runes[:max-1]) + "…"
}
