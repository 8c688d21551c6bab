package pull

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/probetest"
	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/internal/testutil"
)

func watchOpts(dir string) WatchOptions {
	return WatchOptions{Keywords: []string{"watch-test-keyword"}, Resolution: 100 * time.Millisecond, Silence: time.Minute, Timeout: 10 * time.Second, ProbeDir: dir}
}

// TestWatch runs the real probe in watch mode on this machine, directly and
// over the real sshd: the first Watch uploads it, each Next gives the
// interval since the last, and Close leaves no probe running.
func TestWatch(t *testing.T) {
	srv := sshdtest.Start(t)
	client, err := remote.Dial(context.Background(), []remote.Endpoint{{
		Name: "web1", Addr: srv.Addr, User: srv.User, IdentityFiles: []string{srv.ClientKeyFile}, NoAgent: true, KnownHosts: srv.KnownHostsFile,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	for name, r := range map[string]Runner{"local": remote.Local{}, "ssh": client} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			target := NewTarget(r, probetest.Set(t))
			w, info, err := target.Watch(ctx, watchOpts(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if !info.Uploaded || info.Platform == "" {
				t.Errorf("first Watch: %+v; want the probe uploaded", info)
			}
			if pids := probetest.PIDs(t, dir); len(pids) != 1 {
				t.Fatalf("%d probes running from %s, want 1", len(pids), dir)
			}
			// Intervals follow each other; wait for one that holds samples.
			var last time.Time
			testutil.Eventually(t, testutil.Patience, "an interval with samples", func() bool {
				snap, _, err := w.Next(ctx)
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				iv := snap.Interval
				if !last.IsZero() && !iv.Start.Equal(last) {
					t.Fatalf("interval starts %v, the last ended %v", iv.Start, last)
				}
				last = iv.End
				if len(iv.Keywords) != 1 || iv.Keywords[0].Keyword != "watch-test-keyword" || iv.ResolutionSeconds != 0.1 {
					t.Fatalf("interval %+v", iv)
				}
				return iv.Samples > 0 && iv.CPU != nil && iv.Memory != nil
			})

			// A second Watch finds the probe in place.
			w2, info, err := target.Watch(ctx, watchOpts(dir))
			if err != nil || info.Uploaded {
				t.Fatalf("second Watch: %+v, %v; want no upload", info, err)
			}
			w2.Close()
			w.Close()
			testutil.Eventually(t, testutil.Patience, "no probe left once closed", func() bool {
				return len(probetest.PIDs(t, dir)) == 0
			})
			if _, _, err := w.Next(ctx); err == nil {
				t.Error("Next after Close succeeded")
			}
		})
	}
}

// TestWatchProbeEnds: a probe that goes (killed, or silent for -silence)
// ends its Watch with a probe error that says how.
func TestWatchProbeEnds(t *testing.T) {
	ctx := context.Background()
	t.Run("killed", func(t *testing.T) {
		dir := t.TempDir()
		w, _, err := NewTarget(remote.Local{}, probetest.Set(t)).Watch(ctx, watchOpts(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for _, pid := range probetest.PIDs(t, dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		<-w.Done()
		_, _, err = w.Next(ctx)
		var pe *ProbeError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "the watching probe ended") || !strings.Contains(err.Error(), "signal KILL") {
			t.Fatalf("Next after the probe was killed: %v", err)
		}
		if w.Err() == nil {
			t.Error("Err() = nil after the end")
		}
	})
	t.Run("silence", func(t *testing.T) {
		dir := t.TempDir()
		opts := watchOpts(dir)
		opts.Silence = 300 * time.Millisecond
		w, _, err := NewTarget(remote.Local{}, probetest.Set(t)).Watch(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		<-w.Done() // the probe exits on its own
		if err := w.Err(); err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "no line from the collector") {
			t.Fatalf("Err after the silence: %v", err)
		}
	})
}

func TestWatchFailures(t *testing.T) {
	interval := strings.Replace(goodSnapshot, `"version":1`, `"version":2`, 1)
	interval = strings.TrimSuffix(interval, "}") + `,"interval":{"start":"2026-11-25T09:59:00Z","end":"2026-11-25T10:00:00Z","resolution_seconds":1,"samples":60,"keywords":[]}}`
	tests := []struct {
		name, script string
		start        bool   // Watch itself fails
		want         string // in the error
	}{
		{"garbage", "echo 'Welcome to Ubuntu'; cat >/dev/null", true, "decode snapshot"},
		{"exit at once", "echo 'no /proc here' >&2; exit 1", true, "exit status 1: no /proc here"},
		{"no interval", "while read l; do echo '" + goodSnapshot + "'; done", false, "has no interval"},
		{"implausible", "while read l; do echo '" + strings.Replace(interval, `"samples":60,`, `"samples":60,"cpu":{"max":250,"mean":1,"max_at":"2026-11-25T10:00:00Z"},`, 1) + "'; done", false, "interval.cpu.max = 250"},
		{"fine", "while read l; do echo '" + interval + "'; done", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := watchOpts(t.TempDir())
			opts.Keywords, opts.Now = nil, probeClock
			w, _, err := NewTarget(remote.Local{}, scriptProbe(t, tt.script)).Watch(context.Background(), opts)
			if !tt.start {
				if err != nil {
					t.Fatalf("Watch: %v", err)
				}
				defer w.Close()
				_, _, err = w.Next(context.Background())
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				return
			}
			var pe *ProbeError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v; want a *ProbeError with %q", err, tt.want)
			}
		})
	}
}

func TestWatchCommand(t *testing.T) {
	b := scriptProbe(t, "true")
	for _, build := range b {
		got := watchCommand("~/.cache/collector", build, WatchOptions{Keywords: []string{"-x", "a b"}, Resolution: time.Second, Silence: 50 * time.Second, Timeout: 29 * time.Second})
		want := `exec "$HOME"/'.cache/collector/` + build.FileName() + `' '-watch' '-resolution' '1s' '-silence' '50s' '-timeout' '29s' '--' '-x' 'a b'`
		if got != want {
			t.Errorf("watchCommand:\n got %s\nwant %s", got, want)
		}
	}
	if got := WatchTimeout(30 * time.Second); got != 29*time.Second {
		t.Errorf("WatchTimeout(30s) = %v", got)
	}
}
