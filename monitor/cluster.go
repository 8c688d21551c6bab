package monitor

import "time"

// A Member is one `collector run` of a cluster: several collectors that
// share a store and split the servers between them. Each keeps a heartbeat
// in the store; a Member is what that heartbeat says.
type Member struct {
	// Name identifies the member: [cluster] member, or host name and
	// process id.
	Name string
	Host string
	PID  int
	// Since is when this incarnation of the member joined (its first
	// heartbeat after none, or after its lease ran out).
	Since time.Time
	// Renewed is its last heartbeat, on its own clock.
	Renewed time.Time
	// Expires is when its lease runs out unless renewed: from then on the
	// others take its servers over.
	Expires time.Time
	// Owned is how many servers it owned at its last heartbeat; Scheduled
	// and Done count the probes its schedule asked for and those that
	// ended, since it started.
	Owned           int
	Scheduled, Done int64
}

// Live reports whether m's lease holds at t.
func (m Member) Live(t time.Time) bool { return t.Before(m.Expires) }
