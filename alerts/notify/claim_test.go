package notify

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/monitor"
)

// memClaims hands out each attempt's claim once, as store.OutboxClaim does;
// a member it refuses (fenced) gets none.
type memClaims struct {
	mu      sync.Mutex
	st      *memOutbox
	clock   clockwork.Clock
	holders map[string]string // by "<id>|<attempts>"
	fenced  map[string]bool
}

type memberClaimer struct {
	c    *memClaims
	name string
}

func (m memberClaimer) Unclaimed() bool {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	return m.c.fenced[m.name]
}

func (m memberClaimer) Claim(_ context.Context, e monitor.OutboxEntry) (time.Time, bool, error) {
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	until := c.clock.Now().Add(2 * time.Minute)
	if c.fenced[m.name] {
		return until, false, nil
	}
	key := fmt.Sprintf("%s|%d", e.ID, e.Attempts)
	if h, ok := c.holders[key]; ok && h != m.name {
		return until, false, nil
	}
	c.holders[key] = m.name
	cur, ok := c.st.get(e.ID)
	return until, ok && cur.Status == monitor.OutboxPending && cur.Attempts == e.Attempts, nil
}

// TestOutboxClaimsSendOnce: three collectors share one outbox store and one
// channel; every notification, including a retried one, goes out once, and a
// fenced collector sends nothing from the store but what it holds itself.
func TestOutboxClaimsSendOnce(t *testing.T) {
	ctx := context.Background()
	st := newMemOutbox()
	clk := clockwork.NewFakeClockAt(t0)
	claims := &memClaims{st: st, clock: clk, holders: map[string]string{}, fenced: map[string]bool{}}
	ch := &fakeNotifier{name: "email"}
	var outboxes []*Outbox
	for _, name := range []string{"a", "b", "c"} {
		o := NewOutbox(st, []Notifier{ch}, clk, testLogger(t))
		o.SetClaimer(memberClaimer{c: claims, name: name})
		outboxes = append(outboxes, o)
	}
	var ns []alerts.Notification
	for i := range 20 {
		n := round(i)
		ns = append(ns, n)
		// Each member enqueues the notifications of its own rounds; some
		// are enqueued by two (a replay): one entry each.
		if err := outboxes[i%3].Enqueue(ctx, n); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := outboxes[(i+1)%3].Enqueue(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	for _, o := range outboxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := o.Flush(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	sent := map[string]int{}
	for _, id := range ch.sent() {
		sent[id]++
	}
	for _, n := range ns {
		if sent[n.ID] != 1 {
			t.Errorf("notification %s sent %d times, want once", n.ID, sent[n.ID])
		}
	}

	// A fenced member delivers nothing from the store.
	claims.mu.Lock()
	claims.fenced["a"] = true
	claims.mu.Unlock()
	late := round(99)
	if err := outboxes[0].Enqueue(ctx, late); err != nil {
		t.Fatal(err)
	}
	flush(t, outboxes[0], 0, 0)
	flush(t, outboxes[1], 1, 0)
	flush(t, outboxes[2], 0, 0)
	if got := ch.sent(); len(got) != 21 || got[20] != late.ID {
		t.Errorf("after a fenced member's notification: %d sent", len(got))
	}
}

// landedStore takes an insert but answers it with an outage, once: the
// reply was lost.
type landedStore struct {
	*memOutbox
	lose bool
}

func (s *landedStore) OutboxInsert(ctx context.Context, e monitor.OutboxEntry) (bool, error) {
	ok, err := s.memOutbox.OutboxInsert(ctx, e)
	if s.lose {
		s.lose = false
		return false, fmt.Errorf("insert: reply lost: %w", monitor.ErrUnavailable)
	}
	return ok, err
}

// TestOutboxHeldEntryStillClaimed: an entry held locally because its insert
// seemed to fail, though it landed, goes out once: the collector holding it
// does not send it without a claim while it is not fenced, and another
// collector delivers it from the store under the claim.
func TestOutboxHeldEntryStillClaimed(t *testing.T) {
	ctx := context.Background()
	mem := newMemOutbox()
	clk := clockwork.NewFakeClockAt(t0)
	claims := &memClaims{st: mem, clock: clk, holders: map[string]string{}, fenced: map[string]bool{}}
	ch := &fakeNotifier{name: "email"}
	a := NewOutbox(&landedStore{memOutbox: mem, lose: true}, []Notifier{ch}, clk, testLogger(t))
	a.SetClaimer(memberClaimer{c: claims, name: "a"})
	b := NewOutbox(mem, []Notifier{ch}, clk, testLogger(t))
	b.SetClaimer(memberClaimer{c: claims, name: "b"})
	n := round(1)
	if err := a.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	if a.Held() != 1 {
		t.Fatalf("a holds %d entries, want the one whose reply was lost", a.Held())
	}
	// The store is "down" for a: no claim, no send.
	if sent, _, _ := a.Flush(ctx); sent != 0 {
		t.Fatalf("a sent %d entries without a claim", sent)
	}
	// Run waits for the store, not for the entry due now (no busy loop).
	if next, ok := a.nextRetry(); !ok || next.Before(clk.Now().Add(StoreRetry-time.Second)) {
		t.Errorf("next flush at %v (%v), want when the store is asked again", next.Sub(clk.Now()), ok)
	}
	flush(t, b, 1, 0)
	clk.Advance(StoreRetry + time.Second)
	flush(t, a, 0, 0)
	if got := ch.sent(); len(got) != 1 || a.Held() != 0 {
		t.Errorf("sent %q, a holds %d; want one send, nothing held", got, a.Held())
	}
}
