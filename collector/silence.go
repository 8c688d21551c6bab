package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store"
)

// silenceOptions are the flags of `collector silence`.
type silenceOptions struct {
	dur, rule, comment string
}

func cmdSilence(ctx context.Context, e *env, args []string) error {
	var o silenceOptions
	fs := e.newFlagSet("silence", "Usage: collector silence NAME [--for 2h] [--rule disk] [--comment TEXT]\n\n"+
		"Hold NAME's alert notifications for a while; rules keep being evaluated, and an\n"+
		"alert still firing when the silence ends is notified then.\n\n")
	fs.StringVar(&o.dur, "for", "2h", "how long the silence lasts (e.g. 30m, 2h, 1d)")
	fs.StringVar(&o.rule, "rule", "", "silence only this rule: cpu, memory, disk, load, swap, memory_pressure, cpu_pressure, fd, disk_full, down, processes or processes:KEYWORD (default: all)")
	fs.StringVar(&o.comment, "comment", "", "why, shown by 'collector silences'")
	names, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return runSilence(ctx, e, o, names[0])
}

// runSilence stores a silence of one server.
func runSilence(ctx context.Context, e *env, o silenceOptions, name string) error {
	d, err := parseSince(o.dur)
	if err != nil {
		return usagef("--for: %v", err)
	}
	inv, servers, err := e.selectServers(selection{}, []string{name}, false)
	if err != nil {
		return err
	}
	now := time.Now()
	s, err := alerts.NewSilence(servers[0].Name, o.rule, o.comment, now, d)
	if err != nil {
		return &usageError{err} // it names the silence
	}
	return e.withStore(ctx, inv, func(db *store.Store) error {
		if err := db.AddSilence(ctx, s); err != nil {
			return fmt.Errorf("silence: %w", err)
		}
		fmt.Fprintf(e.stdout, "silenced %s (%s) until %s, id %s\n", s.Server, ruleText(s.Rule), s.Until.Local().Format("2006-01-02 15:04"), s.ID)
		return nil
	})
}

func cmdSilences(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("silences", "Usage: collector silences\n\nList the silences in force.\n")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	return runSilences(ctx, e)
}

// runSilences lists the silences in force.
func runSilences(ctx context.Context, e *env) error {
	inv, err := e.inventory()
	if err != nil {
		return err
	}
	return e.withStore(ctx, inv, func(db *store.Store) error {
		now := time.Now()
		silences, err := db.Silences(ctx, now)
		if err != nil {
			return fmt.Errorf("silences: %w", err)
		}
		if len(silences) == 0 {
			fmt.Fprintln(e.stdout, "no silences in force")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "SERVER\tRULE\tUNTIL\tLEFT\tID\tCOMMENT\n")
		// LEFT rounds down: a silence with 59m59s left shows 59m.
		for _, s := range silences {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Server, ruleText(s.Rule), s.Until.Local().Format("2006-01-02 15:04"),
				roundDuration(s.Until.Sub(now)), s.ID, strings.ReplaceAll(s.Comment, "\t", " "))
		}
		return tw.Flush()
	})
}

func cmdUnsilence(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("unsilence", "Usage: collector unsilence ID...\n\n"+
		"Lift silences before they end: their alerts are notified again from the next\n"+
		"round (a firing alert at once). 'collector silences' lists the IDs.\n\n")
	ids, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	return runUnsilence(ctx, e, ids)
}

// runUnsilence deletes the silences with ids; an unknown ID is an error that
// says where to find the IDs, and the others are still lifted.
func runUnsilence(ctx context.Context, e *env, ids []string) error {
	inv, err := e.inventory()
	if err != nil {
		return err
	}
	return e.withStore(ctx, inv, func(db *store.Store) error {
		var errs []error
		for _, id := range ids {
			switch err := db.DeleteSilence(ctx, id); {
			case errors.Is(err, monitor.ErrNotFound):
				errs = append(errs, fmt.Errorf("unsilence: no silence has the id %q (expired ones are pruned; 'collector silences' lists those in force)", id))
			case err != nil:
				errs = append(errs, fmt.Errorf("unsilence: %w", err))
			default:
				fmt.Fprintf(e.stdout, "lifted silence %s\n", id)
			}
		}
		return errors.Join(errs...)
	})
}

// ruleText names a silenced rule for people.
func ruleText(rule string) string {
	if rule == "" {
		return "all rules"
	}
	return rule
}
