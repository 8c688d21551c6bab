package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/store"
)

// resultWriter is what a round needs of the store.
type resultWriter interface {
	Write(ctx context.Context, results []store.Result) error
}

// Results are written in batches of up to writeBatch, and at least every
// writeEvery while a round goes on, so that a slow server does not hold back
// the others' results.
const (
	writeBatch = 5000
	writeEvery = 2 * time.Second
)

// rounder runs collection rounds: probe servers, write the results. It is
// the one code path of `collect`, `once --store` and every tick of `run`.
type rounder struct {
	fleet  *fleet.Fleet
	writer resultWriter // nil: results are not stored
	alerts *alerting    // nil: no alert evaluation
	logger *slog.Logger
	// afterRound, when set, is told every round's results and duration
	// (the HTTP API's metrics).
	afterRound func(results []fleet.Result, d time.Duration)
}

// run probes servers and writes their results. onResult, when not nil, is
// called as each server finishes, after its result is queued for writing.
func (r *rounder) run(ctx context.Context, servers []inventory.Server, onResult func(fleet.Result)) []fleet.Result {
	start := time.Now()
	var b *batcher
	if r.writer != nil {
		b = newBatcher(ctx, r.writer, r.logger)
	}
	results := r.fleet.Probe(ctx, servers, func(res fleet.Result) {
		if b != nil {
			b.add(storeResult(res))
		}
		if onResult != nil {
			onResult(res)
		}
	})
	if b != nil {
		b.close()
	}
	if r.alerts != nil {
		r.alerts.observe(ctx, servers, results)
	}
	failed := 0
	for _, res := range results {
		if res.Err != nil {
			failed++
		}
	}
	r.logger.Info("round done", "servers", len(servers), "failed", failed, "duration_ms", time.Since(start).Milliseconds())
	if r.afterRound != nil {
		r.afterRound(results, time.Since(start))
	}
	return results
}

// storeResult converts a probe result into what the store keeps.
func storeResult(r fleet.Result) store.Result {
	out := store.Result{Server: r.Server, At: r.End(), Duration: r.Duration, Snapshot: r.Snapshot}
	if r.Err != nil {
		out.Snapshot = nil
		out.Err = r.Err.Error()
		out.ErrKind = storeKind(r.Kind)
	}
	return out
}

// storeKind maps a failure kind to the store's.
func storeKind(k fleet.Kind) store.ErrKind {
	switch k {
	case fleet.KindUnreachable, fleet.KindError:
		return store.KindUnreachable // a dropped connection is unreachable too
	case fleet.KindAuth:
		return store.KindAuth
	case fleet.KindHostKey:
		return store.KindHostKey
	case fleet.KindTimeout:
		return store.KindTimeout
	case fleet.KindConfig:
		return store.KindConfig
	}
	return store.KindProbe
}

// batcher gathers results and writes them in batches from one goroutine.
type batcher struct {
	writer resultWriter
	logger *slog.Logger

	mu      sync.Mutex
	pending []store.Result
	kick    chan struct{}
	done    chan struct{}
	stop    chan struct{}
}

func newBatcher(ctx context.Context, w resultWriter, logger *slog.Logger) *batcher {
	b := &batcher{writer: w, logger: logger, kick: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{})}
	// Writes outlive a cancelled round: what was collected is kept.
	ctx = context.WithoutCancel(ctx)
	go b.loop(ctx)
	return b
}

func (b *batcher) add(r store.Result) {
	b.mu.Lock()
	b.pending = append(b.pending, r)
	full := len(b.pending) >= writeBatch
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
	tick := time.NewTicker(writeEvery)
	defer tick.Stop()
	for {
		select {
		case <-b.kick:
		case <-tick.C:
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
	// The store spools what the database does not take; an error here means
	// the results could be kept nowhere.
	if err := b.writer.Write(ctx, batch); err != nil {
		b.logger.Error("results lost: cannot write them to the database or the spool", "results", len(batch), "err", err)
	}
}

// close writes what is pending and waits for the writer.
func (b *batcher) close() {
	close(b.stop)
	<-b.done
}
