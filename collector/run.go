package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/schedule"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/store"
)

// pruneEvery is how often the daemon, and collect at most, delete data past
// its retention; outboxEvery how often the daemon retries alert
// notifications that failed.
const (
	pruneEvery  = time.Hour
	outboxEvery = 30 * time.Second
)

func runRun(ctx context.Context, e *env, args []string) int {
	fs := e.newFlagSet("run", "Usage: collector run [--rounds N] [--listen 127.0.0.1:9108]\n\n"+
		"Collect every server on its cron schedule and store the results, until SIGINT or\n"+
		"SIGTERM (in-flight rounds get [schedule] grace to finish). SIGHUP reloads the\n"+
		"inventory; a bad file is rejected and the running inventory kept.\n\n")
	maxRounds := fs.Int64("rounds", 0, "stop after this many rounds (0: run until SIGINT or SIGTERM)")
	listen := fs.String("listen", "", "serve the JSON API, /metrics and a live page on this address (default [http] listen; off when neither is set)")
	if _, code, ok := parseArgs(fs, args, 0, 0); !ok {
		return code
	}
	inv, code := e.inventory()
	if code != exitOK {
		return code
	}
	logger := e.logger(slog.LevelInfo)
	st, code := e.openStore(ctx, inv, logger)
	if code != exitOK {
		return code
	}
	defer closeStore(st, logger)
	f := e.scheduledFleet(inv, logger)
	defer f.Close()

	al := e.newAlerting(inv, st, logger)
	// Deliver queued notifications (and retry failed ones) until stopped.
	outboxCtx, stopOutbox := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { al.outbox.Run(outboxCtx, outboxEvery); close(done) }()
	defer func() {
		al.flush(context.Background())
		stopOutbox()
		<-done
	}()
	d := &daemon{e: e, logger: logger, store: st, fleet: f, rounder: &rounder{fleet: f, writer: st, alerts: al, logger: logger},
		maxRounds: *maxRounds, enough: make(chan struct{})}
	d.inv.Store(inv)
	if addr := cmp.Or(*listen, inv.HTTP.Listen); addr != "" {
		api, err := e.startAPI(addr, inv, &d.inv, st, logger)
		if err != nil {
			fmt.Fprintf(e.stderr, "collector: %v\n", err)
			return exitUsage
		}
		defer api.stop()
		d.rounder.afterRound = api.observe
	}
	return d.run(ctx)
}

// daemon is the state of `collector run`.
type daemon struct {
	e       *env
	logger  *slog.Logger
	store   *store.Store
	fleet   *fleet.Fleet
	rounder *rounder

	inv       atomic.Pointer[inventory.Inventory] // the running inventory, for the HTTP API
	maxRounds int64
	rounds    atomic.Int64
	enough    chan struct{} // closed when maxRounds rounds are done
}

func (d *daemon) run(ctx context.Context) int {
	inv := d.inv.Load()
	sched, err := schedule.New(inv, d.round, d.logger)
	if err != nil {
		fmt.Fprintf(d.e.stderr, "collector: %v\n", err)
		return exitUsage
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	sched.Start()
	d.logger.Info("collector running", "inventory", inv.Path, "servers", len(inv.Servers), "cron", inv.Schedule.Cron)
	// One pruning goroutine, waited for before the store closes.
	pruneCtx, stopPruning := context.WithCancel(context.WithoutCancel(ctx))
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		prune := time.NewTicker(pruneEvery)
		defer prune.Stop()
		for {
			pruneIfDue(pruneCtx, d.store, d.rounder.alerts, d.logger)
			select {
			case <-pruneCtx.Done():
				return
			case <-prune.C:
			}
		}
	}()
	defer func() { stopPruning(); <-pruned }()

loop:
	for {
		select {
		case <-ctx.Done():
			d.logger.Info("stopping: signal received", "grace", d.inv.Load().Schedule.Grace)
			break loop
		case <-d.enough:
			d.logger.Info("stopping: rounds done", "rounds", d.maxRounds)
			break loop
		case <-hup:
			d.reload(sched)
		}
	}
	grace := d.inv.Load().Schedule.Grace
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if !sched.Stop(graceCtx) {
		d.logger.Warn("rounds in flight cut short after the grace period", "grace", grace)
	}
	return exitOK
}

// round is the scheduler's RoundFunc.
func (d *daemon) round(ctx context.Context, servers []inventory.Server, finished func(string)) {
	d.rounder.run(ctx, servers, func(r fleet.Result) { finished(r.Server) })
	if n := d.rounds.Add(1); d.maxRounds > 0 && n == d.maxRounds {
		close(d.enough)
	}
}

// reload reads the inventory again: servers, their schedules, alert rules,
// the alert repeat interval and the alert channels take effect at once. A
// file that does not parse is rejected and the running inventory kept.
// Settings read only at start are named in a warning.
func (d *daemon) reload(sched *schedule.Scheduler) {
	old := d.inv.Load()
	inv, err := inventory.Load(old.Path)
	if err != nil {
		d.logger.Error("reload rejected: keeping the running inventory", "inventory", old.Path, "err", err)
		return
	}
	// The fleet learns the new servers (and their jump hosts) before the
	// schedule can start a round of them.
	d.fleet.SetInventory(inv)
	if err := sched.Reload(inv); err != nil {
		d.fleet.SetInventory(old)
		d.logger.Error("reload rejected: keeping the running inventory", "inventory", old.Path, "err", err)
		return
	}
	if d.rounder.alerts != nil {
		d.rounder.alerts.reload(inv)
	}
	d.inv.Store(inv)
	if changed := startOnlyChanges(old, inv); len(changed) > 0 {
		d.logger.Warn("settings read only at start changed: restart the collector to use them", "settings", changed)
	}
	d.logger.Info("inventory reloaded", "inventory", inv.Path, "servers", len(inv.Servers))
}

// startOnlyChanges names the settings that differ between old and inv but
// are read only when the daemon starts.
func startOnlyChanges(old, inv *inventory.Inventory) []string {
	var changed []string
	for _, c := range []struct {
		name string
		same bool
	}{
		{"[store]", old.Store == inv.Store},
		{"[schedule] concurrency", old.Schedule.Concurrency == inv.Schedule.Concurrency},
		{"[schedule] splay", old.Schedule.Splay == inv.Schedule.Splay},
		{"[http]", old.HTTP == inv.HTTP},
	} {
		if !c.same {
			changed = append(changed, c.name)
		}
	}
	return changed
}

// pruneIfDue deletes data past retention and old outbox entries when the
// last prune, by any command on this data dir, is pruneEvery ago or more:
// the daemon calls it hourly, collect after each round, so that retention
// holds for a crontab too.
func pruneIfDue(ctx context.Context, st *store.Store, al *alerting, logger *slog.Logger) {
	pruned, err := st.PruneIfDue(ctx, time.Now(), pruneEvery)
	if err != nil {
		logger.Warn("prune old data", "err", err)
	}
	if pruned && al != nil {
		if _, err := al.outbox.Prune(ctx); err != nil {
			logger.Warn("prune old alert notifications", "err", err)
		}
	}
}
