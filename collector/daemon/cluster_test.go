package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/collector/cluster"
	"github.com/crawlerfleet/collector/collector/round"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// scriptedCluster hands out one assignment per round, in order.
type scriptedCluster struct {
	mu      sync.Mutex
	plan    []cluster.Assignment
	slots   []time.Time
	probed  int
	adopted [][]string
}

func (c *scriptedCluster) Assign(slot time.Time, servers []inventory.Server) cluster.Assignment {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slots = append(c.slots, slot)
	a := c.plan[0]
	c.plan = c.plan[1:]
	return a
}

func (c *scriptedCluster) Probed(n int) {
	c.mu.Lock()
	c.probed += n
	c.mu.Unlock()
}

type observer struct {
	mu    sync.Mutex
	calls [][]monitor.Result
}

func (o *observer) Observe(_ context.Context, _ []inventory.Server, results []monitor.Result) {
	o.mu.Lock()
	o.calls = append(o.calls, results)
	o.mu.Unlock()
}

// In a cluster each round probes the servers the member owns, after the
// states of those it adopts are read again; a fenced round probes nothing
// and judges only the collector's own alert (no results).
func TestRunProbesWhatTheMemberOwns(t *testing.T) {
	inv := writeInventory(t, filepath.Join(t.TempDir(), "servers.toml"), "a", "b", "c")
	srv := func(names ...string) []inventory.Server {
		var out []inventory.Server
		for _, s := range inv.Servers {
			if slices.Contains(names, s.Name) {
				out = append(out, s)
			}
		}
		return out
	}
	cl := &scriptedCluster{plan: []cluster.Assignment{
		{Mine: srv("a", "c"), Adopted: []string{"a", "c"}},
		{Fenced: true},
		{Mine: srv("b"), Adopted: []string{"b"}},
	}}
	f := &fakeFleet{}
	obs := &observer{}
	var adoptMu sync.Mutex
	logger, logs := testutil.Logger(t)
	clock := clockwork.NewFakeClock()
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Options{
			Inventory: inv, Fleet: f, Runner: &round.Runner{Prober: f, Alerts: obs, Logger: logger, Clock: clock},
			Cluster: cl, MaxRounds: 3, Clock: clock, Logger: logger,
			Adopt: func(_ context.Context, servers []string) {
				adoptMu.Lock()
				cl.adopted = append(cl.adopted, servers)
				adoptMu.Unlock()
			},
		})
	}()
	h := &harness{clock: clock, logs: logs}
	for i := range 3 {
		h.tick(t)
		want := []string{"a c", "a c", "a c b"}[i]
		testutil.Eventually(t, 10*time.Second, "round "+want, func() bool {
			obs.mu.Lock()
			defer obs.mu.Unlock()
			return len(obs.calls) == i+1 && f.names() == want
		})
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testutil.Patience):
		t.Fatal("Run did not stop after 3 rounds")
	}
	if len(obs.calls[1]) != 0 || len(obs.calls[0]) != 2 || len(obs.calls[2]) != 1 {
		t.Errorf("alerts observed %d, %d, %d results; want 2, 0 (fenced), 1", len(obs.calls[0]), len(obs.calls[1]), len(obs.calls[2]))
	}
	// Round 1 leaves b, the fenced round all three, round 3 a and c.
	if got := strings.Join(f.released, " "); got != "b a b c a c" {
		t.Errorf("released %q, want the servers of each round owned by others: b, a b c, a c", got)
	}
	if cl.probed != 3 || len(cl.adopted) != 2 || len(cl.slots) != 3 || !cl.slots[1].Equal(cl.slots[0].Add(10*time.Second)) {
		t.Errorf("probed %d, adopted %v, slots %v", cl.probed, cl.adopted, cl.slots)
	}
}
