package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/alerts/notify"
	"github.com/crawlerfleet/collector/store"
)

func runAlerts(ctx context.Context, e *env, args []string) int {
	fs := e.newFlagSet("alerts", "Usage: collector alerts        list the alerts firing now\n"+
		"       collector alerts test   send a test notification to every channel\n")
	rest, code, ok := parseArgs(fs, args, 0, 1)
	if !ok {
		return code
	}
	switch {
	case len(rest) == 0:
		return listFiring(ctx, e)
	case len(rest) == 1 && rest[0] == "test":
		return testChannels(ctx, e)
	}
	fs.Usage()
	return exitUsage
}

// listFiring prints the firing alerts kept in the store for the servers of
// the inventory. A server taken out of the inventory keeps its stored
// states (another collector sharing the database may still watch it), so
// its alerts are counted apart rather than listed.
func listFiring(ctx context.Context, e *env) int {
	inv, code := e.inventory()
	if code != exitOK {
		return code
	}
	return e.withStore(ctx, inv, func(st *store.Store) int {
		all, err := alerts.NewStoreState(st).Firing(ctx)
		if err != nil {
			fmt.Fprintf(e.stderr, "collector: alerts: %v\n", err)
			return exitFailure
		}
		var firing []alerts.RuleState
		for _, s := range all {
			if _, ok := inv.Server(s.Server); ok {
				firing = append(firing, s)
			}
		}
		if others := len(all) - len(firing); others > 0 {
			fmt.Fprintf(e.stderr, "collector: %d firing alert(s) of servers not in %s left out\n", others, inv.Path)
		}
		if len(firing) == 0 {
			fmt.Fprintln(e.stdout, "no alerts firing")
			return exitOK
		}
		now := time.Now()
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "SERVER\tRULE\tSEVERITY\tFOR\tSUMMARY\n")
		for _, s := range firing {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Server, s.Rule, alerts.Severity(s.Rule), roundDuration(now.Sub(s.Since)), s.Summary)
		}
		if err := tw.Flush(); err != nil {
			return exitFailure
		}
		return exitOK
	})
}

// testChannels sends a test notification straight to every channel and
// prints what each said.
func testChannels(ctx context.Context, e *env) int {
	inv, code := e.inventory()
	if code != exitOK {
		return code
	}
	notifiers, err := notify.FromConfig(inv.Alerts, e.getenv)
	code = exitOK
	if err != nil {
		fmt.Fprintf(e.stdout, "FAIL %v\n", err)
		code = exitFailure
	}
	if len(notifiers) == 0 && err == nil {
		fmt.Fprintf(e.stderr, "collector: %s has no alert channels: add [alerts.email] or [[alerts.webhook]]\n", inv.Path)
		return exitUsage
	}
	for _, r := range notify.SendTest(ctx, notifiers, time.Now()) {
		if r.Err != nil {
			fmt.Fprintf(e.stdout, "FAIL %s: %v\n", r.Channel, r.Err)
			code = exitFailure
			continue
		}
		fmt.Fprintf(e.stdout, "OK   %s: test notification sent\n", r.Channel)
	}
	return code
}
