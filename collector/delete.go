package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/inventory"
)

// deleteOptions are the flags of `collector delete`.
type deleteOptions struct {
	from, to string
	yes      bool
}

func cmdDelete(ctx context.Context, e *env, args []string) error {
	var o deleteOptions
	fs := e.newFlagSet("delete", "Usage: collector delete NAME --from T [--to T] [--yes]\n\n"+
		"Delete NAME's snapshots and failed attempts from --from to --to (default now), for data\n"+
		"that should never have been stored, and rebuild the hourly and daily rollups of the\n"+
		"days touched from what remains. Works within the raw retention. Stop the collectors\n"+
		"that write NAME first (for the embedded store the command refuses while one runs).\n\n")
	fs.StringVar(&o.from, "from", "", "start of the range: RFC 3339, YYYY-MM-DD or a duration back from now (2h); required")
	fs.StringVar(&o.to, "to", "", "end of the range, excluded: RFC 3339, YYYY-MM-DD or a duration back from now (default now)")
	fs.BoolVar(&o.yes, "yes", false, "delete without asking")
	names, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return runDelete(ctx, e, o, names[0])
}

// runDelete deletes one server's data over a time range, once confirmed.
func runDelete(ctx context.Context, e *env, o deleteOptions, name string) error {
	now := time.Now()
	if o.from == "" {
		return usagef("delete: --from is required (the start of the range to delete)")
	}
	from, err := inventory.ParseTime(o.from, now, time.Local)
	if err != nil {
		return usagef("--from: %v", err)
	}
	to := now
	if o.to != "" {
		if to, err = inventory.ParseTime(o.to, now, time.Local); err != nil {
			return usagef("--to: %v", err)
		}
	}
	if !from.Before(to) {
		return usagef("the range is empty: --from %s is not before --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	inv, servers, err := e.selectServers(selection{}, []string{name}, false)
	if err != nil {
		return err
	}
	name = servers[0].Name
	what := fmt.Sprintf("%s's snapshots and failed attempts from %s to %s", name, from.Format(time.RFC3339), to.Format(time.RFC3339))
	if !o.yes {
		if !e.isTerminal(e.stdin) {
			return fmt.Errorf("not deleting %s: standard input is not a terminal to confirm on; run again with --yes", what)
		}
		fmt.Fprintf(e.stdout, "Delete %s? [y/N] ", what)
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintf(e.stdout, "Nothing deleted.\n")
			return errFailuresShown
		}
	}
	logger := e.logger(slog.LevelWarn)
	st, err := e.openStore(ctx, inv, logger, "delete")
	if err != nil {
		return err
	}
	defer st.close()
	d, err := st.db.DeleteRange(ctx, name, from, to, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted %d snapshots and %d failed attempts of %s; rebuilt %d hourly and %d daily rollups from %s to %s\n",
		d.Snapshots, d.Attempts, name, d.Hourly, d.Daily, d.From.Format(time.DateOnly), d.To.Format(time.DateOnly))
	return nil
}
