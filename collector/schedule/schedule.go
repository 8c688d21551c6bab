// Package schedule runs collection rounds on the inventory's cron schedules.
//
// Servers that share a schedule are probed in one round per tick. A server
// whose previous round has not finished is skipped on that tick (and the
// skip is logged), so rounds never overlap per server and a hung server
// cannot pile up work.
//
// Ticks are timed by a clockwork.Clock (the real clock unless WithClock
// gives another), so tests drive them with a fake clock. Specs are parsed by
// inventory.CronParser: 5 fields, 6 with seconds first, or descriptors such
// as @hourly and @every 90s; they are read in the inventory's time zone
// ([schedule] timezone).
//
// Ticks never queue up. A tick is one instant: it starts a round of the
// servers of its schedule that are free, or none when all are busy. When
// rounds take longer than the interval, the ticks in between skip the busy
// servers; when the scheduler itself was held up past several ticks, it
// fires once and then waits for the next tick after the present time.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/robfig/cron/v3"

	"github.com/crawlerfleet/collector/inventory"
)

// A RoundFunc probes servers once, for the tick slot of their schedule (the
// instant the schedule named, which a late round starts after). It is
// called from the scheduler's own goroutines, possibly several at a time for
// disjoint sets of servers, and never with no servers. It calls finished
// with each server's name as soon as that server is done, so that the
// server is due again on its next tick even while slower servers of the
// same round are still busy. Servers not released by finished are released
// when the RoundFunc returns.
type RoundFunc func(ctx context.Context, slot time.Time, servers []inventory.Server, finished func(name string))

// An Option changes how New sets up a Scheduler.
type Option func(*Scheduler)

// WithClock makes the Scheduler time its ticks by clock instead of the real
// clock, such as a *clockwork.FakeClock in tests. Each distinct schedule
// waits on one timer of clock at a time.
func WithClock(clock clockwork.Clock) Option {
	return func(s *Scheduler) { s.clock = clock }
}

// A Scheduler calls a RoundFunc on every tick of each server's schedule.
type Scheduler struct {
	round  RoundFunc
	logger *slog.Logger
	clock  clockwork.Clock
	ctx    context.Context // passed to rounds; cancelled by Stop when grace runs out
	cancel context.CancelFunc

	mu       sync.Mutex
	stopped  bool
	started  bool
	gen      *generation       // the schedules in force
	running  map[string]uint64 // servers in a round now, by the round's id
	rounds   uint64            // rounds started, for ids
	inflight sync.WaitGroup    // rounds in flight
}

// A generation is the set of schedules of one inventory, each ticking in its
// own goroutine until stop is closed.
type generation struct {
	entries []*entry
	stop    chan struct{}
	halted  sync.Once
	loops   sync.WaitGroup
}

// An entry is one distinct schedule and the servers on it.
type entry struct {
	spec     string
	schedule cron.Schedule
	loc      *time.Location
	servers  []inventory.Server

	next time.Time // the tick waited for; guarded by Scheduler.mu
}

// New returns a scheduler for inv that calls round. Start it with Start.
func New(inv *inventory.Inventory, round RoundFunc, logger *slog.Logger, opts ...Option) (*Scheduler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{round: round, logger: logger, clock: clockwork.NewRealClock(), ctx: ctx, cancel: cancel, running: map[string]uint64{}}
	for _, opt := range opts {
		opt(s)
	}
	g, err := build(inv)
	if err != nil {
		cancel()
		return nil, err
	}
	s.gen = g
	return s, nil
}

// build parses one entry per distinct schedule of inv, in the order the
// schedules first appear.
func build(inv *inventory.Inventory) (*generation, error) {
	loc := inv.Schedule.Location
	if loc == nil {
		loc = time.Local
	}
	g := &generation{stop: make(chan struct{})}
	bySpec := map[string]*entry{}
	for _, srv := range inv.Servers {
		e := bySpec[srv.Schedule]
		if e == nil {
			sched, err := inventory.CronParser.Parse(srv.Schedule)
			if err != nil {
				return nil, fmt.Errorf("schedule %q: %w", srv.Schedule, err)
			}
			e = &entry{spec: srv.Schedule, schedule: sched, loc: loc}
			bySpec[srv.Schedule] = e
			g.entries = append(g.entries, e)
		}
		e.servers = append(e.servers, srv)
	}
	return g, nil
}

// start starts a goroutine per entry of g. The caller holds s.mu.
func (s *Scheduler) start(g *generation) {
	for _, e := range g.entries {
		g.loops.Add(1)
		go func() {
			defer g.loops.Done()
			s.loop(g, e)
		}()
	}
}

// halt stops the goroutines of g, once, and waits for them. Rounds they
// started keep running (tracked by s.inflight). The caller must not hold
// s.mu.
func halt(g *generation) {
	g.halted.Do(func() { close(g.stop) })
	g.loops.Wait()
}

// loop waits for each tick of e's schedule and starts its round, until g
// is stopped.
func (s *Scheduler) loop(g *generation, e *entry) {
	now := s.clock.Now()
	for {
		next := e.schedule.Next(now.In(e.loc))
		if next.IsZero() {
			return // the schedule never fires again (such as 30 February)
		}
		s.mu.Lock()
		e.next = next
		s.mu.Unlock()
		t := s.clock.NewTimer(next.Sub(now))
		select {
		case <-g.stop:
			t.Stop()
			return
		case <-t.Chan():
		}
		if !s.tick(g, e, next) {
			return
		}
		// The next tick is the first after the present time: ticks that
		// went by while this one was late are not made up.
		now = s.clock.Now()
		if now.Before(next) {
			now = next // the clock was set back; never fire one tick twice
		}
	}
}

// tick starts a round of the servers of e that are not still busy with an
// earlier round, and logs those skipped. The round runs in its own
// goroutine; it is counted in s.inflight before tick returns. tick returns
// false when g is no longer in force (stopped, or replaced by Reload).
func (s *Scheduler) tick(g *generation, e *entry, slot time.Time) bool {
	s.mu.Lock()
	if s.stopped || s.gen != g {
		s.mu.Unlock()
		return false
	}
	due := make([]inventory.Server, 0, len(e.servers))
	var skipped []string
	for _, srv := range e.servers {
		if _, busy := s.running[srv.Name]; busy {
			skipped = append(skipped, srv.Name)
			continue
		}
		due = append(due, srv)
	}
	var id uint64
	if len(due) > 0 {
		s.rounds++
		id = s.rounds
		for _, srv := range due {
			s.running[srv.Name] = id
		}
		s.inflight.Add(1)
	}
	s.mu.Unlock()

	if len(skipped) > 0 {
		s.logger.Warn("servers skipped: previous round still running", "schedule", e.spec, "servers", skipped)
	}
	if len(due) > 0 {
		go s.run(id, slot, due)
	}
	return true
}

// run calls the RoundFunc for round id and releases its servers.
func (s *Scheduler) run(id uint64, slot time.Time, due []inventory.Server) {
	defer s.inflight.Done()
	finished := func(name string) {
		s.mu.Lock()
		if s.running[name] == id { // not yet released, nor taken by a later round
			delete(s.running, name)
		}
		s.mu.Unlock()
	}
	defer func() {
		for _, srv := range due {
			finished(srv.Name)
		}
	}()
	s.round(s.ctx, slot, due, finished)
}

// Start starts scheduling in the background. Calling it again does nothing.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	s.start(s.gen)
}

// errStopped is Reload's error after Stop.
var errStopped = errors.New("reload schedules: the scheduler is stopped")

// Reload replaces the schedules with those of inv, and starts them if the
// scheduler was not started yet. Rounds in flight finish as they were
// started, and their servers stay busy until then, so that a server kept in
// inv is skipped by the new schedules until its round is done. When Reload
// returns, the old schedules start no more rounds. A spec that does not
// parse is an error, and the old schedules stay.
func (s *Scheduler) Reload(inv *inventory.Inventory) error {
	g, err := build(inv)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errStopped
	}
	old := s.gen
	s.gen = g
	s.started = true
	s.start(g)
	s.mu.Unlock()
	halt(old)
	return nil
}

// Stop stops scheduling and waits for rounds in flight; when ctx ends first,
// it cancels them and waits for them to return. It reports whether the
// rounds finished on their own.
func (s *Scheduler) Stop(ctx context.Context) bool {
	s.mu.Lock()
	s.stopped = true
	g := s.gen
	s.mu.Unlock()
	halt(g) // no round starts after this
	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return true
	case <-ctx.Done():
		s.cancel()
		<-done
		return false
	}
}

// busy returns the servers in a round now, sorted.
func (s *Scheduler) busy() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.running))
	for name := range s.running {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// nextTicks returns the tick each schedule waits for, by spec; a schedule
// not started yet has none.
func (s *Scheduler) nextTicks() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Time{}
	for _, e := range s.gen.entries {
		if !e.next.IsZero() {
			out[e.spec] = e.next
		}
	}
	return out
}
