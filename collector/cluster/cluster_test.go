package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// memStore is a Store in memory that a test can cut a member off from.
type memStore struct {
	mu      sync.Mutex
	members map[string]monitor.Member
	cut     map[string]bool // members whose calls fail
	beats   map[string]int
}

func newMemStore() *memStore {
	return &memStore{members: map[string]monitor.Member{}, cut: map[string]bool{}, beats: map[string]int{}}
}

var errCut = fmt.Errorf("connection refused: %w", monitor.ErrUnavailable)

func (s *memStore) Heartbeat(_ context.Context, m monitor.Member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut[m.Name] {
		return errCut
	}
	s.members[m.Name] = m
	s.beats[m.Name]++
	return nil
}

// Members fails for a member cut off: memStore knows the caller by the
// one heartbeat just written, so tests cut off a member by its name.
func (s *memStore) Members(ctx context.Context) ([]monitor.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []monitor.Member
	for _, m := range s.members {
		out = append(out, m)
	}
	return out, nil
}

func (s *memStore) Leave(_ context.Context, name string, expiredBy time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[name]
	if !ok || (!expiredBy.IsZero() && !m.Expires.Before(expiredBy)) {
		return false, nil
	}
	delete(s.members, name)
	return true, nil
}

func (s *memStore) setCut(name string, cut bool) {
	s.mu.Lock()
	s.cut[name] = cut
	s.mu.Unlock()
}

func (s *memStore) has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.members[name]
	return ok
}

func fleet(n int) []inventory.Server {
	out := make([]inventory.Server, n)
	for i := range out {
		out[i] = inventory.Server{Name: fmt.Sprintf("crawler-%04d", i)}
	}
	return out
}

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const lease = 15 * time.Second

func newMember(t *testing.T, name string, st Store, clock clockwork.Clock) *Member {
	t.Helper()
	logger, _ := testutil.Logger(t)
	return New(Options{Name: name, Host: "h", PID: 1, Lease: lease, Store: st, Clock: clock, Logger: logger})
}

// TestOwnerSpreadsAndMovesOnlyAShare: rendezvous hashing gives each of
// three members about a third of 10,000 servers; when one leaves, only its
// servers move, and when a fourth joins, only the servers it takes move.
func TestOwnerSpreadsAndMovesOnlyAShare(t *testing.T) {
	servers := fleet(10_000)
	three := []string{"a", "b", "c"}
	owners := map[string]string{}
	count := map[string]int{}
	for _, s := range servers {
		o := Owner(three, s.Name)
		owners[s.Name] = o
		count[o]++
	}
	for _, m := range three {
		if share := float64(count[m]) / float64(len(servers)); math.Abs(share-1.0/3) > 0.03 {
			t.Errorf("member %s owns %d of %d servers (%.3f), want about a third", m, count[m], len(servers), share)
		}
	}
	moved := 0
	for _, s := range servers {
		o := Owner([]string{"a", "c"}, s.Name)
		if owners[s.Name] != "b" && o != owners[s.Name] {
			t.Fatalf("%s moved from %s to %s when b left", s.Name, owners[s.Name], o)
		}
		if owners[s.Name] == "b" {
			moved++
		}
	}
	joined := 0
	for _, s := range servers {
		o := Owner([]string{"a", "b", "c", "d"}, s.Name)
		if o != owners[s.Name] && o != "d" {
			t.Fatalf("%s moved from %s to %s when d joined", s.Name, owners[s.Name], o)
		}
		if o == "d" {
			joined++
		}
	}
	if share := float64(joined) / float64(len(servers)); math.Abs(share-0.25) > 0.03 {
		t.Errorf("d took %d servers (%.3f), want about a quarter", joined, share)
	}
	if Owner(nil, "web1") != "" {
		t.Error("a server has an owner among no members")
	}
}

// cluster drives members by hand on one fake clock, a second at a time:
// each beats every lease/3, as Run would.
type cluster struct {
	t       *testing.T
	clock   *clockwork.FakeClock
	store   *memStore
	members []*Member
	servers []inventory.Server
}

func newCluster(t *testing.T, names ...string) *cluster {
	c := &cluster{t: t, clock: clockwork.NewFakeClockAt(t0), store: newMemStore(), servers: fleet(300)}
	for _, n := range names {
		m := newMember(t, n, c.store, c.clock)
		m.SetServers(c.servers)
		c.members = append(c.members, m)
	}
	return c
}

// tick beats every member whose name is in beating when a renewal is due
// (every lease/3 from t0), then moves the clock a second.
func (c *cluster) tick(beating ...string) {
	if c.clock.Since(t0)%(lease/3) == 0 {
		for _, m := range c.members {
			if slices.Contains(beating, m.Name()) {
				m.beat(context.Background(), c.clock.Now())
			}
		}
	}
	c.clock.Advance(time.Second)
}

// owners assigns the fleet for slot now among every member, and returns
// each server's owners.
func (c *cluster) owners() map[string][]string {
	out := map[string][]string{}
	for _, m := range c.members {
		for _, s := range m.Assign(c.clock.Now(), c.servers).Mine {
			out[s.Name] = append(out[s.Name], m.Name())
		}
	}
	return out
}

// checkSlot fails when a server has two owners for slot now, or (when full)
// any server has none.
func (c *cluster) checkSlot(full bool) map[string][]string {
	c.t.Helper()
	owners := c.owners()
	for _, s := range c.servers {
		switch o := owners[s.Name]; {
		case len(o) > 1:
			c.t.Fatalf("slot %s: %s owned by %v", c.clock.Now().Format(time.TimeOnly), s.Name, o)
		case full && len(o) == 0:
			c.t.Fatalf("slot %s: %s owned by no member", c.clock.Now().Format(time.TimeOnly), s.Name)
		}
	}
	return owners
}

// TestFailoverAndRejoin: three members split the fleet once they have
// settled. One is cut off from the database: it stops (fenced) before its
// lease runs out, its servers have no owner for at most lease/3, and from
// its expiry the other two own them, every slot. Once it reaches the
// database again it rejoins, takes its share back a lease later, and no
// slot ever has a server with two owners.
func TestFailoverAndRejoin(t *testing.T) {
	c := newCluster(t, "a", "b", "c")
	all := []string{"a", "b", "c"}
	c.tick(all...)
	if owners := c.checkSlot(false); len(owners) != 0 {
		t.Fatalf("members own servers before they settled: %d", len(owners))
	}
	for c.clock.Since(t0) < lease+time.Second {
		c.tick(all...)
	}
	owners := c.checkSlot(true)
	share := map[string]int{}
	for _, o := range owners {
		share[o[0]]++
	}
	if len(share) != 3 {
		t.Fatalf("owners after settling: %v", share)
	}

	// c's last heartbeat is at 15 s; then it is cut off.
	for c.clock.Since(t0) < lease+lease/3-time.Second {
		c.tick(all...)
	}
	c.store.setCut("c", true)
	cLast := t0.Add(lease)
	fenced, expired := cLast.Add(lease-lease/3), cLast.Add(lease)
	cm := c.members[2]
	for c.clock.Now().Before(cLast.Add(3 * lease)) {
		c.tick(all...) // c's beats fail
		now := c.clock.Now()
		owners := c.checkSlot(!now.Before(expired))
		switch {
		case now.Before(fenced) && cm.Fenced():
			t.Errorf("c fenced at %s, before %s", now.Format(time.TimeOnly), fenced.Format(time.TimeOnly))
		case !now.Before(fenced) && !cm.Fenced():
			t.Errorf("c not fenced at %s, after %s", now.Format(time.TimeOnly), fenced.Format(time.TimeOnly))
		}
		for _, o := range owners {
			if !now.Before(fenced) && o[0] == "c" {
				t.Fatalf("c owns a server at %s while fenced", now.Format(time.TimeOnly))
			}
		}
	}

	// c is back: it rejoins as a new incarnation, and owns its share again
	// a lease after its first heartbeat.
	c.store.setCut("c", false)
	for c.clock.Since(t0)%(lease/3) != 0 {
		c.tick(all...)
	}
	back := c.clock.Now()
	for c.clock.Now().Before(back.Add(2 * lease)) {
		c.tick(all...)
		now := c.clock.Now()
		owners := c.checkSlot(true)
		n := 0
		for _, o := range owners {
			if o[0] == "c" {
				n++
			}
		}
		if now.Before(back.Add(lease)) && n > 0 {
			t.Fatalf("c owns %d servers at %s, before it settled again", n, now.Format(time.TimeOnly))
		}
		if !now.Before(back.Add(lease)) && n != share["c"] {
			t.Fatalf("c owns %d servers at %s, want its share %d back", n, now.Format(time.TimeOnly), share["c"])
		}
	}
}

// TestAssignAdoptsWhatMoved: a server is adopted on the first slot a member
// owns it after not owning it, so its alert states can be read again.
func TestAssignAdoptsWhatMoved(t *testing.T) {
	c := newCluster(t, "a", "b")
	for c.clock.Since(t0) <= lease {
		c.tick("a", "b")
	}
	a := c.members[0]
	first := a.Assign(c.clock.Now(), c.servers)
	if len(first.Adopted) != len(first.Mine) || len(first.Mine) == 0 {
		t.Fatalf("first slot: %d owned, %d adopted; want all adopted", len(first.Mine), len(first.Adopted))
	}
	if again := a.Assign(c.clock.Now().Add(time.Second), c.servers); len(again.Adopted) != 0 {
		t.Errorf("second slot adopted %v", again.Adopted)
	}
	// b leaves: a adopts b's servers.
	if _, err := c.store.Leave(context.Background(), "b", time.Time{}); err != nil {
		t.Fatal(err)
	}
	for c.clock.Since(t0)%(lease/3) != 0 {
		c.tick("a")
	}
	c.tick("a")
	took := a.Assign(c.clock.Now(), c.servers)
	if len(took.Mine) != len(c.servers) || len(took.Adopted) != len(c.servers)-len(first.Mine) {
		t.Errorf("after b left: %d owned, %d adopted; want all %d, %d adopted", len(took.Mine), len(took.Adopted),
			len(c.servers), len(c.servers)-len(first.Mine))
	}
	if f := a.Figures(); f.Scheduled != int64(len(first.Mine)*2+len(c.servers)) || f.Members != 1 || f.Owned != len(c.servers) {
		t.Errorf("figures %+v", f)
	}
}

// TestRunRenewsAndLeaves: Run renews every lease/3 on its clock and
// deletes the heartbeat when its context ends.
func TestRunRenewsAndLeaves(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	st := newMemStore()
	m := newMember(t, "a", st, clock)
	var views []time.Time
	var mu sync.Mutex
	m.o.OnView = func(_ context.Context, members []monitor.Member, now time.Time) {
		mu.Lock()
		views = append(views, now)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	for i := range 4 {
		testutil.BlockUntil(t, clock, 1, "the member waiting for its next renewal")
		if got := st.beats["a"]; got != i+1 {
			t.Fatalf("%d heartbeats after %v, want %d", got, clock.Since(t0), i+1)
		}
		clock.Advance(lease / 3)
	}
	testutil.BlockUntil(t, clock, 1, "the member waiting")
	cancel()
	testutil.Receive(t, m.Left(), "the member leaving")
	if st.has("a") {
		t.Error("heartbeat still there after Run ended")
	}
	if !m.Fenced() {
		t.Error("a member that left is not fenced")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(views) != 5 || !views[4].Equal(t0.Add(4*lease/3)) {
		t.Errorf("views at %v", views)
	}
}

// TestFencedBeforeFirstHeartbeat: a member that never reached the
// database probes nothing.
func TestFencedBeforeFirstHeartbeat(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	st := newMemStore()
	st.setCut("a", true)
	m := newMember(t, "a", st, clock)
	m.beat(context.Background(), clock.Now())
	if a := m.Assign(clock.Now(), fleet(3)); !a.Fenced || len(a.Mine) != 0 {
		t.Errorf("assignment without a heartbeat: %+v", a)
	}
	if !errors.Is(errCut, monitor.ErrUnavailable) {
		t.Fatal("errCut")
	}
}
