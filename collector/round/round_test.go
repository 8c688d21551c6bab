package round

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// steppedProber returns one result per server, each after the test lets it
// through release, so that a test can act between two results.
type steppedProber struct {
	release chan struct{}
}

func (p *steppedProber) Probe(ctx context.Context, servers []inventory.Server, onResult func(monitor.Result)) []monitor.Result {
	var out []monitor.Result
	for i, s := range servers {
		<-p.release
		r := monitor.Result{Server: s.Name, At: time.Unix(int64(i), 0), Duration: time.Millisecond}
		if strings.HasPrefix(s.Name, "down") {
			r.Kind, r.Err = monitor.KindUnreachable, errors.New(s.Name+": connection refused")
		} else {
			r.Snapshot = &snapshot.Snapshot{Version: snapshot.Version, Time: r.At}
		}
		onResult(r)
		out = append(out, r)
	}
	return out
}

type recordingWriter struct {
	mu      sync.Mutex
	batches [][]string
	wrote   chan struct{}
	err     error
}

func (w *recordingWriter) Write(_ context.Context, results []monitor.Result) error {
	w.mu.Lock()
	var names []string
	for _, r := range results {
		names = append(names, r.Server)
	}
	w.batches = append(w.batches, names)
	w.mu.Unlock()
	w.wrote <- struct{}{}
	return w.err
}

type recordingAlerter struct {
	got []monitor.Result
}

func (a *recordingAlerter) Observe(_ context.Context, _ []inventory.Server, results []monitor.Result) {
	a.got = append(a.got, results...)
}

func servers(names ...string) []inventory.Server {
	var out []inventory.Server
	for _, n := range names {
		out = append(out, inventory.Server{Name: n})
	}
	return out
}

// A slow server does not hold back the results that came before it: every
// WriteEvery they are written, and the rest when the round ends; then the
// alerts see the whole round.
func TestRunWritesInBatchesAsResultsArrive(t *testing.T) {
	clock := clockwork.NewFakeClock()
	logger, _ := testutil.Logger(t)
	prober := &steppedProber{release: make(chan struct{})}
	w := &recordingWriter{wrote: make(chan struct{}, 4)}
	al := &recordingAlerter{}
	var rounds []int
	r := &Runner{Prober: prober, Writer: w, Alerts: al, Logger: logger, Clock: clock,
		AfterRound: func(results []monitor.Result, _ time.Duration) { rounds = append(rounds, len(results)) }}

	var seen []string
	queued := make(chan struct{}, 3) // onResult runs after its result is queued for writing
	done := make(chan []monitor.Result)
	go func() {
		done <- r.Run(context.Background(), servers("web1", "down1", "web2"), func(res monitor.Result) {
			seen = append(seen, res.Server)
			queued <- struct{}{}
		})
	}()
	prober.release <- struct{}{}
	prober.release <- struct{}{}
	<-queued
	<-queued
	// The batcher waits on its ticker; the first two results are queued.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(WriteEvery)
	<-w.wrote
	prober.release <- struct{}{} // web2, the slow one
	results := <-done
	<-w.wrote

	if len(results) != 3 || strings.Join(seen, " ") != "web1 down1 web2" {
		t.Fatalf("results %d, onResult saw %q", len(results), seen)
	}
	want := [][]string{{"web1", "down1"}, {"web2"}}
	if len(w.batches) != 2 || strings.Join(w.batches[0], " ") != "web1 down1" || strings.Join(w.batches[1], " ") != "web2" {
		t.Errorf("batches %q, want %q", w.batches, want)
	}
	if len(al.got) != 3 {
		t.Errorf("alerts observed %d results, want the whole round of 3", len(al.got))
	}
	if len(rounds) != 1 || rounds[0] != 3 {
		t.Errorf("AfterRound saw %v", rounds)
	}
}

// A write that fails for good is logged with the number of results lost;
// the round still completes and alerts still run.
func TestRunLogsResultsLost(t *testing.T) {
	logger, logs := testutil.Logger(t)
	prober := &steppedProber{release: make(chan struct{}, 2)}
	prober.release <- struct{}{}
	prober.release <- struct{}{}
	w := &recordingWriter{wrote: make(chan struct{}, 4), err: errors.New("spool full")}
	al := &recordingAlerter{}
	r := &Runner{Prober: prober, Writer: w, Alerts: al, Logger: logger, Clock: clockwork.NewFakeClock()}
	results := r.Run(context.Background(), servers("web1", "web2"), nil)
	if len(results) != 2 || len(al.got) != 2 {
		t.Fatalf("results %d, alerts %d", len(results), len(al.got))
	}
	if !strings.Contains(logs.String(), "results lost") || !strings.Contains(logs.String(), "results=2") {
		t.Errorf("no 'results lost' log naming 2 results:\n%s", logs)
	}
}

// Without a writer or alerter the round only probes (`collector once`).
func TestRunProbeOnly(t *testing.T) {
	prober := &steppedProber{release: make(chan struct{}, 1)}
	prober.release <- struct{}{}
	r := &Runner{Prober: prober, Logger: slogDiscard()}
	if got := r.Run(context.Background(), servers("web1"), nil); len(got) != 1 || got[0].Failed() {
		t.Fatalf("results %+v", got)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
