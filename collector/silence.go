package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/store"
)

func runSilence(ctx context.Context, e *env, args []string) int {
	fs := e.newFlagSet("silence", "Usage: collector silence NAME [--for 2h] [--rule disk] [--comment TEXT]\n\n"+
		"Hold NAME's alert notifications for a while; rules keep being evaluated, and an\n"+
		"alert still firing when the silence ends is notified then.\n\n")
	dur := fs.String("for", "2h", "how long the silence lasts (e.g. 30m, 2h, 1d)")
	rule := fs.String("rule", "", "silence only this rule: cpu, memory, disk, load, down, processes or processes:KEYWORD (default: all)")
	comment := fs.String("comment", "", "why, shown by 'collector silences'")
	names, code, ok := parseArgs(fs, args, 1, 1)
	if !ok {
		return code
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
		fmt.Fprintf(e.stderr, "collector: %v\n", err) // it names the silence
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
	fs := e.newFlagSet("silences", "Usage: collector silences\n\nList the silences in force.\n")
	if _, code, ok := parseArgs(fs, args, 0, 0); !ok {
		return code
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
