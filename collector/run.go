package main

import (
	"cmp"
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/crawlerfleet/collector/collector/daemon"
	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/round"
	"github.com/crawlerfleet/collector/inventory"
)

// runOptions are the flags of `collector run`.
type runOptions struct {
	rounds int64  // stop after this many rounds; 0 runs until stopped
	listen string // the HTTP API's address; [http] listen when empty
}

func cmdRun(ctx context.Context, e *env, args []string) error {
	var o runOptions
	fs := e.newFlagSet("run", "Usage: collector run [--rounds N] [--listen 127.0.0.1:9108]\n\n"+
		"Collect every server on its cron schedule and store the results, until SIGINT or\n"+
		"SIGTERM (in-flight rounds get [schedule] grace to finish). SIGHUP reloads the\n"+
		"inventory; a bad file is rejected and the running inventory kept.\n\n")
	fs.Int64Var(&o.rounds, "rounds", 0, "stop after this many rounds (0: run until SIGINT or SIGTERM)")
	fs.StringVar(&o.listen, "listen", "", "serve the JSON API, /metrics and a live page on this address (default [http] listen; off when neither is set)")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	return runRun(ctx, e, o)
}

// runRun is the daemon: it wires the store, the fleet, alerting and the
// HTTP API to package daemon and runs it until ctx ends.
func runRun(ctx context.Context, e *env, o runOptions) error {
	inv, err := e.inventory()
	if err != nil {
		return err
	}
	if err := e.checkCluster(inv); err != nil {
		return err
	}
	logger := e.logger(slog.LevelInfo)
	name, storeInv := "", inv
	if inv.Cluster.Enabled {
		// Each member has a data directory of its own (spool, alert
		// state, lock) under the one servers.toml names.
		name = memberName(inv)
		dir, err := memberDataDir(inv.Store.DataDir)
		if err != nil {
			return err
		}
		own := *inv
		own.Store.DataDir = dir
		storeInv = &own
	}
	st, err := e.openStore(ctx, storeInv, logger, "run")
	if err != nil {
		return err
	}
	defer st.close()
	// What the last rounds journalled goes to the database before the
	// process ends, if it answers (at once when it is known to be down); the
	// rest stays in the spool for the next start.
	defer st.drain(context.WithoutCancel(ctx))
	// Each server's probe watches the whole interval between its ticks.
	f := fleet.New(inv, fleet.Options{Probes: e.probes, Logger: logger, Concurrency: inv.Schedule.Concurrency, Splay: inv.Schedule.Splay, Watch: true})
	defer f.Close()

	al, err := e.newAlerting(ctx, inv, st, logger, name)
	if err != nil {
		return err
	}
	runner := &round.Runner{Prober: f, Writer: st.spool, Alerts: al, Logger: logger, Member: name}
	var current atomic.Pointer[inventory.Inventory]
	current.Store(inv)
	var m *member
	if inv.Cluster.Enabled {
		// Started after alerting (its outbox delivers under the member's
		// claims) and stopped before the store closes, after the last
		// round: then the member leaves.
		m = e.joinCluster(ctx, inv, name, st, al, logger)
		defer m.stop()
	}
	if addr := cmp.Or(o.listen, inv.HTTP.Listen); addr != "" {
		api, err := e.startAPI(addr, inv, &current, st, al, logger)
		if err != nil {
			return &usageError{err}
		}
		defer api.stop()
		runner.AfterRound = api.observe
		if m != nil {
			api.api.SetCluster(m.figures)
		}
	}
	reload, stopReload := e.hangups()
	defer stopReload()
	opts := daemon.Options{
		Inventory: inv,
		Fleet:     f,
		Runner:    runner,
		Alerting:  al,
		Prune:     func(ctx context.Context, now time.Time) { prune(ctx, st, al, now, logger) },
		Reload:    reload,
		OnReload:  current.Store,
		MaxRounds: o.rounds,
		Logger:    logger,
	}
	if m != nil {
		opts.Cluster, opts.Adopt = m, al.Adopt
		opts.OnReload = func(inv *inventory.Inventory) {
			current.Store(inv)
			m.SetServers(inv.Servers)
		}
	}
	err = daemon.Run(ctx, opts)
	if err != nil {
		return &usageError{err}
	}
	return nil
}
