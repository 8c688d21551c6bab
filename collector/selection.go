package main

import (
	"flag"
	"slices"
	"strings"

	"github.com/crawlerfleet/collector/inventory"
)

// A selection is which servers a command works on, the same for once,
// check, collect, trust, status and report: servers named as arguments,
// those with any of the --tag tags, or --all.
type selection struct {
	tags listFlag
	all  bool
}

// addFlags adds --tag and --all to fs.
func (sel *selection) addFlags(fs *flag.FlagSet) {
	fs.Var(&sel.tags, "tag", "servers with this tag (repeatable: servers with any of them)")
	fs.BoolVar(&sel.all, "all", false, "every server of servers.toml")
}

// empty reports whether sel and names select nothing.
func (sel selection) empty(names []string) bool {
	return len(names) == 0 && len(sel.tags) == 0 && !sel.all
}

// selectionUsage is the part of a usage line that selects servers.
const selectionUsage = "[NAME... | --tag T... | --all]"

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// selectServers loads the inventory and picks the servers sel and names
// select: the named ones in the order given, then those with any of the
// tags in file order, each once; every server with --all, and when nothing
// is given and noneMeansAll. Otherwise selecting nothing is a usage error,
// as are unknown names and tags.
func (e *env) selectServers(sel selection, names []string, noneMeansAll bool) (*inventory.Inventory, []inventory.Server, error) {
	switch {
	case sel.all && (len(names) > 0 || len(sel.tags) > 0):
		return nil, nil, usagef("--all selects every server: give no NAME and no --tag with it")
	case !sel.all && len(names) == 0 && len(sel.tags) == 0 && !noneMeansAll:
		return nil, nil, usagef("name the servers, or select them with --tag T or --all")
	}
	inv, err := e.inventory()
	if err != nil {
		return nil, nil, err
	}
	if sel.all || len(names) == 0 && len(sel.tags) == 0 {
		return inv, slices.Clone(inv.Servers), nil
	}
	var servers []inventory.Server
	if len(names) > 0 {
		if servers, err = inv.Select(names); err != nil {
			return nil, nil, &usageError{err}
		}
	}
	if len(sel.tags) > 0 {
		tagged, err := inv.Tagged(sel.tags)
		if err != nil {
			return nil, nil, &usageError{err}
		}
		for _, s := range tagged {
			if !slices.ContainsFunc(servers, func(o inventory.Server) bool { return o.Name == s.Name }) {
				servers = append(servers, s)
			}
		}
	}
	return inv, servers, nil
}
