package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

func TestHeartbeatAndMembers(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := mustTime(t, "2026-03-02T10:00:00Z")
	a := monitor.Member{Name: "a", Host: "h1", PID: 10, Since: t0, Renewed: t0, Expires: t0.Add(15 * time.Second), Owned: 3, Scheduled: 9, Done: 8}
	b := monitor.Member{Name: "b", Host: "h2", PID: 20, Since: t0, Renewed: t0, Expires: t0.Add(15 * time.Second)}
	for _, m := range []monitor.Member{b, a} {
		if err := s.Heartbeat(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	a.Renewed, a.Expires = t0.Add(5*time.Second), t0.Add(20*time.Second)
	if err := s.Heartbeat(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.Members(ctx)
	if err != nil || len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("Members = %+v, %v; want a renewed, then b", got, err)
	}
	// An incarnation that has not expired is kept; an expired one goes.
	if gone, err := s.Leave(ctx, "b", t0.Add(10*time.Second)); err != nil || gone {
		t.Errorf("Leave of a live b: %v, %v", gone, err)
	}
	if gone, err := s.Leave(ctx, "b", t0.Add(16*time.Second)); err != nil || !gone {
		t.Errorf("Leave of an expired b: %v, %v", gone, err)
	}
	if gone, err := s.Leave(ctx, "a", time.Time{}); err != nil || !gone {
		t.Errorf("Leave of a: %v, %v", gone, err)
	}
	if got, err := s.Members(ctx); err != nil || len(got) != 0 {
		t.Errorf("Members after both left = %+v, %v", got, err)
	}
	d, err := s.Durability(ctx)
	if err != nil || !d.FerretDB || d.Majority() {
		t.Errorf("Durability of the embedded store = %+v, %v", d, err)
	}
}

// TestOutboxClaimOnce: eight collectors claim each attempt of an entry at
// once; exactly one wins, on FerretDB too. A claim whose holder stopped is
// taken over once it expires; a claim of an attempt already delivered wins
// nothing.
func TestOutboxClaimOnce(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 30 {
		id := fmt.Sprintf("n%d|email", i)
		if _, err := s.OutboxInsert(ctx, monitor.OutboxEntry{ID: id, Status: monitor.OutboxPending, NextAttempt: now, Created: now, Updated: now}); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for m := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.OutboxClaim(ctx, id, 0, fmt.Sprint("m", m), now, now.Add(time.Minute))
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("entry %s: %d of 8 claims won, want 1", id, n)
		}
	}

	id := "n0|email"
	if ok, err := s.OutboxClaim(ctx, id, 0, "late", now.Add(59*time.Second), now.Add(2*time.Minute)); err != nil || ok {
		t.Errorf("claim while another holds it: %v, %v", ok, err)
	}
	if ok, err := s.OutboxClaim(ctx, id, 0, "late", now.Add(61*time.Second), now.Add(2*time.Minute)); err != nil || !ok {
		t.Errorf("claim after the holder's expired: %v, %v; want it taken over", ok, err)
	}
	if err := s.OutboxSave(ctx, monitor.OutboxEntry{ID: id, Status: monitor.OutboxSent, Attempts: 1, Updated: now}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.OutboxClaim(ctx, id, 0, "stale", now.Add(10*time.Minute), now.Add(11*time.Minute)); err != nil || ok {
		t.Errorf("claim of an attempt delivered meanwhile: %v, %v", ok, err)
	}
	if ok, err := s.OutboxClaim(ctx, id, 1, "next", now.Add(10*time.Minute), now.Add(11*time.Minute)); err != nil || ok {
		t.Errorf("claim of a sent entry: %v, %v", ok, err)
	}
	// Pruning takes expired claims with the sent entries.
	if _, err := s.OutboxPrune(ctx, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, claimsName, nil); n != 0 {
		t.Errorf("%d claims left after pruning past their expiry", n)
	}
}
