package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crawlerfleet/collector/collector/report"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store"
)

// rawPointsMax is the longest range for which the report's series come from
// raw snapshots; longer ranges read hourly rollups only, so a report over
// months never loads months of raw data.
const rawPointsMax = 48 * time.Hour

// reportOptions are the flags of `collector report`.
type reportOptions struct {
	selection
	since, from, to string
	servers         string // --servers a,b: the same as naming a and b
	keyword         string
	out, format     string
}

func cmdReport(ctx context.Context, e *env, args []string) error {
	var o reportOptions
	fs := e.newFlagSet("report", "Usage: collector report [--since 7d | --from T --to T] "+selectionUsage+"\n"+
		"                        [--keyword python] [--out report.html] [--format html|json]\n\n"+
		"Write the peak report: per server, the resource peaks and how many matched processes\n"+
		"ran at them, the per-process cost they imply and how many more would fit.\n\n")
	fs.StringVar(&o.since, "since", "7d", "start of the range: a duration back from --to (24h, 7d, 30d) or a date/time (RFC 3339 or YYYY-MM-DD)")
	fs.StringVar(&o.from, "from", "", "start of the range: RFC 3339, YYYY-MM-DD or a duration back from now (7d); overrides --since")
	fs.StringVar(&o.to, "to", "", "end of the range: RFC 3339, YYYY-MM-DD or a duration back from now (default now)")
	o.addFlags(fs)
	fs.StringVar(&o.servers, "servers", "", "comma-separated server names, the same as naming them (default: all)")
	fs.StringVar(&o.keyword, "keyword", "", "count only processes matching this keyword at the peaks (default: all matched processes)")
	fs.StringVar(&o.out, "out", "report.html", "output file, or - for standard output")
	fs.StringVar(&o.format, "format", "html", "html or json")
	names, err := parseArgs(fs, args, 0, -1)
	if err != nil {
		return err
	}
	// A report is a short batch run over data read once: it may hold
	// twice as much garbage between collections as a daemon would, for
	// about a tenth less CPU (BenchmarkReport30Days100Servers: peak RSS
	// 95 -> 115 MiB of its 200). Left to the default in `collector serve`.
	defer debug.SetGCPercent(debug.SetGCPercent(200))
	return runReport(ctx, e, o, names)
}

// runReport builds the report from the store and writes it.
func runReport(ctx context.Context, e *env, o reportOptions, names []string) error {
	if o.format != "html" && o.format != "json" {
		return usagef("--format %q: want html or json", o.format)
	}
	now := time.Now()
	from, to, err := reportRange(o, now)
	if err != nil {
		return &usageError{err}
	}
	for _, n := range strings.Split(o.servers, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	inv, servers, err := e.selectServers(o.selection, names, true)
	if err != nil {
		return err
	}
	return e.withStore(ctx, inv, func(db *store.Store) error {
		r, err := buildReport(ctx, db, inv, servers, from, to, o.keyword, now)
		if err != nil {
			return err
		}
		if err := writeReport(e, r, o); err != nil {
			return err
		}
		if o.out != "-" {
			fmt.Fprintf(e.stdout, "wrote %s: %d servers, %s to %s\n", o.out, len(servers), from.Format(time.RFC3339), to.Format(time.RFC3339))
		}
		return nil
	})
}

// reportRange resolves --since, --from and --to.
func reportRange(o reportOptions, now time.Time) (from, to time.Time, err error) {
	to = now
	if o.to != "" {
		if to, err = inventory.ParseTime(o.to, now, time.Local); err != nil {
			return from, to, fmt.Errorf("--to: %w", err)
		}
	}
	switch {
	case o.from != "":
		if from, err = inventory.ParseTime(o.from, now, time.Local); err != nil {
			return from, to, fmt.Errorf("--from: %w", err)
		}
	default:
		// A duration counts back from --to; a date is where it starts.
		if from, err = inventory.ParseTime(o.since, to, time.Local); err != nil {
			return from, to, fmt.Errorf("--since: %w", err)
		}
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("the range is empty: --from %s is not before --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

// reportReader is what the report reads of the store.
type reportReader interface {
	Rollups(ctx context.Context, f monitor.RollupFilter) ([]monitor.Rollup, error)
	Points(ctx context.Context, server string, from, to time.Time) ([]monitor.Point, error)
	Attempts(ctx context.Context, server string, from, to time.Time) ([]monitor.Result, error)
	// Newest returns the newest snapshot and failure, each nil when none.
	Newest(ctx context.Context, server string) (latest, failure *monitor.Result, err error)
}

// buildReport reads what the report needs from st and computes it: the one
// path of `collector report` and the HTTP API's report. Servers are read a
// few at a time, and each one's rollups are dropped once its figures are
// computed, so memory stays flat however long the range and large the fleet.
func buildReport(ctx context.Context, st reportReader, inv *inventory.Inventory, servers []inventory.Server, from, to time.Time, keyword string, now time.Time) (*report.Report, error) {
	b := report.NewBuilder(report.Input{From: from, To: to, Generated: now, Keyword: keyword,
		Thresholds: reportThresholds(inv.Alerts.Rules), HourlyPoints: to.Sub(from) > rawPointsMax})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, s := range servers {
		g.Go(func() error {
			si, err := loadServer(gctx, st, s, from, to, keyword)
			if err != nil {
				return fmt.Errorf("report %s: %w", s.Name, err)
			}
			b.Add(si)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return b.Report(), nil
}

// reportThresholds are the fleet's alert thresholds, where the capacity
// estimate stops; a rule that is off leaves the report's default (90 %).
func reportThresholds(r inventory.AlertRules) report.Thresholds {
	var t report.Thresholds
	if r.CPU.Enabled() {
		t.CPU = r.CPU.Above
	}
	if r.Memory.Enabled() {
		t.Mem = r.Memory.Above
	}
	if r.Disk.Enabled() {
		t.Disk = r.Disk.Above
	}
	return t
}

// loadServer reads what the report needs of one server: its hourly rollups,
// a series (the points of raw snapshots for short ranges, else the
// rollups), its daily rollups of the weeks before to (the disk forecast)
// and its failed attempts.
func loadServer(ctx context.Context, st reportReader, s inventory.Server, from, to time.Time, keyword string) (report.ServerInput, error) {
	si := report.ServerInput{Name: s.Name, Description: s.Description, Tags: s.Tags, Failures: map[string]int{}}
	rollups, err := st.Rollups(ctx, monitor.RollupFilter{Servers: []string{s.Name}, Period: monitor.Hour, From: from, To: to})
	if err != nil {
		return si, err
	}
	si.Rollups = rollups
	if to.Sub(from) <= rawPointsMax { // as buildReport tells the report
		pts, err := st.Points(ctx, s.Name, from, to)
		if err != nil {
			return si, err
		}
		si.Points = report.PointsFromStored(pts, keyword)
	} else {
		si.Points = report.PointsFromRollups(rollups, keyword)
	}
	days, err := st.Rollups(ctx, monitor.RollupFilter{Servers: []string{s.Name}, Period: monitor.Day,
		From: to.AddDate(0, 0, -report.ForecastDays), To: to})
	if err != nil {
		return si, err
	}
	si.Days = days
	for _, r := range rollups {
		si.Attempts += int(r.Count + r.Failed)
	}
	attempts, err := st.Attempts(ctx, s.Name, from, to)
	if err != nil {
		return si, err
	}
	for _, a := range attempts {
		si.Failures[string(a.Kind)]++
	}
	latest, last, err := st.Newest(ctx, s.Name)
	if err != nil {
		return si, err
	}
	if latest != nil {
		si.MemTotalBytes = latest.Snapshot.Memory.Total
	}
	if last != nil && (latest == nil || last.At.After(latest.At)) {
		si.LastError = last.Error()
	}
	return si, nil
}

// writeReport writes r to --out (atomically: a reader never sees half a file).
func writeReport(e *env, r *report.Report, o reportOptions) error {
	write := r.WriteHTML
	if o.format == "json" {
		write = r.WriteJSON
	}
	if o.out == "-" {
		return write(e.stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.out), ".report-*")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write report %s: %w", o.out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write report %s: %w", o.out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write report %s: %w", o.out, err)
	}
	if err := os.Rename(tmp.Name(), o.out); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
