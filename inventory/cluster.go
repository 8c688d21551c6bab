package inventory

import (
	"fmt"
	"time"
)

// Defaults and bounds of the [cluster] table.
const (
	// DefaultLease is how long a cluster member's heartbeat holds.
	DefaultLease = 15 * time.Second
	// MinLease is the shortest lease: a member renews its heartbeat three
	// times a lease, and each renewal is a write to the database.
	MinLease = 3 * time.Second
)

// Cluster is the [cluster] table. When it is written (even empty), several
// `collector run` processes with this inventory and one [store] uri split
// the servers between them; without it, `collector run` probes them all.
type Cluster struct {
	// Enabled is set when the file has a [cluster] table.
	Enabled bool
	// Line is the line of the [cluster] header, for messages.
	Line int
	// Member names this collector among the others; "" means its host
	// name and process id.
	Member string
	// Lease is how long a heartbeat holds: a member that stops is replaced
	// within Lease plus one schedule interval.
	Lease time.Duration
}

// clusterTable is [cluster] as written; a nil field was not written.
type clusterTable struct {
	Member *string   `toml:"member"`
	Lease  *Duration `toml:"lease"`
}

// buildCluster validates [cluster] and applies the defaults; t is nil when
// the file has no [cluster].
func (c *checker) buildCluster(t *clusterTable) Cluster {
	cl := Cluster{Lease: DefaultLease}
	if t == nil {
		return cl
	}
	p := place{table: "cluster", elem: -1}
	cl.Enabled, cl.Line = true, c.headerLine(p)
	if t.Member != nil {
		cl.Member = *t.Member
		switch {
		case cl.Member == "":
			c.report(p, "member", "empty member", "remove the key to name the member after its host and process id, or give it a name")
		case c.checkControl(p, "member", "member", cl.Member, inNames):
		case len(cl.Member) > 100 || !nameRE.MatchString(cl.Member) || cl.Member == "." || cl.Member == "..":
			c.report(p, "member", fmt.Sprintf("member %q is not usable", cl.Member), `use up to 100 letters, digits, ".", "-" and "_", e.g. "collector-a"`)
		}
	}
	if t.Lease != nil {
		cl.Lease = time.Duration(*t.Lease)
		if cl.Lease < MinLease {
			c.report(p, "lease", fmt.Sprintf("lease %s is shorter than %s", cl.Lease, MinLease),
				fmt.Sprintf(`a member renews it three times a lease; use at least "%s", e.g. "15s"`, MinLease))
		}
	}
	return cl
}
