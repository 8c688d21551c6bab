package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/crawlerfleet/collector/collector/pull"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// Watch mode (Options.Watch, for `collector run`): each server whose
// Resolution is not 0 keeps one probe running in watch mode over its kept
// connection, and each Probe reads from it the snapshot of the interval
// since the last one:
//
//   - no watching probe yet (the first tick, after a reload that changed
//     how it is run, or after one that could not be restarted): the tick
//     runs the one-shot probe, as without watch mode, and then starts the
//     watching probe, so that the next tick reads a whole interval;
//   - a watching probe that answers: its snapshot is the tick's result;
//   - one that is gone (killed, exited after its silence, its connection
//     lost) or fails to answer in time: the tick's result is a failure, a
//     *GapError whose kind is the cause's and whose message names the time
//     not watched, and a new watching probe is started at once.
//
// A watching probe exits when its stdin or session closes (Close,
// SetInventory dropping the server or its connection), and on its own after
// a silence of twice the longest gap between the server's ticks plus 30 s
// (inventory.WatchSilence), whatever became of the collector.

// watched is the watching probe of one server.
type watched struct {
	w     *pull.Watch
	conn  *conn     // the connection it runs over
	key   string    // what it was started with; see watchKey
	since time.Time // the start of the interval it watches now, on the fleet's clock
}

// A GapError is a tick whose watching probe was lost: the time since Since
// was not watched. Err is the cause, and decides the failure's kind.
type GapError struct {
	Since time.Time
	Gap   time.Duration // from Since to the tick
	Err   error
	// Restarted tells whether a new watching probe was started at the tick.
	Restarted bool
}

func (e *GapError) Error() string {
	next := "watching again from this tick"
	if !e.Restarted {
		next = "the next tick probes once and starts watching again"
	}
	return fmt.Sprintf("%v; not watched for %s since %s; %s", e.Err, e.Gap.Round(time.Second), e.Since.UTC().Format("2006-01-02 15:04:05 UTC"), next)
}

func (e *GapError) Unwrap() error { return e.Err }

// watchKey is what a watching probe of s is started with, as one
// comparable string: a change to any of it starts a new probe.
func watchKey(s inventory.Server, silence time.Duration) string {
	return fmt.Sprintf("%v %v %v %q %q", s.Resolution, silence, s.Timeout, s.ProbeDir, s.ProbeKeywords())
}

// probeWatching probes s in watch mode when the fleet watches and s has a
// resolution, else with the one-shot probe; it fills in r.
func (f *Fleet) probeWatching(ctx context.Context, s inventory.Server, r *monitor.Result, log *slog.Logger) error {
	if !f.watch || s.Resolution <= 0 {
		f.stopWatch(s.Name)
		return f.pull(ctx, s, r, log)
	}
	now := f.clock.Now()
	silence, ok := f.inventory().WatchSilence(s, now)
	if !ok {
		f.stopWatch(s.Name) // a schedule that does not tick again
		return f.pull(ctx, s, r, log)
	}
	key := watchKey(s, silence)

	f.mu.Lock()
	ws := f.watches[s.Name]
	f.mu.Unlock()
	if ws != nil && ws.key != key {
		log.Debug("watch settings changed; starting a new watching probe")
		f.stopWatch(s.Name)
		ws = nil
	}
	if ws == nil {
		// Nothing watched the time before this tick: probe once for it, then
		// watch from now on.
		if err := f.pull(ctx, s, r, log); err != nil {
			return err
		}
		if err := f.startWatch(ctx, s, key, silence, log); err != nil {
			log.Warn("cannot start the watching probe; probing once per tick until it starts", "err", err)
		}
		return nil
	}

	r.Reused = true
	snap, info, err := ws.w.Next(ctx)
	if err == nil {
		r.Snapshot, r.ClockSkew, r.Platform = snap, info.ClockSkew, info.Platform
		ws.since = f.clock.Now()
		return nil
	}
	f.stopWatch(s.Name)
	var pe *pull.ProbeError
	if !errors.As(err, &pe) {
		f.drop(s.Name, ws.conn) // the connection may be dead: redial
	}
	gap := &GapError{Since: ws.since, Gap: f.clock.Since(ws.since), Err: err}
	if ctx.Err() == nil {
		if serr := f.startWatch(ctx, s, key, silence, log); serr != nil {
			log.Warn("cannot restart the watching probe", "err", serr)
		} else {
			gap.Restarted = true
			r.Dialed = !errors.As(err, &pe)
		}
	}
	return gap
}

// startWatch starts a watching probe of s over its kept connection (or a
// new one) and keeps it.
func (f *Fleet) startWatch(ctx context.Context, s inventory.Server, key string, silence time.Duration, log *slog.Logger) error {
	c, _, err := f.connect(ctx, s, log)
	if err != nil {
		return err
	}
	w, _, err := c.target.Watch(ctx, pull.WatchOptions{
		Keywords:   s.ProbeKeywords(),
		Resolution: s.Resolution,
		Silence:    silence,
		Timeout:    pull.WatchTimeout(s.Timeout),
		ProbeDir:   s.ProbeDir,
		Now:        f.clock.Now,
	})
	if err != nil {
		var pe *pull.ProbeError
		if !errors.As(err, &pe) {
			f.drop(s.Name, c)
		}
		return err
	}
	ws := &watched{w: w, conn: c, key: key, since: f.clock.Now()}
	f.mu.Lock()
	old := f.watches[s.Name]
	f.watches[s.Name] = ws
	f.mu.Unlock()
	if old != nil {
		old.w.Close()
	}
	log.Debug("watching probe started", "resolution", s.Resolution, "silence", silence)
	return nil
}

// stopWatch ends the watching probes of the named servers, if any.
func (f *Fleet) stopWatch(names ...string) {
	var gone []*watched
	f.mu.Lock()
	for _, n := range names {
		if ws := f.watches[n]; ws != nil {
			gone = append(gone, ws)
			delete(f.watches, n)
		}
	}
	f.mu.Unlock()
	for _, ws := range gone {
		ws.w.Close()
	}
}

// Release ends the watching probes of the named servers, if any: a
// cluster member calls it for the servers another member owns now. A
// server released and probed again later starts with a one-shot probe.
func (f *Fleet) Release(names ...string) { f.stopWatch(names...) }

// Watching returns the names of the servers with a watching probe, for
// tests and logs, sorted.
func (f *Fleet) Watching() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.watches))
}

func (f *Fleet) inventory() *inventory.Inventory {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inv
}
