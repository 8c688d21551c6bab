package inventory

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/internal/testutil"
)

// FuzzParse reads any bytes as servers.toml: an inventory, or an error that
// names the file, never a panic.
func FuzzParse(f *testing.F) {
	testutil.AddFiles(f, filepath.Join("testdata", "*.toml"))
	testutil.AddFiles(f, filepath.Join("..", "servers.toml"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := parse(strings.NewReader(string(data)), "servers.toml", testEnv)
		if err != nil {
			if !strings.Contains(err.Error(), "servers.toml") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		if inv == nil {
			t.Fatal("no inventory and no error")
		}
	})
}

// FuzzParseDuration: any text is a duration or an error; a duration
// without a sign is never negative (no overflow wraps around), and one
// that time.ParseDuration takes is what it says.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "7d", "1d12h", "1.5d", "-2h", "106751d", "106751.99116730064d", "0d", "d", "1e3d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 && !strings.HasPrefix(s, "-") {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		}
		if want, err := time.ParseDuration(s); err == nil && want != d {
			t.Fatalf("ParseDuration(%q) = %v, time.ParseDuration says %v", s, d, want)
		}
	})
}

// FuzzParseTime: any text is a time or an error; a duration back from now
// is never after now, and a jump host is a user, host and port (0: none
// written) or an error.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"24h", "7d", "2026-11-25", "2026-11-25T08:00:00Z", "2026-11-25T08:00:00 01:00", "106751d", "0s", "ops@jump:2222"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if tm, err := ParseTime(s, now, time.UTC); err == nil {
			if _, derr := ParseDuration(s); derr == nil && tm.After(now) {
				t.Fatalf("ParseTime(%q) = %v: after now (%v)", s, tm, now)
			}
		}
		if user, host, port, err := parseJump(s); err == nil && (host == "" || port < 0 || port > 65535 || strings.ContainsAny(user+host, " \t\n")) {
			t.Fatalf("parseJump(%q) = %q, %q, %d", s, user, host, port)
		}
	})
}
