// Package cluster lets several `collector run` processes that share one
// store split the servers between them, through that store alone: each
// member keeps a heartbeat there with an expiry (its lease), reads the
// others', and probes the servers that rendezvous hashing gives it among the
// members live at each slot. A member that cannot renew its heartbeat stops
// probing and notifying before its lease runs out (it is fenced), and joins
// again when it can.
//
// # Timing
//
// A member renews its heartbeat every lease/3 and reads every heartbeat
// right after. A renewal that starts at t holds until t + lease (its
// expiry); once the others' clocks pass it, they take the member's servers
// over. The member itself stops at t + 2/3 lease unless a later renewal (and
// the read after it) succeeded: it is then fenced, and stays so until it
// renews again. The lease/3 between the two covers a renewal that is late
// and the clocks of the members, which must agree to well within lease/3
// (NTP).
//
// The owner of a server for a slot (the schedule's tick) is the member of
// highest weight for that server among those eligible at the slot: members
// whose expiry is after the slot and who joined at least a lease before it.
// That settling time lets every other member read a new member's heartbeat
// before it takes servers over, so all members agree on each slot's owner:
// a member renews and reads every lease/3 and is fenced 2/3 lease after its
// last read, so any member not fenced at a slot has read the heartbeats
// written before slot - lease/3.
//
// So when a member stops (killed, its machine gone, cut off from the
// database), each of its servers is probed by another member from the
// first slot of the server's schedule at or after its expiry: within lease
// plus one schedule interval of its last heartbeat (plus the splay and the
// probe's own duration).
package cluster

import (
	"cmp"
	"context"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// A Store keeps the members' heartbeats: package store implements it.
type Store interface {
	// Heartbeat writes m's heartbeat (by m.Name), durably: with write
	// concern majority.
	Heartbeat(ctx context.Context, m monitor.Member) error
	// Members returns every heartbeat, live or expired.
	Members(ctx context.Context) ([]monitor.Member, error)
	// Leave deletes the heartbeat of name; with expiredBy set only one that
	// expired before it.
	Leave(ctx context.Context, name string, expiredBy time.Time) (bool, error)
}

// Options configure a Member. Name, Lease and Store are required.
type Options struct {
	Name  string
	Host  string
	PID   int
	Lease time.Duration
	Store Store
	// OnView, when set, is called after each heartbeat with the members as
	// read (the collector raises its "member" alert from it).
	OnView func(ctx context.Context, members []monitor.Member, now time.Time)
	Clock  clockwork.Clock // the real clock when nil
	Logger *slog.Logger
}

// A Member is this collector's part in a cluster. Its methods are safe for
// concurrent use.
type Member struct {
	o          Options
	clock      clockwork.Clock
	logger     *slog.Logger
	renewEvery time.Duration

	mu        sync.Mutex
	since     time.Time        // of this incarnation; zero before the first heartbeat
	expires   time.Time        // of the last heartbeat written
	fenceAt   time.Time        // when it stops unless renewed; zero: fenced
	view      []monitor.Member // as last read, this member's own heartbeat as written
	servers   []string         // the inventory's servers, for Owned
	owned     map[string]bool  // by server: owned at its last slot
	scheduled int64            // probes the schedule asked of this member
	done      int64            // of those, the ones that ended
	wasFenced bool             // as Assign last found it, for the log
	failing   bool             // the last heartbeat failed, for the log
	left      chan struct{}    // closed once Run has left
}

// New returns a member; Run makes it take part.
func New(o Options) *Member {
	m := &Member{o: o, clock: o.Clock, logger: o.Logger, renewEvery: o.Lease / 3,
		owned: map[string]bool{}, left: make(chan struct{}), wasFenced: true}
	if m.clock == nil {
		m.clock = clockwork.NewRealClock()
	}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	m.logger = m.logger.With("member", o.Name)
	return m
}

// Name returns the member's name.
func (m *Member) Name() string { return m.o.Name }

// Lease returns the member's lease.
func (m *Member) Lease() time.Duration { return m.o.Lease }

// SetServers tells the member the inventory's servers, for the count of
// those it owns (its heartbeat and /metrics carry it). Call it at start and
// after each reload.
func (m *Member) SetServers(servers []inventory.Server) {
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.Name
	}
	m.mu.Lock()
	m.servers = names
	m.mu.Unlock()
}

// Run renews the heartbeat every lease/3 until ctx ends, then deletes it
// (the member leaves: the others take its servers over at once).
func (m *Member) Run(ctx context.Context) {
	defer close(m.left)
	for {
		start := m.clock.Now()
		m.beat(ctx, start)
		t := m.clock.NewTimer(max(m.renewEvery-m.clock.Since(start), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			m.leave()
			return
		case <-t.Chan():
		}
	}
}

// Left is closed once Run has returned.
func (m *Member) Left() <-chan struct{} { return m.left }

// leave deletes the heartbeat, within a lease/3 of real time.
func (m *Member) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), max(m.renewEvery, time.Second))
	defer cancel()
	_, err := m.o.Store.Leave(ctx, m.o.Name, time.Time{})
	m.mu.Lock()
	m.fenceAt = time.Time{}
	m.mu.Unlock()
	if err != nil {
		m.logger.Warn("left the cluster without deleting the heartbeat; the others take the servers over when it expires", "err", err)
		return
	}
	m.logger.Info("left the cluster")
}

// beat renews the heartbeat at t and reads the others', within half a
// lease of real time.
func (m *Member) beat(ctx context.Context, t time.Time) {
	m.mu.Lock()
	since := m.since
	if since.IsZero() || !t.Before(m.expires) {
		since = t // a new incarnation: the first heartbeat, or after the lease ran out
	}
	hb := monitor.Member{Name: m.o.Name, Host: m.o.Host, PID: m.o.PID, Since: since, Renewed: t, Expires: t.Add(m.o.Lease),
		Owned: m.ownedLocked(t), Scheduled: m.scheduled, Done: m.done}
	m.mu.Unlock()

	// The renewal counts from t whenever it is acknowledged, so it may
	// take up to half a lease; past that the member is nearly fenced
	// anyway.
	opCtx, cancel := context.WithTimeout(ctx, m.o.Lease/2)
	defer cancel()
	err := m.o.Store.Heartbeat(opCtx, hb)
	var members []monitor.Member
	if err == nil {
		members, err = m.o.Store.Members(opCtx)
	}
	if err != nil {
		m.mu.Lock()
		first, fenceAt := !m.failing, m.fenceAt
		m.failing = true
		m.mu.Unlock()
		if first && ctx.Err() == nil {
			m.logger.Warn("heartbeat not renewed; this collector stops probing and notifying when its lease nears its end unless a renewal succeeds",
				"fenced_at", fenceAt, "err", err)
		}
		return
	}
	members = slices.DeleteFunc(members, func(x monitor.Member) bool { return x.Name == m.o.Name })
	members = append(members, hb)
	slices.SortFunc(members, func(a, b monitor.Member) int { return cmp.Compare(a.Name, b.Name) })

	m.mu.Lock()
	rejoined := !since.Equal(m.since)
	recovered := m.failing
	m.since, m.expires, m.view, m.failing = since, hb.Expires, members, false
	m.fenceAt = t.Add(m.o.Lease - m.renewEvery)
	m.mu.Unlock()
	switch {
	case rejoined:
		m.logger.Info("joined the cluster; probing from a lease on, once every member has seen this one",
			"lease", m.o.Lease, "probes_from", since.Add(m.o.Lease), "members", names(live(members, t)))
	case recovered:
		m.logger.Info("heartbeat renewed again")
	}
	if m.o.OnView != nil {
		m.o.OnView(ctx, members, t)
	}
}

// ownedLocked counts the inventory's servers this member owns at t. mu
// must be held.
func (m *Member) ownedLocked(t time.Time) int {
	if m.fencedLocked(t) {
		return 0
	}
	eligible := Eligible(m.view, t, m.o.Lease)
	n := 0
	for _, s := range m.servers {
		if Owner(eligible, s) == m.o.Name {
			n++
		}
	}
	return n
}

func (m *Member) fencedLocked(now time.Time) bool {
	return m.fenceAt.IsZero() || !now.Before(m.fenceAt)
}

// Fenced reports whether the member may not probe or notify now: its
// heartbeat has not been renewed for 2/3 of a lease (or ever).
func (m *Member) Fenced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fencedLocked(m.clock.Now())
}

// An Assignment is what a member probes of a round's servers.
type Assignment struct {
	// Mine are the servers this member owns at the slot, in the order
	// given; none when Fenced.
	Mine []inventory.Server
	// Adopted names those of Mine it did not own at their last slot: their
	// alert states may have moved on under another member.
	Adopted []string
	// Fenced is set when the member may not probe now.
	Fenced bool
}

// Assign returns the servers of a round for slot that this member owns, and
// counts them as scheduled. A fenced member owns none.
func (m *Member) Assign(slot time.Time, servers []inventory.Server) Assignment {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var a Assignment
	if m.fencedLocked(now) {
		for _, s := range servers {
			m.owned[s.Name] = false
		}
		if !m.wasFenced {
			m.logger.Warn("fenced: heartbeat not renewed in time; probing and notifying nothing until it is", "slot", slot)
		}
		m.wasFenced = true
		a.Fenced = true
		return a
	}
	if m.wasFenced {
		m.logger.Info("heartbeat holds: probing the servers this member owns", "slot", slot)
		m.wasFenced = false
	}
	eligible := Eligible(m.view, slot, m.o.Lease)
	for _, s := range servers {
		mine := Owner(eligible, s.Name) == m.o.Name
		if mine {
			a.Mine = append(a.Mine, s)
			if !m.owned[s.Name] {
				a.Adopted = append(a.Adopted, s.Name)
			}
		}
		m.owned[s.Name] = mine
	}
	m.scheduled += int64(len(a.Mine))
	return a
}

// Probed counts n probes that ended (of those Assign counted).
func (m *Member) Probed(n int) {
	m.mu.Lock()
	m.done += int64(n)
	m.mu.Unlock()
}

// Responsible reports whether this member, not fenced, is the one among
// the members eligible at now that acts for key (such as the alert about
// another member): rendezvous hashing, as for servers.
func (m *Member) Responsible(key string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.fencedLocked(now) && Owner(Eligible(m.view, now, m.o.Lease), key) == m.o.Name
}

// Figures are what /metrics shows of the member.
type Figures struct {
	Members         int // live members, as last read
	Owned           int // servers this member owns now
	Fenced          bool
	Scheduled, Done int64
}

// Figures returns the member's figures now.
func (m *Member) Figures() Figures {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	return Figures{Members: len(live(m.view, now)), Owned: m.ownedLocked(now), Fenced: m.fencedLocked(now),
		Scheduled: m.scheduled, Done: m.done}
}

// View returns the heartbeats as last read.
func (m *Member) View() []monitor.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.view)
}

// Eligible returns the names of the members that may own servers at t:
// live at t, and joined at least settle before it. They are sorted.
func Eligible(members []monitor.Member, t time.Time, settle time.Duration) []string {
	var out []string
	for _, x := range members {
		if x.Live(t) && !t.Before(x.Since.Add(settle)) {
			out = append(out, x.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Owner returns the member of members with the highest weight for key (a
// server's name): rendezvous (highest-random-weight) hashing, so that a
// member joining or leaving moves only its own share of the keys. It
// returns "" when members is empty.
func Owner(members []string, key string) string {
	best, bestW := "", uint64(0)
	for _, name := range members {
		w := weight(name, key)
		if best == "" || w > bestW || w == bestW && name < best {
			best, bestW = name, w
		}
	}
	return best
}

// weight is the rendezvous weight of member for key: FNV-1a of both, mixed
// by splitmix64's finalizer so that similar names spread evenly. It is the
// same in every process and release: members compute it apart and must
// agree.
func weight(member, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// live returns the members live at t.
func live(members []monitor.Member, t time.Time) []monitor.Member {
	var out []monitor.Member
	for _, x := range members {
		if x.Live(t) {
			out = append(out, x)
		}
	}
	return out
}

func names(members []monitor.Member) []string {
	out := make([]string, len(members))
	for i, x := range members {
		out[i] = x.Name
	}
	return out
}
