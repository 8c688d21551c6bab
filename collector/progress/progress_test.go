package progress_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/crawlerfleet/collector/collector/progress"
)

func TestOutput(t *testing.T) {
	unreachable := errors.New("unreachable")
	tests := []struct {
		name     string
		terminal bool
		want     string
	}{
		{"terminal", true, "\r[0/3]\x1b[K" +
			"\r[1/3] 0 failed  last: web1 (ok)\x1b[K" +
			"\r[2/3] 1 failed  last: web2 (unreachable)\x1b[K" +
			"\r[3/3] 1 failed  last: web3 (ok)\x1b[K" +
			"\r[3/3] done, 1 failed\x1b[K\n"},
		{"not a terminal", false, "[2/3] web2 failed: unreachable\n" +
			"[3/3] done, 1 failed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := progress.New(&b, 3, tt.terminal)
			p.Done("web1", nil)
			p.Done("web2", unreachable)
			p.Done("web3", nil)
			p.Finish()
			// Both are ignored once finished.
			p.Done("web4", unreachable)
			p.Finish()
			if got := b.String(); got != tt.want {
				t.Errorf("output:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

// TestUnruly checks that long names and messages with line breaks and
// escape sequences neither wrap the status line nor reach the terminal.
func TestUnruly(t *testing.T) {
	name := strings.Repeat("web", 40)
	err := errors.New("refused\x1b[31m red\nsecond line")
	t.Run("terminal", func(t *testing.T) {
		var b bytes.Buffer
		p := progress.New(&b, 1, true)
		p.Done(name, err)
		out := b.String()
		for _, line := range strings.Split(out, "\r")[1:] {
			line = strings.TrimSuffix(line, "\x1b[K")
			if n := utf8.RuneCountInString(line); n > 79 {
				t.Errorf("status line of %d characters: %q", n, line)
			}
			if strings.ContainsAny(line, "\x1b\n") {
				t.Errorf("status line with a control character: %q", line)
			}
		}
		if !strings.HasSuffix(out, "…\x1b[K") {
			t.Errorf("a long line is not cut with an ellipsis: %q", out)
		}
	})
	t.Run("not a terminal", func(t *testing.T) {
		var b bytes.Buffer
		p := progress.New(&b, 1, false)
		p.Done("web1", err)
		if want := "[1/1] web1 failed: refused?[31m red\n"; b.String() != want {
			t.Errorf("output %q, want %q", b.String(), want)
		}
		b.Reset()
		p = progress.New(&b, 1, false)
		p.Done("web1", errors.New(strings.Repeat("x", 100)))
		if want := "[1/1] web1 failed: " + strings.Repeat("x", 39) + "…\n"; b.String() != want {
			t.Errorf("output %q, want %q", b.String(), want)
		}
	})
}

func TestConcurrent(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		t.Run(fmt.Sprint("terminal=", terminal), func(t *testing.T) {
			var b bytes.Buffer
			p := progress.New(&b, 100, terminal)
			var wg sync.WaitGroup
			for i := range 100 {
				wg.Go(func() {
					var err error
					if i%2 == 0 {
						err = errors.New("timeout")
					}
					p.Done(fmt.Sprint("web", i), err)
				})
			}
			wg.Wait()
			p.Finish()
			out := b.String()
			if !strings.HasSuffix(out, "[100/100] done, 50 failed\x1b[K\n") && !strings.HasSuffix(out, "\n[100/100] done, 50 failed\n") {
				t.Errorf("output ends %q", out[max(0, len(out)-60):])
			}
			if !terminal {
				if n := strings.Count(out, " failed: timeout\n"); n != 50 {
					t.Errorf("%d failure lines, want 50", n)
				}
			}
		})
	}
}
