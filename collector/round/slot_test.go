package round

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/monitor"
)

// slotWriter keeps what it is given.
type slotWriter struct {
	mu  sync.Mutex
	got []monitor.Result
}

func (w *slotWriter) Write(_ context.Context, results []monitor.Result) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, results...)
	return nil
}

// RunSlot stamps the slot and the member on every result: those written,
// those the alerts see and those it returns.
func TestRunSlotStampsResults(t *testing.T) {
	prober := &steppedProber{release: make(chan struct{}, 2)}
	prober.release <- struct{}{}
	prober.release <- struct{}{}
	w := &slotWriter{}
	al := &recordingAlerter{}
	r := &Runner{Prober: prober, Writer: w, Alerts: al, Logger: slogDiscard(), Clock: clockwork.NewFakeClock(), Member: "m1"}
	slot := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	results := r.RunSlot(context.Background(), slot, servers("web1", "down1"), nil)
	for what, rs := range map[string][]monitor.Result{"returned": results, "written": w.got, "alerted": al.got} {
		if len(rs) != 2 {
			t.Errorf("%s: %d results, want 2", what, len(rs))
		}
		for _, res := range rs {
			if !res.Slot.Equal(slot) || res.Member != "m1" {
				t.Errorf("%s: %s has slot %v member %q, want %v and m1", what, res.Server, res.Slot, res.Member, slot)
			}
		}
	}
}
