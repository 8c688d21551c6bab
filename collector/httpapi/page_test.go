package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

func TestPage(t *testing.T) {
	rec := do(t, New(newFixture(t).opts), "GET", "/", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("status %d, type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	for _, bad := range []string{"http://", "https://", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "<link", "src="} {
		if strings.Contains(body, bad) {
			t.Errorf("the page contains %q: it must load nothing from elsewhere and never parse data as HTML", bad)
		}
	}
	if !strings.Contains(body, `href="report?since=7d"`) {
		t.Errorf("the page has no link to the report")
	}

	// The CSP allows exactly the page's own inline style and script.
	csp := rec.Header().Get("Content-Security-Policy")
	for _, elem := range []string{"style", "script"} {
		m := regexp.MustCompile(`(?s)<` + elem + `>(.*?)</` + elem + `>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no inline %s", elem)
		}
		sum := sha256.Sum256([]byte(m[1]))
		want := elem + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "';"
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}

	if rec := do(t, New(newFixture(t).opts), "GET", "/?x=1", ""); rec.Code != http.StatusBadRequest {
		t.Errorf("/?x=1: status %d, want 400", rec.Code)
	}
}

// chromium returns the path of a Chromium binary, skipping the test when
// there is none, but failing it under CI.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium in PATH under CI: install it (apt-get install chromium)")
	}
	t.Skip("no chromium in PATH")
	return ""
}

// headless runs Chromium on url with extra flags and returns its output.
func headless(t *testing.T, bin, url string, flags ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=3000",
	}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// TestPageInChromium loads the live page, with a token, in headless
// Chromium and checks that its script filled the table from the API.
func TestPageInChromium(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t)
	f.opts.Token = "tok/en+with&odd=chars"
	// The page computes ages from the browser's clock: use the real one.
	f.opts.Now = time.Now
	srv := httptest.NewServer(New(f.opts))
	t.Cleanup(srv.Close)

	dom := string(headless(t, bin, srv.URL+"/?token=tok%2Fen%2Bwith%26odd%3Dchars", "--dump-dom"))
	tbody := regexp.MustCompile(`(?s)<tbody id="rows">(.*?)</tbody>`).FindStringSubmatch(dom)
	if tbody == nil {
		t.Fatalf("no table body in the DOM:\n%s", dom)
	}
	rows := tbody[1]
	for _, want := range []string{
		`<td class="name">web1<small>front end</small></td>`,
		`<span class="badge ok">ok</span>`,
		`<span class="badge down" title="last failure 2026-03-01T11:59:30Z: dial tcp 10.0.0.2:22: connection refused">down: unreachable</span>`,
		`<span class="badge nodata">no data</span>`,
		`42.5 %`, `61.3 %`, `70.0 %`,
		`<td class="n" title="python: 12, node: 3">15</td>`,
		`<td class="firing" title="down: 3 failed attempts">down</td>`,
		`<td class="firing" title="cpu 95.0 % ≥ 95 %` + "\n" + `disk 91.0 % ≥ 90 %">cpu, disk</td>`,
		`<td class="n over">95.0 %`,
		// The hostile name, as text.
		`<td class="name">&lt;script&gt;alert(1)&lt;/script&gt;<small>&lt;script&gt;alert(1)&lt;/script&gt;</small></td>`,
	} {
		if !strings.Contains(rows, want) {
			t.Errorf("the table lacks %s", want)
		}
	}
	if n := strings.Count(rows, "<tr"); n != 4 {
		t.Errorf("%d rows, want 4", n)
	}
	if strings.Contains(dom, evil) {
		t.Errorf("the hostile name became markup:\n%s", dom)
	}
	if !strings.Contains(dom, "4 servers · updated") {
		t.Errorf("the page did not say it refreshed:\n%s", dom)
	}
	if !strings.Contains(dom, `href="`+srv.URL+`/report?since=7d&amp;token=tok%2Fen%2Bwith%26odd%3Dchars"`) {
		t.Errorf("the report link does not carry the token:\n%s", dom)
	}

	// Without the token the page itself is refused.
	if out := string(headless(t, bin, srv.URL+"/", "--dump-dom")); strings.Contains(out, "web1") || !strings.Contains(out, "missing or wrong token") {
		t.Errorf("without the token:\n%s", out)
	}
}

// silences is a Silences over a fixed list.
type silences []monitor.Silence

func (s silences) Silences(context.Context, time.Time) ([]monitor.Silence, error) { return s, nil }

// withSilenceAndRules silences web2's down alert until until, and gives
// web1 a CPU rule at 40 % and no disk rule.
func withSilenceAndRules(f *fixture, until time.Time) {
	f.opts.Silences = silences{{ID: "s1", Server: "web2", Rule: "down", Created: now, Until: until}}
	rules := inventory.DefaultAlertRules()
	rules.CPU.Above, rules.Disk.Above = 40, 0
	f.servers[0].Alerts = rules
}

func TestServersSilencedAndThresholds(t *testing.T) {
	f := newFixture(t)
	until := now.Add(time.Hour)
	withSilenceAndRules(f, until)
	var got []ServerSummary
	decode(t, do(t, New(f.opts), "GET", "/api/servers", ""), http.StatusOK, &got)
	web1, web2, bad := got[0], got[1], got[3]
	if web1.Thresholds.CPU == nil || *web1.Thresholds.CPU != 40 || web1.Thresholds.Disk != nil || *web1.Thresholds.Memory != 90 {
		t.Errorf("web1 thresholds %+v", web1.Thresholds)
	}
	if f := web2.Firing; len(f) != 1 || !f[0].Silenced || f[0].SilencedUntil == nil || !f[0].SilencedUntil.Equal(until) {
		t.Errorf("web2's down alert is not marked silenced until %v: %+v", until, f)
	}
	if f := bad.Firing; len(f) != 2 || f[0].Silenced || f[0].SilencedUntil != nil {
		t.Errorf("an alert no silence holds: %+v", f)
	}
	if web2.Thresholds.CPU != nil {
		t.Errorf("a server without rules has thresholds %+v", web2.Thresholds)
	}
}

func TestPageSilencedAndThresholdsInChromium(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t)
	// The page and the API read the real clock here.
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	withSilenceAndRules(f, until)
	f.opts.Now = time.Now
	srv := httptest.NewServer(New(f.opts))
	t.Cleanup(srv.Close)
	dom := string(headless(t, bin, srv.URL+"/", "--dump-dom"))
	for _, want := range []string{
		// web1's CPU rule is at 40 %: 42.5 % is marked; its disk rule is off.
		`<td class="n over">42.5 %<span class="bar" title="alert at 40 %">`,
		`<td class="n">70.0 %<span class="bar"><i`,
		// The other server keeps the built-in 95 %.
		`<td class="n over">95.0 %<span class="bar" title="alert at 95 %">`,
		`<td class="silenced" title="down: 3 failed attempts (silenced until ` + until.Format(time.RFC3339) + `)"><span class="silenced">down (silenced)</span></td>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}
