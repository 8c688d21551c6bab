package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/collector/round"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// fakeFleet answers every server at once, or holds each probe until its
// context ends when hang is set.
type fakeFleet struct {
	mu       sync.Mutex
	probed   []string // server names, in order
	released []string
	inv      *inventory.Inventory
	hang     bool
	began    chan string
}

func (f *fakeFleet) Probe(ctx context.Context, servers []inventory.Server, onResult func(monitor.Result)) []monitor.Result {
	var out []monitor.Result
	for _, s := range servers {
		if f.began != nil {
			f.began <- s.Name
		}
		if f.hang {
			<-ctx.Done()
		}
		r := monitor.Result{Server: s.Name, At: time.Now(), Snapshot: &snapshot.Snapshot{Version: snapshot.Version, Time: time.Now()}}
		f.mu.Lock()
		f.probed = append(f.probed, s.Name)
		f.mu.Unlock()
		onResult(r)
		out = append(out, r)
	}
	return out
}

func (f *fakeFleet) SetInventory(inv *inventory.Inventory) {
	f.mu.Lock()
	f.inv = inv
	f.mu.Unlock()
}

func (f *fakeFleet) Release(names ...string) {
	f.mu.Lock()
	f.released = append(f.released, names...)
	f.mu.Unlock()
}

func (f *fakeFleet) names() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.probed, " ")
}

// writeInventory writes servers.toml with the named local servers, ticking
// every 10 s, and loads it.
func writeInventory(t *testing.T, path string, names ...string) *inventory.Inventory {
	t.Helper()
	text := "[schedule]\ncron = \"@every 10s\"\nsplay = \"0s\"\ngrace = \"5s\"\n"
	for _, n := range names {
		text += "[[server]]\nname = \"" + n + "\"\naddress = \"local\"\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

type harness struct {
	clock  *clockwork.FakeClock
	fleet  *fakeFleet
	reload chan struct{}
	done   chan error
	logs   *testutil.SyncBuffer
	cancel context.CancelFunc
	seen   chan *inventory.Inventory
}

func start(t *testing.T, inv *inventory.Inventory, maxRounds int64, f *fakeFleet) *harness {
	t.Helper()
	logger, logs := testutil.Logger(t)
	h := &harness{clock: clockwork.NewFakeClock(), fleet: f, reload: make(chan struct{}), done: make(chan error, 1),
		logs: logs, seen: make(chan *inventory.Inventory, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	t.Cleanup(cancel)
	go func() {
		h.done <- Run(ctx, Options{
			Inventory: inv, Fleet: f, Runner: &round.Runner{Prober: f, Logger: logger, Clock: h.clock},
			Reload: h.reload, OnReload: func(inv *inventory.Inventory) { h.seen <- inv },
			MaxRounds: maxRounds, Clock: h.clock, Logger: logger,
		})
	}()
	return h
}

// tick waits until the schedule waits on the clock, then moves the clock
// to its next tick.
func (h *harness) tick(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("the schedule never waited on the clock: %v\n%s", err, h.logs)
	}
	h.clock.Advance(10 * time.Second)
}

func (h *harness) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return\n%s", h.logs)
		return nil
	}
}

func TestRunStopsAfterMaxRounds(t *testing.T) {
	inv := writeInventory(t, filepath.Join(t.TempDir(), "servers.toml"), "a", "b")
	f := &fakeFleet{}
	h := start(t, inv, 2, f)
	h.tick(t)
	testutil.Eventually(t, 10*time.Second, "a first round", func() bool { return f.names() == "a b" })
	h.tick(t)
	if err := h.wait(t); err != nil {
		t.Fatal(err)
	}
	if got := f.names(); got != "a b a b" {
		t.Errorf("probed %q, want two rounds of a and b", got)
	}
	if !strings.Contains(h.logs.String(), "stopping: rounds done") {
		t.Errorf("no stop message:\n%s", h.logs)
	}
}

// A reload request reads servers.toml again: a broken file is rejected and
// the running inventory kept; a good one takes effect on the next tick.
func TestRunReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "servers.toml")
	inv := writeInventory(t, path, "a")
	f := &fakeFleet{}
	h := start(t, inv, 0, f)
	h.tick(t)
	testutil.Eventually(t, 10*time.Second, "a first round", func() bool { return f.names() == "a" })

	if err := os.WriteFile(path, []byte("[[server]]\nname = \"a\"\nadress = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.reload <- struct{}{}
	testutil.Eventually(t, 10*time.Second, "the bad file rejected", func() bool {
		return strings.Contains(h.logs.String(), "reload rejected") && strings.Contains(h.logs.String(), "did you mean 'address'")
	})

	// A file with no server at all would stop monitoring: refused too.
	writeInventory(t, path)
	h.reload <- struct{}{}
	testutil.Eventually(t, 10*time.Second, "the empty file rejected", func() bool {
		return strings.Contains(h.logs.String(), "lists no server: a reload would stop monitoring all 1")
	})

	writeInventory(t, path, "a", "b")
	h.reload <- struct{}{}
	got := <-h.seen
	if len(got.Servers) != 2 || f.inv != got {
		t.Fatalf("reloaded inventory has %d servers; the fleet has %p, want %p", len(got.Servers), f.inv, got)
	}
	h.tick(t)
	testutil.Eventually(t, 10*time.Second, "a round of both", func() bool { return f.names() == "a a b" })
	h.cancel()
	if err := h.wait(t); err != nil {
		t.Fatal(err)
	}
}

// A round that does not finish is given the grace period, on the clock,
// then cancelled: Run returns.
func TestRunGivesRoundsGraceThenCancels(t *testing.T) {
	inv := writeInventory(t, filepath.Join(t.TempDir(), "servers.toml"), "hung")
	f := &fakeFleet{hang: true, began: make(chan string, 1)}
	h := start(t, inv, 0, f)
	h.tick(t)
	<-f.began
	h.cancel()
	testutil.Eventually(t, 10*time.Second, "the stop to begin", func() bool {
		return strings.Contains(h.logs.String(), "stopping: signal received")
	})
	// Stop waits on a grace timer of the clock while the round hangs: Run
	// returns once the clock has moved the 5 s grace on, not before.
	steps := 0
	for {
		select {
		case err := <-h.done:
			if err != nil {
				t.Fatal(err)
			}
			if steps < 5 {
				t.Fatalf("Run returned after the clock moved %d s, before the 5 s grace", steps)
			}
			goto returned
		case <-time.After(10 * time.Millisecond):
		}
		if steps > 1000 {
			t.Fatalf("Run did not return after the clock moved %d s\n%s", steps, h.logs)
		}
		h.clock.Advance(time.Second)
		steps++
	}
returned:
	if !strings.Contains(h.logs.String(), "cut short after the grace period") {
		t.Errorf("no warning about the rounds cut short:\n%s", h.logs)
	}
}
