package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/progress"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/store"
)

func runCollect(ctx context.Context, e *env, args []string) int {
	fs := e.newFlagSet("collect", "Usage: collector collect [NAME...]\n\n"+
		"Run one collection round over all servers (or the named ones) and store the\n"+
		"results: the same round `collector run` makes on every tick. Fits a system crontab.\n\n")
	names, code, ok := parseArgs(fs, args, 0, -1)
	if !ok {
		return code
	}
	inv, servers, code := e.selectServers(names)
	if code != exitOK {
		return code
	}
	logger := e.logger(slog.LevelWarn)
	st, code := e.openStore(ctx, inv, logger)
	if code != exitOK {
		return code
	}
	defer closeStore(st, logger)

	// Failures show in the progress and the summary: the fleet's own log of
	// them would say each twice.
	f := e.scheduledFleet(inv, e.logger(slog.LevelError))
	defer f.Close()
	r := &rounder{fleet: f, writer: st, alerts: e.newAlerting(inv, st, logger), logger: logger}
	// Progress on stderr: redrawn in place on a terminal, else a line per
	// failure as it happens.
	prog := progress.New(e.stderr, len(servers), e.stderrIsTerminal())
	results := r.run(ctx, servers, progressFunc(prog))
	prog.Finish()
	r.alerts.flush(ctx)
	pruneIfDue(ctx, st, r.alerts, logger)
	return printSummary(e, results)
}

// printSummary prints how a round went, one line per failure, and returns
// the exit code: failure when any server failed.
func printSummary(e *env, results []fleet.Result) int {
	var failed []string
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, fmt.Sprintf("  %s (%s): %v", r.Server, r.Kind, r.Err))
		}
	}
	sort.Strings(failed)
	fmt.Fprintf(e.stdout, "collected %d servers: %d ok, %d failed\n", len(results), len(results)-len(failed), len(failed))
	if len(failed) > 0 {
		fmt.Fprintln(e.stdout, strings.Join(failed, "\n"))
		return exitFailure
	}
	return exitOK
}

// openStore opens the store that inv configures; COLLECTOR_MONGO_URI
// overrides its URI. On failure it prints why and returns the exit code.
func (e *env) openStore(ctx context.Context, inv *inventory.Inventory, logger *slog.Logger) (*store.Store, int) {
	cfg := store.Config{
		URI:             inv.Store.URI,
		Database:        inv.Store.Database,
		DataDir:         inv.Store.DataDir,
		Retention:       inv.Store.Retention,
		RollupRetention: inv.Store.RollupRetention,
		SpoolMax:        inv.Store.SpoolMax,
	}.ApplyEnv(e.getenv)
	st, err := store.Open(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintf(e.stderr, "collector: open store: %v\n", err)
		return nil, exitFailure
	}
	return st, exitOK
}

// scheduledFleet returns a fleet with the [schedule] settings of inv, for
// rounds over many servers.
func (e *env) scheduledFleet(inv *inventory.Inventory, logger *slog.Logger) *fleet.Fleet {
	return fleet.New(inv, fleet.Options{Probes: e.probes, Logger: logger, Concurrency: inv.Schedule.Concurrency, Splay: inv.Schedule.Splay})
}

// withStore opens the store inv configures, runs fn with it, and closes it:
// for the commands that only read or add a little (status, alerts, silences).
func (e *env) withStore(ctx context.Context, inv *inventory.Inventory, fn func(st *store.Store) int) int {
	logger := e.logger(slog.LevelWarn)
	st, code := e.openStore(ctx, inv, logger)
	if code != exitOK {
		return code
	}
	defer closeStore(st, logger)
	return fn(st)
}

// closeStore closes st, flushing what it holds, and logs a failure.
func closeStore(st *store.Store, logger *slog.Logger) {
	if err := st.Close(context.Background()); err != nil {
		logger.Error("close store", "err", err)
	}
}
