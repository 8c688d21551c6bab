package notify

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/monitor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var t0 = time.Date(2024, 5, 1, 10, 17, 0, 0, time.UTC)

func alert(server, rule string, state monitor.AlertStatus, summary string, starts, ends time.Time) alerts.Alert {
	return alerts.Alert{
		Server: server, Rule: rule, State: state, Summary: summary,
		StartsAt: starts, EndsAt: ends, Labels: alerts.Labels(server, rule),
	}
}

// sample is a digest with three alerts firing on two servers and one
// resolved.
func sample() alerts.Notification {
	return *alerts.NewNotification(t0, []alerts.Alert{
		alert("web7", "down", monitor.AlertFiring, "down: 3 failed attempts (unreachable: dial tcp 10.0.0.7:22: connect: connection refused)", t0.Add(-15*time.Minute), time.Time{}),
		alert("web1", "cpu", monitor.AlertFiring, "cpu 97.0 % ≥ 95 % for 5 snapshots", t0.Add(-2*time.Hour-5*time.Minute), time.Time{}),
		alert("web1", "memory", monitor.AlertFiring, "memory 93.2 % ≥ 90 % for 3 snapshots", t0.Add(-40*time.Second), time.Time{}),
		alert("db2", "disk", monitor.AlertResolved, "disk 84.0 % < 85 %", t0.Add(-26*time.Hour), t0.Add(-time.Minute)),
	}, false)
}

func TestSubject(t *testing.T) {
	firing := func(server string) alerts.Alert {
		return alert(server, "cpu", monitor.AlertFiring, "cpu high", t0, time.Time{})
	}
	resolved := func(server string) alerts.Alert {
		return alert(server, "cpu", monitor.AlertResolved, "cpu ok", t0, t0)
	}
	tests := []struct {
		name   string
		alerts []alerts.Alert
		test   bool
		want   string
	}{
		{"sample", sample().Alerts, false, "[collector] 3 alerts firing on web1, web7 (+1 resolved)"},
		{"one", []alerts.Alert{firing("web1")}, false, "[collector] 1 alert firing on web1"},
		{"many servers", []alerts.Alert{firing("a"), firing("b"), firing("c"), firing("d"), firing("e")}, false, "[collector] 5 alerts firing on a, b, c and 2 more"},
		{"resolved only", []alerts.Alert{resolved("a"), resolved("b")}, false, "[collector] 2 alerts resolved on a, b"},
		{"empty", nil, false, "[collector] no alerts"},
		{"test", []alerts.Alert{firing("test-server")}, true, "[collector] TEST: 1 alert firing on test-server"},
		{"newline in name", []alerts.Alert{firing("web1\r\nBcc: x@example.com")}, false, "[collector] 1 alert firing on web1  Bcc: x@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := alerts.Notification{ID: "x", Created: t0, Alerts: tt.alerts, Test: tt.test}
			if got := newDigest(n).Subject; got != tt.want {
				t.Errorf("subject = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderEmailGolden(t *testing.T) {
	d := newDigest(sample())
	text, err := d.renderText()
	if err != nil {
		t.Fatal(err)
	}
	html, err := d.renderHTML()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "email.txt", []byte(text))
	golden(t, "email.html", []byte(html))

	// Firing before resolved, one line each.
	iFiring, iResolved := strings.Index(text, "Firing (3)"), strings.Index(text, "Resolved (1)")
	if iFiring < 0 || iResolved < iFiring {
		t.Errorf("text lists firing then resolved? firing at %d, resolved at %d", iFiring, iResolved)
	}
	for _, want := range []string{
		"- web1  cpu: cpu 97.0 % ≥ 95 % for 5 snapshots — since 2024-05-01 08:12 UTC (2h5m)",
		"- db2  disk: disk 84.0 % < 85 % — resolved 2024-05-01 10:16 UTC after 1d1h",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("text lacks the line %q", want)
		}
	}
}

func TestRenderHTMLEscapes(t *testing.T) {
	n := *alerts.NewNotification(t0, []alerts.Alert{
		alert(`<script>alert("x")</script>`, "cpu", monitor.AlertFiring, `a & b <img src=x onerror=alert(1)>`, t0, time.Time{}),
	}, false)
	html, err := newDigest(n).renderHTML()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>", "<img"} {
		if strings.Contains(html, bad) {
			t.Errorf("HTML contains %q unescaped:\n%s", bad, html)
		}
	}
	for _, want := range []string{"&lt;script&gt;", "a &amp; b &lt;img"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML lacks %q:\n%s", want, html)
		}
	}
}

func TestRenderTest(t *testing.T) {
	d := newDigest(NewTestNotification(t0))
	text, err := d.renderText()
	if err != nil {
		t.Fatal(err)
	}
	html, err := d.renderHTML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.Subject, "[collector] TEST: ") {
		t.Errorf("subject = %q, want it marked TEST", d.Subject)
	}
	for name, body := range map[string]string{"text": text, "html": html} {
		if !strings.Contains(body, "test notification") {
			t.Errorf("%s part does not say it is a test:\n%s", name, body)
		}
	}
}

func TestRenderChatCaps(t *testing.T) {
	var as []alerts.Alert
	for i := range 200 {
		as = append(as, alert(strings.Repeat("s", 20)+string(rune('a'+i%26))+strings.Repeat("x", i%7), "cpu", monitor.AlertFiring, strings.Repeat("long summary ", 20), t0, time.Time{}))
	}
	n := *alerts.NewNotification(t0, as, false)
	got := wecomPayload(n).Markdown.Content
	if len(got) > wecomMax {
		t.Errorf("wecom content is %d bytes, over %d", len(got), wecomMax)
	}
	if !strings.Contains(got, "more") || !strings.HasPrefix(got, "#### [collector] 200 alerts firing") {
		t.Errorf("capped content lacks its headline or the count of the rest:\n%s", got)
	}
}

func TestClean(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"web1", 10, "web1"},
		{"a\nb\tc\x00d", 10, "a b c d"},
		{"  pad  ", 10, "pad"},
		{"bad\xffutf8", 10, "bad\uFFFDutf8"},
		{strings.Repeat("é", 10), 5, strings.Repeat("é", 4) + "…"},
	}
	for _, tt := range tests {
		if got := clean(tt.in, tt.max); got != tt.want {
			t.Errorf("clean(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{40 * time.Second, "40s"},
		{12*time.Minute + 30*time.Second, "12m"},
		{2*time.Hour + 5*time.Minute, "2h5m"},
		{3 * time.Hour, "3h"},
		{26 * time.Hour, "1d2h"},
		{48 * time.Hour, "2d"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.d); got != tt.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
