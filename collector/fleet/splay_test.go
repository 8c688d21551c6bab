package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/collector/internal/probetest"
	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
)

// TestProbeSplaysStarts checks on a fake clock that every server waits its
// splay before its probe starts, without holding a concurrency slot, and
// that each result's start is when its splay ended.
func TestProbeSplaysStarts(t *testing.T) {
	srv := sshdtest.Start(t)
	var servers string
	for i := range 6 {
		servers += fmt.Sprintf("\n[[server]]\nname = \"local%d\"\naddress = \"local\"\n", i)
	}
	inv := parseInventory(t, srv, servers)
	clock := clockwork.NewFakeClockAt(t0)
	f := New(inv, Options{Probes: probetest.Set(t), Logger: slog.New(slog.DiscardHandler), Splay: time.Second, Concurrency: 1, Clock: clock})
	t.Cleanup(func() { f.Close() })
	// The servers wait 100ms, 200ms, ... 600ms, in the order they ask.
	const step = 100 * time.Millisecond
	var (
		mu    sync.Mutex
		asked int
	)
	f.splayDelay = func(max time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		if max != time.Second {
			t.Errorf("splay of %v, want 1s", max)
		}
		asked++
		return time.Duration(asked) * step
	}

	results := make(chan monitor.Result, len(inv.Servers))
	done := make(chan []monitor.Result, 1)
	go func() {
		done <- f.Probe(context.Background(), inv.Servers, func(r monitor.Result) { results <- r })
	}()
	// With one slot, all six can wait at once only if none holds it.
	testutil.BlockUntil(t, clock, len(inv.Servers), "every server waiting for its splay")
	for i := 1; i <= len(inv.Servers); i++ {
		clock.Advance(step)
		r := testutil.Receive(t, results, fmt.Sprintf("result %d", i))
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Server, r.Err)
		}
		// The clock stood still during the probe: it started at its splay's end.
		if got, want := r.Start(), t0.Add(time.Duration(i)*step); !got.Equal(want) || r.Duration != 0 || !r.At.Equal(want) {
			t.Errorf("%s started at %v and took %v, want %v and 0", r.Server, got, r.Duration, want)
		}
		select {
		case r := <-results:
			t.Fatalf("%s finished before its splay ended", r.Server)
		default:
		}
	}
	if got := testutil.Receive(t, done, "return from Probe"); len(got) != len(inv.Servers) {
		t.Errorf("Probe returned %d results", len(got))
	}
}

// TestProbeCancelledSkipsSplay checks that a cancelled round does not wait
// out the splay: the fake clock never moves.
func TestProbeCancelledSkipsSplay(t *testing.T) {
	srv := sshdtest.Start(t)
	inv := parseInventory(t, srv, server("local0", "local")+server("local1", "local"))
	f := New(inv, Options{Probes: probetest.Set(t), Logger: slog.New(slog.DiscardHandler), Splay: time.Hour, Clock: clockwork.NewFakeClockAt(t0)})
	t.Cleanup(func() { f.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan []monitor.Result, 1)
	go func() { done <- f.Probe(ctx, inv.Servers, nil) }()
	for _, r := range testutil.Receive(t, done, "return from a cancelled Probe") {
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("%s: %v, want the round's cancellation", r.Server, r.Err)
		}
	}
}

// TestSplayDelay checks the real splay: random, and less than the splay.
func TestSplayDelay(t *testing.T) {
	f := New(nil, Options{Splay: time.Second})
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := f.splayDelay(time.Second)
		if d < 0 || d >= time.Second {
			t.Fatalf("splay delay %v, want [0, 1s)", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Errorf("1000 splay delays took %d values", len(seen))
	}
}
