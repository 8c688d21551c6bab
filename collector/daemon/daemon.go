// Package daemon is `collector run`: it runs a collection round (package
// round) on every tick of each server's schedule (package schedule) until
// its context ends or it has run enough rounds, reloads servers.toml when
// told to (SIGHUP, delivered by the command as a channel), prunes data past
// its retention every hour, delivers the alert outbox in the background, and
// gives rounds in flight the grace period to finish when it stops.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/collector/cluster"
	"github.com/crawlerfleet/collector/collector/round"
	"github.com/crawlerfleet/collector/collector/schedule"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// How often the daemon prunes (the store itself skips a prune that another
// command on the same data did less than an hour ago) and retries the alert
// notifications that failed.
const (
	PruneEvery  = time.Hour
	OutboxEvery = 30 * time.Second
)

// A Fleet probes servers and learns the servers of a reloaded inventory
// (collector/fleet).
type Fleet interface {
	round.Prober
	SetInventory(inv *inventory.Inventory)
	// Release lets go of what the fleet keeps running for the named
	// servers between rounds (their watching probes): in a cluster, the
	// servers of a round this member does not own.
	Release(names ...string)
}

// Alerting is what the daemon needs of collector/alerting besides the
// rounds' Observe: it applies the parts of a reloaded inventory that are
// not per-server (channels, repeat), works in the background (delivering
// notifications, writing rule states) until its context ends, and flushes
// what it holds before the daemon stops.
type Alerting interface {
	Reload(inv *inventory.Inventory)
	Run(ctx context.Context, every time.Duration)
	Flush(ctx context.Context)
}

// A Cluster decides which servers of each round this collector probes, when
// it is one member of several (collector/cluster).
type Cluster interface {
	// Assign returns the servers of a round for slot that this member
	// owns, those of them it did not own before, and whether it is fenced
	// (may probe and notify nothing).
	Assign(slot time.Time, servers []inventory.Server) cluster.Assignment
	// Probed counts probes that ended.
	Probed(n int)
}

// Options configure the daemon. Inventory, Fleet and Runner are required.
type Options struct {
	// Inventory is the inventory to start with; its Path is read again on
	// each reload.
	Inventory *inventory.Inventory
	// Fleet probes the servers; Runner runs rounds with it (Runner.Prober
	// should be Fleet).
	Fleet  Fleet
	Runner *round.Runner
	// Alerting may be nil.
	Alerting Alerting
	// Prune deletes data past retention when it is due; it is called at
	// start and every PruneEvery. Nil: no pruning.
	Prune func(ctx context.Context, now time.Time)
	// Reload asks for servers.toml to be read again (the command sends on
	// it for SIGHUP). Nil: no reloads.
	Reload <-chan struct{}
	// OnReload, when set, is told the new inventory after each reload that
	// took effect (the HTTP API serves the running inventory).
	OnReload func(inv *inventory.Inventory)
	// Cluster, when set, makes each round probe only the servers this
	// member owns; a fenced member's rounds probe none and judge only the
	// collector's own "store" alert (Runner.Alerts observes no results).
	Cluster Cluster
	// Adopt, when set, is told the servers a member takes over (before
	// their first round), so their alert states are read again from the
	// store: another member may have moved them on.
	Adopt func(ctx context.Context, servers []string)
	// MaxRounds stops the daemon after that many rounds; 0 runs until ctx
	// ends.
	MaxRounds int64
	// Load reads the inventory again; inventory.Load when nil.
	Load func(path string) (*inventory.Inventory, error)
	// Clock drives the schedule, pruning and the outbox's retries; the
	// real clock when nil.
	Clock  clockwork.Clock
	Logger *slog.Logger
}

// daemon is the state of one Run.
type daemon struct {
	o      Options
	logger *slog.Logger
	clock  clockwork.Clock

	inv    atomic.Pointer[inventory.Inventory]
	stopBy time.Time // when the stop's grace period ends
	rounds atomic.Int64
	enough chan struct{} // closed when MaxRounds rounds are done
	once   sync.Once
}

// Run runs the daemon until ctx ends or MaxRounds rounds are done, then
// stops scheduling and gives rounds in flight [schedule] grace to finish
// before cancelling them; what alerting still holds is flushed within what
// is left of grace. It returns an error only when it cannot start.
func Run(ctx context.Context, o Options) error {
	d := &daemon{o: o, logger: o.Logger, clock: o.Clock, enough: make(chan struct{})}
	if d.logger == nil {
		d.logger = slog.Default()
	}
	if d.clock == nil {
		d.clock = clockwork.NewRealClock()
	}
	if d.o.Load == nil {
		d.o.Load = inventory.Load
	}
	inv := o.Inventory
	d.inv.Store(inv)
	sched, err := schedule.New(inv, d.round, d.logger, schedule.WithClock(d.clock))
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}

	// Background work, stopped and waited for before Run returns: the
	// caller closes the store after that.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if o.Alerting != nil {
		wg.Add(1)
		go func() { defer wg.Done(); o.Alerting.Run(bg, OutboxEvery) }()
	}
	if o.Prune != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.pruneLoop(bg) }()
	}
	defer func() {
		stopBackground()
		wg.Wait()
		if o.Alerting != nil {
			// One last attempt at what the last rounds queued, within the
			// grace period that is left.
			flushCtx, cancel := clockwork.WithDeadline(context.Background(), d.clock, d.stopBy)
			defer cancel()
			o.Alerting.Flush(flushCtx)
		}
	}()

	sched.Start()
	d.logger.Info("collector running", "inventory", inv.Path, "servers", len(inv.Servers), "cron", inv.Schedule.Cron)
loop:
	for {
		select {
		case <-ctx.Done():
			d.logger.Info("stopping: signal received", "grace", d.inv.Load().Schedule.Grace)
			break loop
		case <-d.enough:
			d.logger.Info("stopping: rounds done", "rounds", o.MaxRounds)
			break loop
		case <-o.Reload:
			d.reload(sched)
		}
	}
	grace := d.inv.Load().Schedule.Grace
	d.stopBy = d.clock.Now().Add(grace) // rounds, then the last flush, all within grace
	graceCtx, cancel := clockwork.WithDeadline(context.Background(), d.clock, d.stopBy)
	defer cancel()
	if !sched.Stop(graceCtx) {
		d.logger.Warn("rounds in flight cut short after the grace period", "grace", grace)
	}
	return nil
}

// round is the scheduler's RoundFunc.
func (d *daemon) round(ctx context.Context, slot time.Time, servers []inventory.Server, finished func(string)) {
	if d.o.Cluster != nil {
		servers = d.assign(ctx, slot, servers, finished)
	}
	if len(servers) > 0 {
		results := d.o.Runner.RunSlot(ctx, slot, servers, func(r monitor.Result) { finished(r.Server) })
		if d.o.Cluster != nil {
			d.o.Cluster.Probed(len(results))
		}
	}
	if n := d.rounds.Add(1); d.o.MaxRounds > 0 && n >= d.o.MaxRounds {
		d.once.Do(func() { close(d.enough) })
	}
}

// assign returns the servers of a round that this member owns, releasing
// the others at once. A fenced member owns none: its round judges only the
// collector's own "store" alert, which no other member can raise for it.
func (d *daemon) assign(ctx context.Context, slot time.Time, servers []inventory.Server, finished func(string)) []inventory.Server {
	a := d.o.Cluster.Assign(slot, servers)
	mine := make(map[string]bool, len(a.Mine))
	for _, s := range a.Mine {
		mine[s.Name] = true
	}
	var others []string
	for _, s := range servers {
		if !mine[s.Name] {
			others = append(others, s.Name)
			finished(s.Name)
		}
	}
	// A server another member owns now is watched by it: a probe this one
	// left watching would run on until its silence, for nothing.
	d.o.Fleet.Release(others...)
	if a.Fenced && d.o.Runner.Alerts != nil {
		d.o.Runner.Alerts.Observe(context.WithoutCancel(ctx), nil, nil)
	}
	if len(a.Adopted) > 0 && d.o.Adopt != nil {
		d.o.Adopt(ctx, a.Adopted)
	}
	return a.Mine
}

// pruneLoop prunes at once and then every PruneEvery until ctx ends.
func (d *daemon) pruneLoop(ctx context.Context) {
	tick := d.clock.NewTicker(PruneEvery)
	defer tick.Stop()
	for {
		d.o.Prune(ctx, d.clock.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.Chan():
		}
	}
}

// reload reads the inventory again: servers, their schedules, alert rules,
// the alert repeat interval and the alert channels take effect at once. A
// file that does not parse is rejected and the running inventory kept.
// Settings read only at start are named in a warning.
func (d *daemon) reload(sched *schedule.Scheduler) {
	old := d.inv.Load()
	inv, err := d.o.Load(old.Path)
	if err == nil && len(inv.Servers) == 0 && len(old.Servers) > 0 {
		err = fmt.Errorf("%s lists no server: a reload would stop monitoring all %d; to stop on purpose, stop the collector (SIGTERM, systemctl stop)",
			old.Path, len(old.Servers))
	}
	if err != nil {
		d.logger.Error("reload rejected: keeping the running inventory", "inventory", old.Path, "err", err)
		return
	}
	// The fleet learns the new servers (and their jump hosts) before the
	// schedule can start a round of them.
	d.o.Fleet.SetInventory(inv)
	if err := sched.Reload(inv); err != nil {
		d.o.Fleet.SetInventory(old)
		d.logger.Error("reload rejected: keeping the running inventory", "inventory", old.Path, "err", err)
		return
	}
	if d.o.Alerting != nil {
		d.o.Alerting.Reload(inv)
	}
	d.inv.Store(inv)
	if d.o.OnReload != nil {
		d.o.OnReload(inv)
	}
	if changed := StartOnlyChanges(old, inv); len(changed) > 0 {
		d.logger.Warn("settings read only at start changed: restart the collector to use them", "settings", changed)
	}
	d.logger.Info("inventory reloaded", "inventory", inv.Path, "servers", len(inv.Servers))
}

// StartOnlyChanges names the settings that differ between old and inv but
// are read only when the daemon starts.
func StartOnlyChanges(old, inv *inventory.Inventory) []string {
	var changed []string
	for _, c := range []struct {
		name string
		same bool
	}{
		{"[store]", old.Store == inv.Store},
		{"[schedule] concurrency", old.Schedule.Concurrency == inv.Schedule.Concurrency},
		{"[schedule] splay", old.Schedule.Splay == inv.Schedule.Splay},
		{"[http]", old.HTTP == inv.HTTP},
		{"[cluster]", old.Cluster == inv.Cluster},
	} {
		if !c.same {
			changed = append(changed, c.name)
		}
	}
	return changed
}
