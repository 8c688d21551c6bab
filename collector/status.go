package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store"
)

// statusOptions are the flags of `collector status`.
type statusOptions struct {
	selection
	since string // how far back the peaks go
}

func cmdStatus(ctx context.Context, e *env, args []string) error {
	var o statusOptions
	fs := e.newFlagSet("status", "Usage: collector status [--since 24h] "+selectionUsage+"\n\n"+
		"Show what the store holds per server: the latest snapshot, the last failure, and\n"+
		"the peaks of the period with the matched processes at each peak and how it was\n"+
		"seen: \"max of 1 s\" (the highest sample of a watching probe, none missed) or\n"+
		"\"1 s sample\" (one reading of a one-shot probe).\n\n")
	o.addFlags(fs)
	fs.StringVar(&o.since, "since", "24h", "how far back the peaks go: a duration (6h, 7d) or a date/time (RFC 3339 or YYYY-MM-DD)")
	names, err := parseArgs(fs, args, 0, -1)
	if err != nil {
		return err
	}
	return runStatus(ctx, e, o, names)
}

// runStatus prints one line per server from what the store holds.
func runStatus(ctx context.Context, e *env, o statusOptions, names []string) error {
	now := time.Now()
	from, err := inventory.ParseTime(o.since, now, time.Local)
	if err != nil {
		return usagef("--since: %v", err)
	}
	inv, servers, err := e.selectServers(o.selection, names, true)
	if err != nil {
		return err
	}
	return e.withStore(ctx, inv, func(db *store.Store) error {
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "SERVER\tLATEST\tCPU %%\tMEM %%\tDISK %%\tMATCHED\tSNAPSHOTS\tFAILED\tPEAK CPU (procs)\tPEAK MEM (procs)\tLAST FAILURE\n")
		for _, s := range servers {
			if err := statusRow(ctx, tw, db, s.Name, now, from); err != nil {
				return fmt.Errorf("status %s: %w", s.Name, err)
			}
		}
		return tw.Flush()
	})
}

// statusReader is what status reads of the store.
type statusReader interface {
	Newest(ctx context.Context, server string) (latest, failure *monitor.Result, err error)
	Rollups(ctx context.Context, f monitor.RollupFilter) ([]monitor.Rollup, error)
}

// statusRow prints one server's line.
func statusRow(ctx context.Context, w io.Writer, st statusReader, name string, now, from time.Time) error {
	latest, failure, err := st.Newest(ctx, name)
	if err != nil {
		return err
	}
	rollups, err := st.Rollups(ctx, monitor.RollupFilter{Servers: []string{name}, Period: monitor.Hour, From: from, To: now.Add(time.Hour)})
	if err != nil {
		return err
	}
	var count, failed int64
	var cpu, mem monitor.Peak
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

// peakText prints a peak with its time, the matched processes then, and
// how it was seen (as the report's "Seen as" does, shorter): "max of 1 s"
// for the highest of a watching probe's samples, "1 s sample" for one
// reading of a one-shot probe; nothing for data stored before that was
// kept.
func peakText(p monitor.Peak) string {
	if p.At.IsZero() {
		return "-"
	}
	procs := "?"
	if p.ProcsKnown {
		procs = fmt.Sprint(p.MatchedTotal)
	}
	seen := ""
	sample := strconv.FormatFloat(p.Sample.Seconds(), 'f', -1, 64) + " s"
	switch {
	case p.Watched && p.Sample > 0:
		seen = ", max of " + sample
	case p.Watched:
		seen = ", max of the samples"
	case p.Sample > 0:
		seen = ", " + sample + " sample"
	}
	return fmt.Sprintf("%.1f at %s (%s%s)", p.Value, p.At.Local().Format("01-02 15:04"), procs, seen)
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
