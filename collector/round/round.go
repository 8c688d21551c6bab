// Package round runs one collection round, the use case at the heart of the
// collector: it probes servers (a Prober: collector/fleet), writes every
// result to the store as it arrives (a Writer: store/spool over store), and
// hands the round's results to the alert rules (an Alerter:
// collector/alerting). `collector once --store`, `collector collect` and
// every tick of `collector run` all go through Runner.Run.
package round

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// A Prober probes servers concurrently and returns their results in the
// order of servers, calling onResult (when not nil) as each one finishes.
type Prober interface {
	Probe(ctx context.Context, servers []inventory.Server, onResult func(monitor.Result)) []monitor.Result
}

// A Writer keeps results. An error means results that could be kept
// nowhere (the spool keeps what the database does not take).
type Writer interface {
	Write(ctx context.Context, results []monitor.Result) error
}

// An Alerter judges a round's results against the alert rules of servers.
type Alerter interface {
	Observe(ctx context.Context, servers []inventory.Server, results []monitor.Result)
}

// Results are written in batches of up to WriteBatch, and at least every
// WriteEvery while a round goes on, so that a slow server does not hold back
// the others' results, and a result reaches the spool (on disk) within
// WriteEvery of its probe.
const (
	WriteBatch = 5000
	WriteEvery = 500 * time.Millisecond
)

// A Runner runs collection rounds: probe, write, alert. Only Prober is
// required; the zero values of the others leave their step out.
type Runner struct {
	Prober Prober
	Writer Writer  // nil: results are not stored
	Alerts Alerter // nil: no alert evaluation
	Logger *slog.Logger
	Clock  clockwork.Clock // the real clock when nil
	// AfterRound, when set, is told every round's results and duration
	// (the HTTP API's metrics).
	AfterRound func(results []monitor.Result, d time.Duration)
	// Member, when set, is stamped on every result (monitor.Result.Member):
	// the name of this collector in a cluster.
	Member string
}

// Run probes servers, writes their results in batches as they arrive, then
// evaluates the alert rules on the whole round. onResult, when not nil, is
// called as each server finishes, after its result is queued for writing.
// Writes and alerts outlive a cancelled ctx: what was collected is kept and
// judged.
func (r *Runner) Run(ctx context.Context, servers []inventory.Server, onResult func(monitor.Result)) []monitor.Result {
	return r.RunSlot(ctx, time.Time{}, servers, onResult)
}

// RunSlot is Run for the schedule's tick slot: every result carries it
// (monitor.Result.Slot), so that the store keeps one result per server and
// slot. A zero slot is Run.
func (r *Runner) RunSlot(ctx context.Context, slot time.Time, servers []inventory.Server, onResult func(monitor.Result)) []monitor.Result {
	clock := r.clock()
	logger := r.logger()
	start := clock.Now()
	var b *batcher
	if r.Writer != nil {
		b = newBatcher(context.WithoutCancel(ctx), r.Writer, clock, logger)
	}
	stamp := func(res *monitor.Result) { res.Slot, res.Member = slot, r.Member }
	results := r.Prober.Probe(ctx, servers, func(res monitor.Result) {
		stamp(&res)
		if b != nil {
			b.add(res)
		}
		if onResult != nil {
			onResult(res)
		}
	})
	for i := range results {
		stamp(&results[i])
	}
	if b != nil {
		b.close()
	}
	if r.Alerts != nil {
		r.Alerts.Observe(context.WithoutCancel(ctx), servers, results)
	}
	failed := 0
	for _, res := range results {
		if res.Failed() {
			failed++
		}
	}
	d := clock.Since(start)
	logger.Info("round done", "servers", len(servers), "failed", failed, "duration_ms", d.Milliseconds())
	if r.AfterRound != nil {
		r.AfterRound(results, d)
	}
	return results
}

func (r *Runner) clock() clockwork.Clock {
	if r.Clock == nil {
		return clockwork.NewRealClock()
	}
	return r.Clock
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}

// batcher gathers results and writes them in batches from one goroutine.
type batcher struct {
	writer Writer
	clock  clockwork.Clock
	logger *slog.Logger

	mu      sync.Mutex
	pending []monitor.Result
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newBatcher(ctx context.Context, w Writer, clock clockwork.Clock, logger *slog.Logger) *batcher {
	b := &batcher{writer: w, clock: clock, logger: logger,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop(ctx)
	return b
}

func (b *batcher) add(r monitor.Result) {
	b.mu.Lock()
	b.pending = append(b.pending, r)
	full := len(b.pending) >= WriteBatch
	b.mu.Unlock()
	if full {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

func (b *batcher) loop(ctx context.Context) {
	defer close(b.done)
	tick := b.clock.NewTicker(WriteEvery)
	defer tick.Stop()
	for {
		select {
		case <-b.kick:
		case <-tick.Chan():
		case <-b.stop:
			b.flush(ctx)
			return
		}
		b.flush(ctx)
	}
}

func (b *batcher) flush(ctx context.Context) {
	b.mu.Lock()
	batch := b.pending
	b.pending = nil
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := b.writer.Write(ctx, batch); err != nil {
		b.logger.Error("results lost: cannot write them to the database or the spool", "results", len(batch), "err", err)
	}
}

// close writes what is pending and waits for the writer.
func (b *batcher) close() {
	close(b.stop)
	<-b.done
}
