package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/store"
)

func runSilence(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("silence", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	dur := fs.String("for", "2h", "how long the silence lasts (e.g. 30m, 2h, 1d)")
	rule := fs.String("rule", "", "silence only this rule: cpu, memory, disk, load, down, processes or processes:KEYWORD (default: all)")
	comment := fs.String("comment", "", "why, for whoever reads `collector silences`")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: collector silence NAME [--for 2h] [--rule disk] [--comment TEXT]\n\n"+
			"Hold NAME's alert notifications for a while; rules keep being evaluated, and an\n"+
			"alert still firing when the silence ends is notified then.\n\n")
		fs.PrintDefaults()
	}
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(names) != 1 {
		fs.Usage()
		return exitUsage
	}
	d, err := parseSince(*dur)
	if err != nil {
		fmt.Fprintf(e.stderr, "collector: --for: %v\n", err)
		return exitUsage
	}
	inv, servers, code := e.selectServers(names)
	if code != exitOK {
		return code
	}
	now := time.Now()
	s, err := alerts.NewSilence(servers[0].Name, *rule, *comment, now, d)
	if err != nil {
		fmt.Fprintf(e.stderr, "collector: silence: %v\n", err)
		return exitUsage
	}
	return e.withStore(ctx, inv, func(st *store.Store) int {
		if err := alerts.NewStoreState(st).AddSilence(ctx, s); err != nil {
			fmt.Fprintf(e.stderr, "collector: silence: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(e.stdout, "silenced %s (%s) until %s, id %s\n", s.Server, ruleText(s.Rule), s.Until.Local().Format("2006-01-02 15:04"), s.ID)
		return exitOK
	})
}

func runSilences(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("silences", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	if rest, err := parseInterspersed(fs, args); err != nil || len(rest) > 0 {
		fmt.Fprintf(e.stderr, "Usage: collector silences\n\nList the silences in force.\n")
		return exitUsage
	}
	inv, code := e.inventory()
	if code != exitOK {
		return code
	}
	return e.withStore(ctx, inv, func(st *store.Store) int {
		now := time.Now()
		silences, err := alerts.NewStoreState(st).ActiveSilences(ctx, now)
		if err != nil {
			fmt.Fprintf(e.stderr, "collector: silences: %v\n", err)
			return exitFailure
		}
		if len(silences) == 0 {
			fmt.Fprintln(e.stdout, "no silences in force")
			return exitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "SERVER\tRULE\tUNTIL\tLEFT\tID\tCOMMENT\n")
		for _, s := range silences {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Server, ruleText(s.Rule), s.Until.Local().Format("2006-01-02 15:04"),
				roundDuration(s.Until.Sub(now)), s.ID, strings.ReplaceAll(s.Comment, "\t", " "))
		}
		if err := tw.Flush(); err != nil {
			return exitFailure
		}
		return exitOK
	})
}

// ruleText names a silenced rule for people.
func ruleText(rule string) string {
	if rule == "" {
		return "all rules"
	}
	return rule
}
