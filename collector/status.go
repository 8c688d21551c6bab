package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/store"
)

func runStatus(ctx context.Context, e *env, args []string) int {
	fs := e.newFlagSet("status", "Usage: collector status [--since 24h] [NAME...]\n\n"+
		"Show what the store holds per server: the latest snapshot, the last failure, and\n"+
		"the peaks of the period with the matched processes at each peak.\n\n")
	since := fs.String("since", "24h", "how far back the peaks go (e.g. 6h, 7d)")
	names, code, ok := parseArgs(fs, args, 0, -1)
	if !ok {
		return code
	}
	window, err := parseSince(*since)
	if err != nil {
		fmt.Fprintf(e.stderr, "collector: --since: %v\n", err)
		return exitUsage
	}
	inv, servers, code := e.selectServers(names)
	if code != exitOK {
		return code
	}
	return e.withStore(ctx, inv, func(st *store.Store) int {
		now := time.Now()
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "SERVER\tLATEST\tCPU %%\tMEM %%\tDISK %%\tMATCHED\tSNAPSHOTS\tFAILED\tPEAK CPU (procs)\tPEAK MEM (procs)\tLAST FAILURE\n")
		for _, s := range servers {
			if err := statusRow(ctx, tw, st, s.Name, now, window); err != nil {
				fmt.Fprintf(e.stderr, "collector: status %s: %v\n", s.Name, err)
				return exitFailure
			}
		}
		if err := tw.Flush(); err != nil {
			return exitFailure
		}
		return exitOK
	})
}

// statusRow prints one server's line.
func statusRow(ctx context.Context, w io.Writer, st *store.Store, name string, now time.Time, window time.Duration) error {
	latest, err := st.Latest(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	failure, err := st.LastFailure(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	rollups, err := st.Rollups(ctx, store.RollupQuery{Servers: []string{name}, Period: store.Hour, From: now.Add(-window), To: now.Add(time.Hour)})
	if err != nil {
		return err
	}
	var count, failed int64
	var cpu, mem store.Peak
	for _, r := range rollups {
		count += r.Count
		failed += r.Failed
		if r.CPU.N > 0 && (cpu.At.IsZero() || r.CPU.Peak.Value > cpu.Value) {
			cpu = r.CPU.Peak
		}
		if r.Mem.N > 0 && (mem.At.IsZero() || r.Mem.Peak.Value > mem.Value) {
			mem = r.Mem.Peak
		}
	}
	cols := []string{name, "-", "-", "-", "-", "-"}
	if latest != nil {
		s := latest.Snapshot
		cols = []string{name, roundDuration(now.Sub(latest.At)) + " ago",
			fmt.Sprintf("%.1f", s.CPU.Percent), fmt.Sprintf("%.1f", s.Memory.UsedPercent),
			fmt.Sprintf("%.1f", s.Disk.UsedPercent), fmt.Sprint(s.Processes.MatchedTotal)}
	}
	last := "-"
	if failure != nil {
		last = fmt.Sprintf("%s ago: %s", roundDuration(now.Sub(failure.At)), failure.Kind)
	}
	for _, c := range cols {
		fmt.Fprintf(w, "%s\t", c)
	}
	fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\n", count, failed, peakText(cpu), peakText(mem), last)
	return nil
}

// peakText prints a peak with its time and the matched processes then.
func peakText(p store.Peak) string {
	if p.At.IsZero() {
		return "-"
	}
	procs := "?"
	if p.ProcsKnown {
		procs = fmt.Sprint(p.MatchedTotal)
	}
	return fmt.Sprintf("%.1f at %s (%s)", p.Value, p.At.Local().Format("01-02 15:04"), procs)
}

// parseSince parses a look-back window such as "24h" or "7d".
func parseSince(s string) (time.Duration, error) {
	d, err := inventory.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration", s)
	}
	return d, nil
}
