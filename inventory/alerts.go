package inventory

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Built-in alert defaults: what a user gets with no [alerts] section.
const (
	DefaultAlertRepeat = 4 * time.Hour
	DefaultDownAfter   = 3
)

// DefaultAlertRules returns the rules every server gets unless [alerts] or
// its own [server.alerts] says otherwise: disk at 90 % (clear at 85 %),
// memory at 90 % for 3 snapshots, CPU at 95 % for 5, load at 2 per logical
// CPU for 5, swap paging at 256 pages/s for 3, memory pressure at 10 % for
// 3, CPU pressure at 20 % for 5, file handles at 90 % of the limit, a file
// system forecast full within 24 hours, and down after 3 failed attempts.
func DefaultAlertRules() AlertRules {
	return AlertRules{
		CPU:            Threshold{Above: 95, Clear: 85, For: 5},
		Memory:         Threshold{Above: 90, Clear: 85, For: 3},
		Disk:           Threshold{Above: 90, Clear: 85, For: 1},
		Load:           Threshold{Above: 2, Clear: 1.5, For: 5},
		Swap:           Threshold{Above: 256, Clear: 64, For: 3},
		MemoryPressure: Threshold{Above: 10, Clear: 5, For: 3},
		CPUPressure:    Threshold{Above: 20, Clear: 10, For: 5},
		FD:             Threshold{Above: 90, Clear: 85, For: 1},
		DiskFull:       DiskFullRule{Within: DefaultDiskFullWithin},
		Down:           DownRule{After: DefaultDownAfter},
	}
}

// DefaultDiskFullWithin is the built-in disk_full rule's horizon.
const DefaultDiskFullWithin = 24 * time.Hour

// AlertRules are the thresholds checked on every snapshot of a server.
type AlertRules struct {
	CPU    Threshold // busy %
	Memory Threshold // used %
	Disk   Threshold // root file system used %
	Load   Threshold // load1 per logical CPU
	// Swap is pages swapped in and out per second.
	Swap Threshold
	// MemoryPressure and CPUPressure are the percent of time some task
	// stalled on memory or waited for a CPU (pressure stall information;
	// hosts without it never fire).
	MemoryPressure Threshold
	CPUPressure    Threshold
	// FD is the system's file handles in use, percent of its limit.
	FD Threshold
	// DiskFull fires when a file system is forecast full within Within.
	DiskFull DiskFullRule
	// Processes fire when a keyword's matched-process count leaves [Min, Max].
	Processes []ProcessRule
	Down      DownRule
}

// DiskFullRule fires when the trend of a file system's daily peaks reaches
// 100 % within Within; Within 0 turns it off.
type DiskFullRule struct {
	Within time.Duration
}

// Enabled reports whether the rule is on.
func (r DiskFullRule) Enabled() bool { return r.Within > 0 }

// A Threshold fires when a reading is at or above Above for For consecutive
// snapshots, and resolves when a reading falls below Clear (hysteresis).
// Above == 0 turns the rule off.
type Threshold struct {
	Above float64
	Clear float64 // Above when not written
	For   int     // consecutive snapshots; 1 when not written
}

// Enabled reports whether the threshold is on.
func (t Threshold) Enabled() bool { return t.Above > 0 }

// A ProcessRule watches the matched-process count of one keyword: fewer than
// Min (crawlers died) or more than Max fires. Zero means no bound.
type ProcessRule struct {
	Keyword string
	Min     int
	Max     int
	For     int // consecutive snapshots; 1 when not written
}

// DownRule fires after After consecutive failed attempts. A changed host key
// always fires at once.
type DownRule struct {
	After int
}

// Alerts is the [alerts] table: the default rules, the repeat interval and
// the channels.
type Alerts struct {
	Rules    AlertRules    // defaults for every server; a server's Alerts has them merged
	Repeat   time.Duration // how often a firing alert is notified again
	Email    *Email        // nil: no e-mail
	Webhooks []Webhook
}

// EmailChannel is the name of the e-mail channel in logs and in the
// outbox; no webhook gets it.
const EmailChannel = "email"

// Email is [alerts.email]: where alert e-mail goes.
type Email struct {
	Server      string // host:port of the SMTP server; HostPort splits it
	From        string
	To          []string
	TLS         string // "starttls" (default), "tls" (implicit) or "none"
	Username    string
	PasswordEnv string // name of the environment variable holding the password
}

// Webhook is one [[alerts.webhook]].
type Webhook struct {
	// Name names the channel in logs and in the outbox, which keeps
	// undelivered notifications per channel name. Parse makes names unique
	// among the channels of the file: the name written, else the kind and
	// the URL's host (the kind alone with url_env), with " #<n>" added when
	// an earlier channel has that name, n being the webhook's position in
	// [[alerts.webhook]] (from 1). It depends on the file alone, never on
	// the environment or on which channels could be set up.
	Name      string
	URL       string // or the value of URLEnv
	URLEnv    string // name of an environment variable holding the URL (robot URLs carry tokens)
	Kind      string // generic (Alertmanager's payload), dingtalk, wecom, feishu or slack
	SecretEnv string // name of the environment variable holding the signing secret (SigningKinds only)
}

// alertsTable is [alerts] as written; a nil field was not written.
type alertsTable struct {
	Repeat *Duration `toml:"repeat"`
	rulesTable
	Email    *emailTable    `toml:"email"`
	Webhooks []webhookTable `toml:"webhook"`
}

// rulesTable holds the rule keys of [alerts] and of a [server.alerts].
type rulesTable struct {
	CPU       *thresholdTable `toml:"cpu"`
	Memory    *thresholdTable `toml:"memory"`
	Disk      *thresholdTable `toml:"disk"`
	Load      *thresholdTable `toml:"load"`
	Swap      *thresholdTable `toml:"swap"`
	MemPress  *thresholdTable `toml:"memory_pressure"`
	CPUPress  *thresholdTable `toml:"cpu_pressure"`
	FD        *thresholdTable `toml:"fd"`
	DiskFull  *diskFullTable  `toml:"disk_full"`
	Processes *[]processTable `toml:"processes"`
	Down      *downTable      `toml:"down"`
}

type thresholdTable struct {
	Above *float64 `toml:"above"`
	Clear *float64 `toml:"clear"`
	For   *int     `toml:"for"`
}

type processTable struct {
	Keyword string `toml:"keyword"`
	Min     *int   `toml:"min"`
	Max     *int   `toml:"max"`
	For     *int   `toml:"for"`
}

type downTable struct {
	After *int `toml:"after"`
}

type diskFullTable struct {
	Within *Duration `toml:"within"`
}

type emailTable struct {
	Server      string     `toml:"server"`
	From        string     `toml:"from"`
	To          stringList `toml:"to"`
	TLS         string     `toml:"tls"`
	Username    string     `toml:"username"`
	PasswordEnv string     `toml:"password_env"`
}

type webhookTable struct {
	Name      string `toml:"name"`
	URL       string `toml:"url"`
	URLEnv    string `toml:"url_env"`
	Kind      string `toml:"kind"`
	SecretEnv string `toml:"secret_env"`
}

// WebhookKinds are the webhook formats the collector speaks.
var WebhookKinds = []string{"generic", "dingtalk", "wecom", "feishu", "slack"}

// SigningKinds are the webhook kinds whose robots sign requests with a
// secret: the only ones that take secret_env.
var SigningKinds = []string{"dingtalk", "feishu"}

// The rules below are shared: Parse checks the file by them, and package
// notify uses them on what only the environment supplies (a URL from
// url_env) or to take a checked value apart, so that a configuration
// `collector check` accepts is one the channels accept too.

// HostPort splits Server into the SMTP server's host name and port:
// "host:port" with a host and a port from 1 to 65535.
func (e Email) HostPort() (host string, port int, err error) {
	host, p, err := net.SplitHostPort(e.Server)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", e.Server)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host name before the port", e.Server)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q has port %q, not a number from 1 to 65535", e.Server, p)
	}
	return host, port, nil
}

// CheckWebhookURL returns an error when raw is not an http or https URL
// with a host. The error never holds raw: robot URLs carry tokens.
func CheckWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("is not an http(s) URL")
	}
	return nil
}

// buildAlerts validates [alerts] and applies the defaults.
func (c *checker) buildAlerts(t alertsTable) Alerts {
	p := place{table: "alerts", elem: -1}
	a := Alerts{Rules: c.applyRules(p, t.rulesTable, DefaultAlertRules()), Repeat: DefaultAlertRepeat}
	if t.Repeat != nil {
		a.Repeat = time.Duration(*t.Repeat)
		if a.Repeat < time.Minute {
			c.report(p, "repeat", fmt.Sprintf("repeat %s is shorter than a minute", a.Repeat), `notify a firing alert again at most every few hours, e.g. "4h"`)
		}
	}
	if t.Email != nil {
		a.Email = c.buildEmail(*t.Email)
	}
	lines := c.entryLines(p, "webhook")
	for i, w := range t.Webhooks {
		a.Webhooks = append(a.Webhooks, c.buildWebhook(i, at(lines, i), w))
	}
	c.nameWebhooks(lines, a.Email != nil, a.Webhooks)
	return a
}

// nameWebhooks makes the names of hooks unique among the channels of the
// file (see Webhook.Name); hasEmail says whether the e-mail channel takes
// EmailChannel. lines are the entries' header lines, for messages.
func (c *checker) nameWebhooks(lines []int, hasEmail bool, hooks []Webhook) {
	taken := map[string]int{} // name -> position of its webhook; 0: the e-mail channel
	if hasEmail {
		taken[EmailChannel] = 0
	}
	for i := range hooks {
		w := &hooks[i]
		if _, dup := taken[w.Name]; dup {
			was := w.Name
			w.Name = fmt.Sprintf("%s #%d", w.Name, i+1)
			if j, dup := taken[w.Name]; dup {
				c.reportAt(at(lines, i), place{table: "alerts", elem: -1}, "webhook",
					fmt.Sprintf("webhook %d would be named %q, as %q is taken, but webhook %d has that name", i+1, w.Name, was, j),
					"give each webhook its own name")
			}
		}
		taken[w.Name] = i + 1
	}
}

// applyRules returns base with the rules written in t on top; problems are
// reported at p (the key "alerts" of a server, or [alerts] itself).
func (c *checker) applyRules(p place, t rulesTable, base AlertRules) AlertRules {
	key := func(rule string) string {
		if p.table == "server" {
			return "alerts"
		}
		return rule
	}
	out := base
	out.Processes = append([]ProcessRule(nil), base.Processes...)
	for _, r := range []struct {
		name    string
		t       *thresholdTable
		dst     *Threshold
		percent bool
	}{
		{"cpu", t.CPU, &out.CPU, true},
		{"memory", t.Memory, &out.Memory, true},
		{"disk", t.Disk, &out.Disk, true},
		{"load", t.Load, &out.Load, false},
		{"swap", t.Swap, &out.Swap, false},
		{"memory_pressure", t.MemPress, &out.MemoryPressure, true},
		{"cpu_pressure", t.CPUPress, &out.CPUPressure, true},
		{"fd", t.FD, &out.FD, true},
	} {
		if r.t != nil {
			*r.dst = c.threshold(p, key(r.name), r.name, *r.t, *r.dst, r.percent)
		}
	}
	if t.DiskFull != nil {
		if t.DiskFull.Within == nil {
			c.report(p, key("disk_full"), "disk_full has no within", `say how far ahead to warn, e.g. disk_full = { within = "24h" }, or "0s" to turn it off`)
		} else {
			out.DiskFull.Within = time.Duration(*t.DiskFull.Within)
			if w := out.DiskFull.Within; w < 0 || w > 0 && w < time.Hour {
				c.report(p, key("disk_full"), fmt.Sprintf("disk_full.within %s is under an hour", w),
					`the forecast follows daily peaks: warn a day or more ahead, e.g. within = "24h" ("0s" turns it off)`)
			}
		}
	}
	if t.Processes != nil {
		out.Processes = nil
		subKey := "processes"
		if p.table == "server" {
			subKey = "alerts.processes"
		}
		lines := c.entryLines(p, subKey)
		for i, pt := range *t.Processes {
			out.Processes = append(out.Processes, c.processRule(p, key("processes"), i, at(lines, i), pt))
		}
	}
	if t.Down != nil {
		if t.Down.After != nil {
			out.Down.After = *t.Down.After
		}
		if out.Down.After < 1 {
			c.report(p, key("down"), fmt.Sprintf("down.after %d is below 1", out.Down.After), "alert after that many consecutive failed attempts, e.g. down = { after = 3 }")
		}
	}
	return out
}

// threshold resolves one written threshold over base: an unwritten above or
// for is inherited; an unwritten clear is base's when that still lies at or
// below above, else above (no hysteresis).
func (c *checker) threshold(p place, key, name string, t thresholdTable, base Threshold, percent bool) Threshold {
	out := base
	if t.Above != nil {
		out.Above = *t.Above
	}
	switch {
	case t.Clear != nil:
		out.Clear = *t.Clear
	case base.Clear <= 0 || base.Clear > out.Above:
		out.Clear = out.Above
	}
	if t.For != nil {
		out.For = *t.For
	}
	if out.For < 1 {
		out.For = 1
		if t.For != nil {
			c.report(p, key, fmt.Sprintf("%s.for %d is below 1", name, *t.For), "count consecutive snapshots from 1, e.g. for = 3")
		}
	}
	switch {
	case out.Above < 0 || (percent && out.Above > 100):
		c.report(p, key, fmt.Sprintf("%s.above %g is out of range", name, out.Above), rangeFix(name, percent))
	case out.Above > 0 && (out.Clear < 0 || out.Clear > out.Above):
		c.report(p, key, fmt.Sprintf("%s.clear %g is not between 0 and above %g", name, out.Clear, out.Above),
			"clear is where a firing alert resolves: at or below above, e.g. above = 90, clear = 85")
	}
	return out
}

func rangeFix(name string, percent bool) string {
	switch {
	case percent:
		return fmt.Sprintf("write a percent from 1 to 100, or 0 to turn the %s alert off", name)
	case name == "swap":
		return "write pages swapped in and out per second, e.g. 256, or 0 to turn the swap alert off"
	}
	return "write the load per logical CPU, e.g. 2.0, or 0 to turn the load alert off"
}

// at returns lines[i], or 0 when there is no such line.
func at(lines []int, i int) int {
	if i < len(lines) {
		return lines[i]
	}
	return 0
}

// processRule resolves entry i (from 0) of processes, which starts at line
// (0 when it is written inline: the line of key is used).
func (c *checker) processRule(p place, key string, i, line int, t processTable) ProcessRule {
	r := ProcessRule{Keyword: t.Keyword, For: 1}
	where := fmt.Sprintf("processes %d", i+1)
	switch {
	case c.checkControlAt(line, p, key, where+" keyword", t.Keyword, forProbe):
	case strings.TrimSpace(t.Keyword) == "":
		c.reportAt(line, p, key, where+" has no keyword", `write the keyword whose processes are counted, e.g. { keyword = "python", min = 5 }`)
	}
	if t.Min != nil {
		r.Min = *t.Min
	}
	if t.Max != nil {
		r.Max = *t.Max
	}
	if t.For != nil {
		r.For = *t.For
	}
	switch {
	case t.Min == nil && t.Max == nil:
		c.reportAt(line, p, key, where+" has neither min nor max", "set min (fire when fewer run) and/or max (fire when more run)")
	case r.Min < 0 || r.Max < 0:
		c.reportAt(line, p, key, where+" has a negative bound", "min and max count processes: 0 or more")
	case r.Max > 0 && r.Min > r.Max:
		c.reportAt(line, p, key, fmt.Sprintf("%s has min %d above max %d", where, r.Min, r.Max), "")
	case r.For < 1:
		c.reportAt(line, p, key, fmt.Sprintf("%s has for %d, below 1", where, r.For), "count consecutive snapshots from 1")
	}
	return r
}

func (c *checker) buildEmail(t emailTable) *Email {
	p := place{table: "alerts", elem: -1}
	e := &Email{Server: t.Server, From: t.From, To: append([]string(nil), t.To...), TLS: t.TLS, Username: t.Username, PasswordEnv: t.PasswordEnv}
	if e.TLS == "" {
		e.TLS = "starttls"
	}
	if _, _, err := e.HostPort(); err != nil {
		c.report(p, "email", "email.server "+err.Error(), `e.g. server = "smtp.example.com:587" (STARTTLS), or "smtp.example.com:465" with tls = "tls"`)
	}
	if _, err := mail.ParseAddress(e.From); err != nil {
		c.report(p, "email", fmt.Sprintf("email.from %q is not an e-mail address", e.From), `e.g. from = "collector@example.com"`)
	}
	if len(e.To) == 0 {
		c.report(p, "email", "email.to lists no recipient", `e.g. to = ["ops@example.com"]`)
	}
	for _, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			c.report(p, "email", fmt.Sprintf("email.to %q is not an e-mail address", to), "")
		}
	}
	if !slices.Contains([]string{"starttls", "tls", "none"}, e.TLS) {
		c.report(p, "email", fmt.Sprintf("email.tls %q is not starttls, tls or none", e.TLS), `starttls (port 587), tls (implicit, port 465) or none (a local relay only)`)
	}
	if e.Username != "" && e.PasswordEnv == "" {
		c.report(p, "email", "email.username is set without password_env", "name the environment variable that holds the password: password_env = \"SMTP_PASSWORD\"")
	}
	if e.PasswordEnv != "" && !envRE.MatchString(e.PasswordEnv) {
		c.report(p, "email", "email.password_env is not an environment variable name", "set it to the variable's name, never to the password itself")
	}
	return e
}

// buildWebhook resolves entry i (from 0) of [[alerts.webhook]], which starts
// at line (0 when the webhooks are written inline).
func (c *checker) buildWebhook(i, line int, t webhookTable) Webhook {
	p := place{table: "alerts", elem: -1}
	w := Webhook{Name: t.Name, URL: t.URL, URLEnv: t.URLEnv, Kind: t.Kind, SecretEnv: t.SecretEnv}
	where := fmt.Sprintf("webhook %d", i+1)
	if w.Kind == "" {
		w.Kind = "generic"
	}
	if !slices.Contains(WebhookKinds, w.Kind) {
		c.reportAt(line, p, "webhook", fmt.Sprintf("%s has kind %q", where, w.Kind), "use one of "+strings.Join(WebhookKinds, ", "))
	}
	switch {
	case (w.URL == "") == (w.URLEnv == ""):
		c.reportAt(line, p, "webhook", where+" needs exactly one of url and url_env", "robot URLs carry tokens: prefer url_env naming an environment variable")
	case w.URL != "":
		if err := CheckWebhookURL(w.URL); err != nil {
			c.reportAt(line, p, "webhook", fmt.Sprintf("%s url %q %s", where, w.URL, err), "")
		}
	case !envRE.MatchString(w.URLEnv):
		c.reportAt(line, p, "webhook", where+" url_env is not an environment variable name", "")
	}
	switch {
	case w.SecretEnv == "":
	case !envRE.MatchString(w.SecretEnv):
		c.reportAt(line, p, "webhook", where+" secret_env is not an environment variable name", "set it to the variable's name, never to the secret itself")
	case slices.Contains(WebhookKinds, w.Kind) && !slices.Contains(SigningKinds, w.Kind):
		c.reportAt(line, p, "webhook", fmt.Sprintf("%s has secret_env, but %s webhooks do not sign requests", where, w.Kind),
			"remove secret_env: only "+strings.Join(SigningKinds, " and ")+" robots take a signing secret")
	}
	if w.Name == "" {
		w.Name = w.Kind
		if u, err := url.Parse(w.URL); err == nil && u.Host != "" {
			w.Name += " " + u.Host
		}
	} else {
		c.checkControlAt(line, p, "webhook", where+" name", w.Name, inChannels)
	}
	return w
}

// ProbeKeywords returns the keywords the probe must count on s: its own
// keywords, then the keywords of its process alert rules that are not among
// them, so that a rule never sees a keyword the probe was not asked for.
func (s Server) ProbeKeywords() []string {
	out := slices.Clone(s.Keywords)
	for _, r := range s.Alerts.Processes {
		if r.Keyword != "" && !slices.Contains(out, r.Keyword) {
			out = append(out, r.Keyword)
		}
	}
	return out
}
