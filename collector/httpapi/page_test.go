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
