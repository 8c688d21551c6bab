package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crawlerfleet/collector/collector/cluster"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store"
)

// clusterOptions are the flags of `collector cluster`.
type clusterOptions struct {
	servers bool // one line per server with its owner
}

func cmdCluster(ctx context.Context, e *env, args []string) error {
	var o clusterOptions
	fs := e.newFlagSet("cluster", "Usage: collector cluster [--servers]\n\n"+
		"List the members of the cluster of collectors that share the store: each one's\n"+
		"state, last heartbeat, the servers it owns now and its probes. A member whose\n"+
		"heartbeat expired is listed as gone until it comes back.\n\n")
	fs.BoolVar(&o.servers, "servers", false, "list every server with the member that owns it now")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	return runCluster(ctx, e, o)
}

// runCluster prints the members as the store holds them, and the servers
// each owns now by the members' own rule.
func runCluster(ctx context.Context, e *env, o clusterOptions) error {
	inv, err := e.inventory()
	if err != nil {
		return err
	}
	return e.withStore(ctx, inv, func(db *store.Store) error {
		members, err := db.Members(ctx)
		if err != nil {
			return err
		}
		printCluster(e.stdout, inv, members, time.Now(), o.servers)
		return nil
	})
}

// printCluster writes the members and what they own at now.
func printCluster(w io.Writer, inv *inventory.Inventory, members []monitor.Member, now time.Time, perServer bool) {
	if !inv.Cluster.Enabled {
		fmt.Fprintf(w, "%s has no [cluster]: collector run probes every server alone.\n", inv.Path)
	}
	if len(members) == 0 {
		fmt.Fprintln(w, "No member has a heartbeat in the store.")
		return
	}
	lease := inv.Cluster.Lease
	eligible := cluster.Eligible(members, now, lease)
	owned := map[string][]string{}
	for _, s := range inv.Servers {
		o := cluster.Owner(eligible, s.Name)
		owned[o] = append(owned[o], s.Name)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tHOST\tPID\tSTATE\tLAST HEARTBEAT\tPROBES DONE/ASKED\tSERVERS")
	for _, m := range members {
		state := "live"
		switch {
		case !m.Live(now):
			state = "gone " + roundDuration(now.Sub(m.Expires)) + " ago"
		case now.Before(m.Since.Add(lease)):
			state = "joining, probes in " + roundDuration(m.Since.Add(lease).Sub(now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s ago\t%d/%d\t%s\n", m.Name, m.Host, m.PID, state,
			roundDuration(max(now.Sub(m.Renewed), 0)), m.Done, m.Scheduled, serverList(owned[m.Name]))
	}
	if orphans := owned[""]; len(orphans) > 0 {
		fmt.Fprintf(tw, "(none)\t\t\t\t\t\t%s\n", serverList(orphans))
	}
	tw.Flush()
	if perServer {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tOWNER")
		for _, s := range inv.Servers {
			o := cluster.Owner(eligible, s.Name)
			if o == "" {
				o = "(none: no member live and settled)"
			}
			fmt.Fprintf(tw, "%s\t%s\n", s.Name, o)
		}
		tw.Flush()
	}
}

// serverList is "3: web1, web2, web3", or the first five and a count.
func serverList(names []string) string {
	const most = 5
	if len(names) == 0 {
		return "0"
	}
	if len(names) <= most {
		return fmt.Sprintf("%d: %s", len(names), strings.Join(names, ", "))
	}
	return fmt.Sprintf("%d: %s, … (--servers lists all)", len(names), strings.Join(names[:most], ", "))
}
