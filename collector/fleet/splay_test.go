package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/probetest"
	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
)

func TestProbeSplaysStarts(t *testing.T) {
	srv := sshdtest.Start(t)
	var servers string
	for i := range 6 {
		servers += fmt.Sprintf("\n[[server]]\nname = \"local%d\"\naddress = \"local\"\n", i)
	}
	inv := parseInventory(t, srv, servers)
	f := New(inv, Options{Probes: probetest.Set(t), Logger: slog.New(slog.DiscardHandler), Splay: time.Second})
	t.Cleanup(func() { f.Close() })

	begin := time.Now()
	results := f.Probe(context.Background(), inv.Servers, nil)
	var offsets []time.Duration
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Server, r.Err)
		}
		offsets = append(offsets, r.Start.Sub(begin))
	}
	slices.Sort(offsets)
	if spread := offsets[len(offsets)-1] - offsets[0]; spread < 100*time.Millisecond {
		t.Errorf("starts spread over %v with a 1s splay: %v", spread, offsets)
	}
	if offsets[len(offsets)-1] > 1500*time.Millisecond {
		t.Errorf("a start came %v after the round began, past the 1s splay", offsets[len(offsets)-1])
	}

	// A cancelled round does not wait out the splay.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f2 := New(inv, Options{Probes: probetest.Set(t), Logger: slog.New(slog.DiscardHandler), Splay: time.Hour})
	t.Cleanup(func() { f2.Close() })
	begin = time.Now()
	f2.Probe(ctx, inv.Servers, nil)
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("a cancelled round waited %v", d)
	}
}
