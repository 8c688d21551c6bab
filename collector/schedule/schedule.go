// Package schedule runs collection rounds on the inventory's cron schedules.
//
// Servers that share a schedule are probed in one round per tick. A server
// whose previous round has not finished is skipped on that tick (and the
// skip is logged), so rounds never overlap per server and a hung server
// cannot pile up work.
package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/crawlerfleet/collector/inventory"
)

// A RoundFunc probes servers once. It is called from the scheduler's own
// goroutines, possibly several at a time for disjoint sets of servers. It
// calls finished with each server's name as soon as that server is done, so
// that the server is due again on its next tick even while slower servers of
// the same round are still busy.
type RoundFunc func(ctx context.Context, servers []inventory.Server, finished func(name string))

// A Scheduler calls a RoundFunc on every tick of each server's schedule.
type Scheduler struct {
	round  RoundFunc
	logger *slog.Logger
	ctx    context.Context // passed to rounds; cancelled by Stop when grace runs out
	cancel context.CancelFunc

	mu       sync.Mutex
	stopped  bool
	cron     *cron.Cron
	running  map[string]uint64 // servers in a round now, by the round's id
	rounds   uint64            // rounds started, for ids
	inflight sync.WaitGroup
}

// New returns a scheduler for inv that calls round. Start it with Start.
func New(inv *inventory.Inventory, round RoundFunc, logger *slog.Logger) (*Scheduler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{round: round, logger: logger, ctx: ctx, cancel: cancel, running: map[string]uint64{}}
	c, err := s.build(inv)
	if err != nil {
		cancel()
		return nil, err
	}
	s.cron = c
	return s, nil
}

// build makes one cron entry per distinct schedule of inv.
func (s *Scheduler) build(inv *inventory.Inventory) (*cron.Cron, error) {
	loc := inv.Schedule.Location
	if loc == nil {
		loc = time.Local
	}
	c := cron.New(cron.WithLocation(loc), cron.WithParser(inventory.CronParser))
	groups := map[string][]inventory.Server{}
	var specs []string
	for _, srv := range inv.Servers {
		if _, ok := groups[srv.Schedule]; !ok {
			specs = append(specs, srv.Schedule)
		}
		groups[srv.Schedule] = append(groups[srv.Schedule], srv)
	}
	for _, spec := range specs {
		servers := groups[spec]
		if _, err := c.AddFunc(spec, func() { s.tick(spec, servers) }); err != nil {
			return nil, fmt.Errorf("schedule %q: %w", spec, err)
		}
	}
	return c, nil
}

// tick runs one round over the servers of one schedule that are not still
// busy with an earlier round.
func (s *Scheduler) tick(spec string, servers []inventory.Server) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.rounds++
	id := s.rounds
	due := make([]inventory.Server, 0, len(servers))
	var skipped []string
	for _, srv := range servers {
		if _, busy := s.running[srv.Name]; busy {
			skipped = append(skipped, srv.Name)
			continue
		}
		s.running[srv.Name] = id
		due = append(due, srv)
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()

	if len(skipped) > 0 {
		s.logger.Warn("servers skipped: previous round still running", "schedule", spec, "servers", skipped)
	}
	if len(due) == 0 {
		return
	}
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
	s.round(s.ctx, due, finished)
}

// Start starts scheduling in the background.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cron.Start()
}

// Reload replaces the schedules with those of inv. Rounds in flight finish
// as they were started.
func (s *Scheduler) Reload(inv *inventory.Inventory) error {
	c, err := s.build(inv)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.cron
	s.cron = c
	c.Start()
	s.mu.Unlock()
	old.Stop() // its running jobs are tracked by inflight
	return nil
}

// Stop stops scheduling and waits for rounds in flight; when ctx ends first,
// it cancels them and waits for them to return. It reports whether the
// rounds finished on their own.
func (s *Scheduler) Stop(ctx context.Context) bool {
	s.mu.Lock()
	s.stopped = true
	s.cron.Stop()
	s.mu.Unlock()
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
