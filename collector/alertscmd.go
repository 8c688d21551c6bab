package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/alerts/notify"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store"
)

func cmdAlerts(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("alerts", "Usage: collector alerts        list the alerts firing now\n"+
		"       collector alerts test   send a test notification to every channel\n")
	rest, err := parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 0:
		return runAlerts(ctx, e)
	case rest[0] == "test":
		return runAlertsTest(ctx, e)
	}
	fs.Usage()
	return errUsagePrinted
}

// runAlerts prints the firing alerts kept in the store for the servers of
// the inventory. A server taken out of the inventory keeps its stored
// states (another collector sharing the database may still watch it), so
// its alerts are counted apart rather than listed.
func runAlerts(ctx context.Context, e *env) error {
	inv, err := e.inventory()
	if err != nil {
		return err
	}
	return e.withStore(ctx, inv, func(db *store.Store) error {
		all, err := alerts.Firing(ctx, db)
		if err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		var firing []monitor.AlertState
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
			return nil
		}
		now := time.Now()
		silences, err := db.Silences(ctx, now)
		if err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "SERVER\tRULE\tSEVERITY\tFOR\tSILENCED\tSUMMARY\n")
		for _, s := range firing {
			silenced := "-"
			if until, ok := monitor.SilencedUntil(silences, s.Server, s.Rule, now); ok {
				silenced = fmt.Sprintf("until %s (%s left)", until.Local().Format("01-02 15:04"), roundDuration(until.Sub(now)))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Server, s.Rule, alerts.Severity(s.Rule), roundDuration(now.Sub(s.Since)), silenced, s.Summary)
		}
		return tw.Flush()
	})
}

// runAlertsTest sends a test notification straight to every channel and
// prints what each said.
func runAlertsTest(ctx context.Context, e *env) error {
	inv, err := e.inventory()
	if err != nil {
		return err
	}
	notifiers, err := notify.FromConfig(inv.Alerts, e.getenv)
	failed := false
	if err != nil {
		fmt.Fprintf(e.stdout, "FAIL %v\n", err)
		failed = true
	}
	if len(notifiers) == 0 && err == nil {
		return usagef("%s has no alert channels: add [alerts.email] or [[alerts.webhook]]", inv.Path)
	}
	for _, r := range notify.SendTest(ctx, notifiers, time.Now()) {
		if r.Err != nil {
			fmt.Fprintf(e.stdout, "FAIL %s: %v\n", r.Channel, r.Err)
			failed = true
			continue
		}
		fmt.Fprintf(e.stdout, "OK   %s: test notification sent\n", r.Channel)
	}
	if failed {
		return errFailuresShown
	}
	return nil
}
