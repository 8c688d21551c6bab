package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/round"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// onceOptions are the flags of `collector once`.
type onceOptions struct {
	selection
	json  bool // one JSON object per server and line
	store bool // write the results to the store too
}

func cmdOnce(ctx context.Context, e *env, args []string) error {
	var o onceOptions
	fs := e.newFlagSet("once", "Usage: collector once [--json] [--store] "+selectionUsage+"\n\nProbe the servers now and print what they report.\n\n")
	o.addFlags(fs)
	fs.BoolVar(&o.json, "json", false, "print one JSON object per server and line")
	fs.BoolVar(&o.store, "store", false, "also write the results to the store, as 'collect' does")
	names, err := parseArgs(fs, args, 0, -1)
	if err != nil {
		return err
	}
	if o.empty(names) {
		fs.Usage()
		return errUsagePrinted
	}
	return runOnce(ctx, e, o, names)
}

// runOnce probes the named servers and prints their results; it fails with
// errFailuresShown when any server failed.
func runOnce(ctx context.Context, e *env, o onceOptions, names []string) error {
	inv, servers, err := e.selectServers(o.selection, names, false)
	if err != nil {
		return err
	}
	// Failures are in the results; logs below error level would repeat them.
	logger := e.logger(slog.LevelError)
	f := fleet.New(inv, fleet.Options{Probes: e.probes, Logger: logger})
	defer f.Close()
	r := &round.Runner{Prober: f, Logger: logger}
	if o.store {
		st, err := e.openStore(ctx, inv, logger, "once --store")
		if err != nil {
			return err
		}
		defer st.close()
		defer st.drain(ctx)
		r.Writer = st.spool
	}
	results := r.Run(ctx, servers, nil)

	failed := false
	for i, r := range results {
		failed = failed || r.Failed()
		var err error
		if o.json {
			err = writeJSONResult(e.stdout, r)
		} else {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			err = writeTable(e.stdout, r)
		}
		if err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if failed {
		return errFailuresShown
	}
	return nil
}

// jsonResult is the line `once --json` prints per server.
type jsonResult struct {
	Server     string             `json:"server"`
	OK         bool               `json:"ok"`
	Error      string             `json:"error,omitempty"`
	Kind       monitor.Kind       `json:"kind,omitempty"`
	DurationMS int64              `json:"duration_ms"`
	Snapshot   *snapshot.Snapshot `json:"snapshot,omitempty"`
}

func writeJSONResult(w io.Writer, r monitor.Result) error {
	out := jsonResult{
		Server:     r.Server,
		OK:         !r.Failed(),
		Kind:       r.Kind,
		DurationMS: r.Duration.Milliseconds(),
		Snapshot:   r.Snapshot,
		Error:      r.Error(),
	}
	return json.NewEncoder(w).Encode(out)
}

// writeTable prints one server's result for a person to read.
func writeTable(w io.Writer, r monitor.Result) error {
	if r.Failed() {
		_, err := fmt.Fprintf(w, "%s  FAILED (%s) after %s\n  %v\n", r.Server, r.Kind, roundDuration(r.Duration), r.Err)
		return err
	}
	s := r.Snapshot
	fmt.Fprintf(w, "%s  ok in %s  host %s, up %s, probe clock %s\n", r.Server, roundDuration(r.Duration),
		s.Hostname, roundDuration(time.Duration(s.UptimeSeconds)*time.Second), s.Time.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, errText string, cells ...string) {
		if errText != "" {
			cells = []string{"error: " + errText}
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, strings.Join(cells, "\t"))
	}
	row("cpu", s.CPU.Error,
		fmt.Sprintf("%d cores, %d threads", s.CPU.Count, s.CPU.LogicalCount),
		fmt.Sprintf("busy %.1f %%", s.CPU.Percent),
		fmt.Sprintf("load %.2f %.2f %.2f", s.CPU.Load1, s.CPU.Load5, s.CPU.Load15))
	m := s.Memory
	row("memory", m.Error,
		humanize.IBytes(m.Total)+" total",
		fmt.Sprintf("%s used (%.1f %%)", humanize.IBytes(m.Used), m.UsedPercent),
		fmt.Sprintf("%s free, %s available (%.1f %%)", humanize.IBytes(m.Free), humanize.IBytes(m.Available), m.FreePercent()),
		fmt.Sprintf("buffers %s, cached %s", humanize.IBytes(m.Buffers), humanize.IBytes(m.Cached)))
	d := s.Disk
	row("disk "+d.Path, d.Error,
		humanize.IBytes(d.Total)+" total",
		fmt.Sprintf("%s used (%.1f %%)", humanize.IBytes(d.Used), d.UsedPercent),
		humanize.IBytes(d.Free)+" free")
	p := s.Processes
	row("processes", p.Error, fmt.Sprintf("%d total", p.Total), fmt.Sprintf("%d matched", p.MatchedTotal))
	if p.Error == "" {
		for _, m := range p.Matched {
			row("  "+m.Keyword, "", fmt.Sprintf("%d processes", m.Count),
				fmt.Sprintf("%s rss, %.1f %% cpu", humanize.IBytes(m.RSSBytes), m.CPUPercent),
				"pids "+pidList(m.PIDs, 12))
		}
	}
	if s.Error != "" {
		row("other", s.Error)
	}
	return tw.Flush()
}

// pidList prints at most max pids, then how many more there are.
func pidList(pids []int32, max int) string {
	if len(pids) == 0 {
		return "-"
	}
	var b strings.Builder
	for i, p := range pids {
		if i == max {
			fmt.Fprintf(&b, " … (+%d)", len(pids)-max)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, p)
	}
	return b.String()
}

// roundDuration prints a duration to the precision a person wants from it,
// in at most two units: "850ms", "27s", "3m", "5h7m", "3d4h". (go-humanize's
// RelTime words would round a silence's 1h59m left down to "1 hour".)
func roundDuration(d time.Duration) string {
	const day = 24 * time.Hour
	d = d.Abs()
	two := func(n, rest time.Duration, big, small string) string {
		if rest == 0 {
			return fmt.Sprintf("%d%s", n, big)
		}
		return fmt.Sprintf("%d%s%d%s", n, big, rest, small)
	}
	switch {
	case d >= day:
		return two(d/day, d%day/time.Hour, "d", "h")
	case d >= time.Hour:
		return two(d/time.Hour, d%time.Hour/time.Minute, "h", "m")
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Second:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d.Round(time.Millisecond)/time.Millisecond)
	}
}
