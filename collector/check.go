package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/progress"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// kindFixes say how to fix each kind of failure, for errors that do not say
// it themselves.
var kindFixes = map[monitor.Kind]string{
	monitor.KindUnreachable: "check the address, port and firewalls, and that sshd runs there; if it dropped mid-command, see the server's sshd log",
	monitor.KindAuth:        "add the public key to authorized_keys on the server, or fix identity_file or user",
	monitor.KindHostKey:     "check the fingerprint, then run: collector trust NAME",
	monitor.KindTimeout:     "the host or network is slow or hung; raise timeout or connect_timeout",
	monitor.KindProbe:       "see the error: the probe could not be uploaded, started or read on the server; when the upload or start failed, set probe_dir to a writable directory on a file system that allows executables",
	monitor.KindConfig:      "fix the server's entry in servers.toml",
}

// checkOptions are the flags of `collector check`.
type checkOptions struct {
	selection
	json    bool // one JSON object per server and line
	explain bool // say where each SSH setting came from
}

func cmdCheck(ctx context.Context, e *env, args []string) error {
	var o checkOptions
	fs := e.newFlagSet("check", "Usage: collector check [--json] [--explain] "+selectionUsage+"\n\n"+
		"Check servers.toml, then connect to each server (all, or those selected) and run\n"+
		"the probe once; print one line per server, with the fix for each failure.\n"+
		"Exits 1 when a server failed, 2 when servers.toml has errors.\n\n")
	o.addFlags(fs)
	fs.BoolVar(&o.json, "json", false, "print one JSON object per server and line")
	fs.BoolVar(&o.explain, "explain", false, "first show each server's SSH settings and where each came from (servers.toml, the SSH client config, built-in)")
	names, err := parseArgs(fs, args, 0, -1)
	if err != nil {
		return err
	}
	return runCheck(ctx, e, o, names)
}

// runCheck validates the inventory, tries each server and prints a line
// each, with the fix for each failure.
func runCheck(ctx context.Context, e *env, o checkOptions, names []string) error {
	inv, servers, err := e.selectServers(o.selection, names, true)
	if err != nil {
		return err
	}
	if len(servers) == 0 {
		fmt.Fprintf(e.stderr, "collector: %s is valid and lists no servers\n", inv.Path)
		return nil
	}
	if o.explain && !o.json {
		if err := writeExplain(e.stdout, inv, servers); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}

	var prog *progress.Progress
	if e.stderrIsTerminal() {
		prog = progress.New(e.stderr, len(servers), true)
	}
	// Failures are in the results; logs below error level would repeat them.
	f := fleet.New(inv, fleet.Options{Probes: e.probes, Logger: e.logger(slog.LevelError)})
	defer f.Close()
	results := f.Probe(ctx, servers, progressFunc(prog))
	if prog != nil {
		prog.Finish()
	}

	width := 0
	for _, s := range servers {
		width = max(width, len(s.Name))
	}
	failed := false
	for i, r := range results {
		c := newCheckResult(r)
		if o.explain && o.json {
			c.Settings = servers[i].Explain()
		}
		failed = failed || !c.OK
		var err error
		if o.json {
			err = json.NewEncoder(e.stdout).Encode(c)
		} else {
			err = c.write(e.stdout, width)
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

// progressFunc returns a callback that reports each result to prog, which
// may be nil for no progress.
func progressFunc(prog *progress.Progress) func(monitor.Result) {
	return func(r monitor.Result) {
		if prog == nil {
			return
		}
		var err error
		if r.Failed() {
			err = kindError(r.Kind)
		}
		prog.Done(r.Server, err)
	}
}

// kindError is a kind of failure as the short error progress shows.
type kindError monitor.Kind

func (k kindError) Error() string { return string(k) }

// checkResult is one server's line of `check`, and its JSON object with
// --json.
type checkResult struct {
	Server     string       `json:"server"`
	OK         bool         `json:"ok"`
	Kind       monitor.Kind `json:"kind,omitempty"`
	Error      string       `json:"error,omitempty"` // without the fix
	Fix        string       `json:"fix,omitempty"`
	DurationMS int64        `json:"duration_ms"`
	Platform   string       `json:"platform,omitempty"` // "linux/amd64"
	// Settings are the SSH settings and their origins, with --explain.
	Settings []inventory.Setting `json:"settings,omitempty"`
	duration time.Duration
}

func newCheckResult(r monitor.Result) checkResult {
	c := checkResult{
		Server:     r.Server,
		OK:         !r.Failed(),
		Kind:       r.Kind,
		DurationMS: r.Duration.Milliseconds(),
		Platform:   r.Platform,
		duration:   r.Duration,
	}
	if r.Failed() {
		c.Error, c.Fix = splitFix(r)
	}
	return c
}

// splitFix returns the message of r's error, without the server's name in
// front (the line names it), and the fix apart from it: the error's own
// (remote's errors carry theirs), or else the one for its kind.
func splitFix(r monitor.Result) (msg, fix string) {
	msg = strings.TrimPrefix(r.Error(), r.Server+": ")
	var fixer interface{ Fix() string }
	if errors.As(r.Err, &fixer) {
		if fix = fixer.Fix(); strings.Contains(msg, "; "+fix) {
			return strings.Replace(msg, "; "+fix, "", 1), fix
		}
	}
	return msg, strings.ReplaceAll(kindFixes[r.Kind], "NAME", r.Server)
}

// write prints c for a person: "OK   web1  1.2s  linux/amd64", or
// "FAIL web1  hostkey  ERROR" and an indented line with the fix.
func (c checkResult) write(w io.Writer, width int) error {
	if c.OK {
		_, err := fmt.Fprintf(w, "OK   %-*s  %s  %s\n", width, c.Server, checkDuration(c.duration), c.Platform)
		return err
	}
	_, err := fmt.Fprintf(w, "FAIL %-*s  %s  %s\n     fix: %s\n", width, c.Server, c.Kind, c.Error, c.Fix)
	return err
}

// writeExplain prints each server's SSH settings and where each came from,
// with its jump hosts' after it.
func writeExplain(w io.Writer, inv *inventory.Inventory, servers []inventory.Server) error {
	for _, s := range servers {
		if s.IsLocal() {
			fmt.Fprintf(w, "%s: address = \"local\": probed on this machine, without SSH\n\n", s.Name)
			continue
		}
		hops, err := inv.Route(s)
		if err != nil {
			fmt.Fprintf(w, "%s: %v\n\n", s.Name, err)
			continue
		}
		for i := len(hops) - 1; i >= 0; i-- {
			h := hops[i]
			if i == len(hops)-1 {
				fmt.Fprintf(w, "%s\n", h.Name)
			} else {
				fmt.Fprintf(w, "  jump host %s\n", h.Name)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, st := range h.Explain() {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", st.Key, st.Value, st.Origin)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}

// checkDuration rounds d to what tells a fast server from a slow one: "85ms",
// "1.2s".
func checkDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
