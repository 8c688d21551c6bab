package alerting

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// TestAdoptReadsStatesAgain: a server this collector takes over goes on
// from the state another member left in the database, not from the one it
// held when it last owned the server: no second "firing".
func TestAdoptReadsStatesAgain(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	st := newFakeStore()
	a, c := newAlerting(t, st, t.TempDir(), clock, nil)
	a.Observe(ctx, servers(), ok(clock.Now()))
	// Meanwhile another member owned web1 and fired its down alert.
	st.states["web1|down"] = monitor.AlertState{Server: "web1", Rule: "down", Status: monitor.AlertFiring, Streak: 3,
		Since: clock.Now().Add(3 * time.Minute), LastNotified: clock.Now().Add(3 * time.Minute)}
	clock.Advance(5 * time.Minute)
	a.Adopt(ctx, []string{"web1"})
	a.Observe(ctx, servers(), failed(clock.Now()))
	clock.Advance(time.Minute)
	a.Observe(ctx, servers(), ok(clock.Now()))
	a.Flush(ctx)
	if got := c.got(); !slices.Equal(got, []string{"web1 down resolved"}) {
		t.Errorf("sent %q; want only the resolution of the other member's alert", got)
	}
}

// TestAdoptSeesWhatTheOwnerNotified: a member killed after it queued a
// notification and before its rule states reached the database (they are
// written behind the rounds) left that notification in the shared outbox:
// the member that takes the server over goes on from it, and notifies
// neither the firing nor, later, the resolution again. Found under load in
// TestClusterFailover: "firing on dead1" mailed twice.
func TestAdoptSeesWhatTheOwnerNotified(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.UTC)) // the database keeps milliseconds
	st := newFakeStore()                                                                     // the database the members share
	victim, _ := newAlerting(t, st, t.TempDir(), clock, nil)
	adopter, sent := newAlerting(t, st, t.TempDir(), clock, nil)
	queued := func(what string) int {
		n := 0
		for _, e := range st.outbox {
			var note alerts.Notification
			if err := json.Unmarshal(e.Payload, &note); err != nil {
				t.Fatal(err)
			}
			for _, a := range note.Alerts {
				if a.Server+" "+a.Rule+" "+string(a.State) == what {
					n++
				}
			}
		}
		return n
	}
	// The victim fires web1's "down" and is killed: it never writes its
	// states to the database.
	for range inventory.DefaultDownAfter {
		victim.Observe(ctx, servers(), failed(clock.Now()))
		clock.Advance(time.Minute)
	}
	if queued("web1 down firing") != 1 {
		t.Fatalf("the victim queued %d firings, want 1", queued("web1 down firing"))
	}
	if s, ok := st.states["web1|down"]; ok && s.Status == monitor.AlertFiring {
		t.Fatal("the firing state reached the database: the test does not test the window")
	}
	adopter.Adopt(ctx, []string{"web1"})
	for range 2 * inventory.DefaultDownAfter {
		adopter.Observe(ctx, servers(), failed(clock.Now()))
		clock.Advance(time.Minute)
	}
	adopter.Flush(ctx)
	if got := sent.got(); !slices.Equal(got, []string{"web1 down firing"}) {
		t.Errorf("sent %q; want the victim's firing once", got)
	}

	// Now the adopter resolves it and is killed in turn: the next owner
	// does not resolve it again.
	adopter.Observe(ctx, servers(), ok(clock.Now()))
	clock.Advance(time.Minute)
	next, sentNext := newAlerting(t, st, t.TempDir(), clock, nil)
	next.Adopt(ctx, []string{"web1"})
	next.Observe(ctx, servers(), ok(clock.Now()))
	next.Flush(ctx)
	if n := queued("web1 down resolved"); n != 1 {
		t.Errorf("%d resolutions queued, want 1 (sent by the last member: %q)", n, sentNext.got())
	}
}

// TestMemberAlert: a member whose heartbeat expired raises its "member"
// alert once, from whichever member is responsible, with the same
// notification on every member; it resolves when the member is back.
func TestMemberAlert(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(t0)
	st := newFakeStore() // the database the members share
	a, ca := newAlerting(t, st, t.TempDir(), clock, nil)
	b, cb := newAlerting(t, st, t.TempDir(), clock, nil)
	gone := monitor.Member{Name: "c", Host: "h3", PID: 7, Since: t0.Add(-time.Hour), Renewed: t0.Add(-20 * time.Second), Expires: t0.Add(-5 * time.Second)}
	live := monitor.Member{Name: "a", Since: t0.Add(-time.Hour), Renewed: t0, Expires: t0.Add(15 * time.Second)}
	members := []monitor.Member{live, gone}
	yes := func(string) bool { return true }
	no := func(string) bool { return false }

	b.ObserveMembers(ctx, members, clock.Now(), no)
	a.ObserveMembers(ctx, members, clock.Now(), yes)
	// b's view differs for a moment: it acts too, and queues the same
	// notification.
	b.ObserveMembers(ctx, members, clock.Now(), yes)
	a.ObserveMembers(ctx, members, clock.Now().Add(5*time.Second), yes)
	a.Flush(ctx)
	b.Flush(ctx)
	sent := append(ca.got(), cb.got()...)
	if !slices.Equal(sent, []string{"c member firing"}) {
		t.Fatalf("sent %q; want c's member alert once", sent)
	}
	if s := st.states["c|member"]; s.Status != monitor.AlertFiring || !s.Since.Equal(gone.Expires) {
		t.Errorf("state %+v", s)
	}

	// c is back with a new incarnation.
	clock.Advance(time.Minute)
	back := gone
	back.Since, back.Renewed, back.Expires = clock.Now(), clock.Now(), clock.Now().Add(15*time.Second)
	live.Renewed, live.Expires = clock.Now(), clock.Now().Add(15*time.Second)
	members = []monitor.Member{live, back}
	a.ObserveMembers(ctx, members, clock.Now(), yes)
	b.ObserveMembers(ctx, members, clock.Now(), yes)
	a.Flush(ctx)
	b.Flush(ctx)
	sent = append(ca.got(), cb.got()...)
	if !slices.Equal(sent, []string{"c member firing", "c member resolved"}) {
		t.Errorf("sent %q; want c's member alert resolved once", sent)
	}
	if _, ok := st.states["c|member"]; ok {
		t.Error("member state still stored after it resolved")
	}
}
