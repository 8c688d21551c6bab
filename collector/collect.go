package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/collector/alerting"
	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/progress"
	"github.com/crawlerfleet/collector/collector/round"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// pruneEvery is how often data past its retention is deleted at most: the
// daemon tries every hour, and collect after each round, so that a crontab
// keeps retention too.
const pruneEvery = time.Hour

func cmdCollect(ctx context.Context, e *env, args []string) error {
	var sel selection
	fs := e.newFlagSet("collect", "Usage: collector collect "+selectionUsage+"\n\n"+
		"Run one collection round over all servers (or those selected) and store the\n"+
		"results: the same round `collector run` makes on every tick. Fits a system crontab.\n\n")
	sel.addFlags(fs)
	names, err := parseArgs(fs, args, 0, -1)
	if err != nil {
		return err
	}
	return runCollect(ctx, e, sel, names)
}

// runCollect runs one round over the named servers (all when none), stores
// the results, evaluates the alerts and delivers what they queued, prunes
// when due, and prints a summary; it fails with errFailuresShown when any
// server failed, so that cron mails it.
func runCollect(ctx context.Context, e *env, sel selection, names []string) error {
	inv, servers, err := e.selectServers(sel, names, true)
	if err != nil {
		return err
	}
	logger := e.logger(slog.LevelWarn)
	st, err := e.openStore(ctx, inv, logger, "collect")
	if err != nil {
		return err
	}
	defer st.close()

	// Failures show in the progress and the summary: the fleet's own log of
	// them would say each twice.
	f := e.scheduledFleet(inv, e.logger(slog.LevelError))
	defer f.Close()
	al, err := e.newAlerting(ctx, inv, st, logger, "")
	if err != nil {
		return err
	}
	r := &round.Runner{Prober: f, Writer: st.spool, Alerts: al, Logger: logger}
	// Progress on stderr: redrawn in place on a terminal, else a line per
	// failure as it happens.
	prog := progress.New(e.stderr, len(servers), e.stderrIsTerminal())
	results := r.Run(ctx, servers, progressFunc(prog))
	prog.Finish()
	st.drain(ctx)
	al.Flush(ctx)
	prune(ctx, st, al, time.Now(), logger)
	return printSummary(e, results)
}

// printSummary prints how a round went, one line per failure, and returns
// errFailuresShown when any server failed.
func printSummary(e *env, results []monitor.Result) error {
	var failed []string
	for _, r := range results {
		if r.Failed() {
			failed = append(failed, fmt.Sprintf("  %s (%s): %v", r.Server, r.Kind, r.Err))
		}
	}
	sort.Strings(failed)
	fmt.Fprintf(e.stdout, "collected %d servers: %d ok, %d failed\n", len(results), len(results)-len(failed), len(failed))
	if len(failed) > 0 {
		fmt.Fprintln(e.stdout, strings.Join(failed, "\n"))
		return errFailuresShown
	}
	return nil
}

// scheduledFleet returns a fleet with the [schedule] settings of inv, for
// rounds over many servers.
func (e *env) scheduledFleet(inv *inventory.Inventory, logger *slog.Logger) *fleet.Fleet {
	return fleet.New(inv, fleet.Options{Probes: e.probes, Logger: logger, Concurrency: inv.Schedule.Concurrency, Splay: inv.Schedule.Splay})
}

// prune deletes data past retention and old alert notifications, and seals
// the days that ended (store.SealDays), when the last prune by any command
// on this store is pruneEvery ago or more. It is
// skipped while the database is down.
func prune(ctx context.Context, st *stores, al *alerting.Alerting, now time.Time, logger *slog.Logger) {
	if down, _ := st.storeDown(); down {
		return
	}
	pruned, err := st.db.PruneIfDue(ctx, now, pruneEvery)
	if err != nil {
		logger.Warn("prune old data", "err", err)
	}
	if !pruned {
		return
	}
	// The same hourly upkeep seals the days that ended, for long reports.
	if _, err := st.db.SealDays(ctx, now); err != nil {
		logger.Warn("seal ended days", "err", err)
	}
	if al != nil {
		if _, err := al.Outbox().Prune(ctx); err != nil {
			logger.Warn("prune old alert notifications", "err", err)
		}
	}
}
