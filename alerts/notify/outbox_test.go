package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
)

// memOutbox is an OutboxStore in memory with the contract's semantics (the
// same tests over the real database live in package store).
type memOutbox struct {
	mu      sync.Mutex
	entries map[string]monitor.OutboxEntry
}

var _ OutboxStore = (*memOutbox)(nil)

func newMemOutbox() *memOutbox { return &memOutbox{entries: map[string]monitor.OutboxEntry{}} }

func (m *memOutbox) OutboxInsert(_ context.Context, e monitor.OutboxEntry) (bool, error) {
	if e.ID == "" {
		return false, errors.New("insert outbox entry: no id")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[e.ID]; ok {
		return false, nil
	}
	e.Payload = slices.Clone(e.Payload)
	m.entries[e.ID] = e
	return true, nil
}

func (m *memOutbox) OutboxDue(_ context.Context, now time.Time, limit int) ([]monitor.OutboxEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []monitor.OutboxEntry
	for _, e := range m.entries {
		if e.Status == monitor.OutboxPending && !e.NextAttempt.After(now) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b monitor.OutboxEntry) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memOutbox) OutboxSave(_ context.Context, e monitor.OutboxEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.entries[e.ID]
	if !ok {
		return fmt.Errorf("save outbox entry %s: %w", e.ID, monitor.ErrNotFound)
	}
	old.Status, old.Attempts, old.NextAttempt, old.Updated, old.LastError = e.Status, e.Attempts, e.NextAttempt, e.Updated, e.LastError
	m.entries[e.ID] = old
	return nil
}

func (m *memOutbox) OutboxPrune(_ context.Context, before time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for id, e := range m.entries {
		if e.Status != monitor.OutboxPending && e.Updated.Before(before) {
			delete(m.entries, id)
			n++
		}
	}
	return n, nil
}

func (m *memOutbox) OutboxPending(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, e := range m.entries {
		if e.Status == monitor.OutboxPending {
			n++
		}
	}
	return n, nil
}

// get returns the entry with id.
func (m *memOutbox) get(id string) (monitor.OutboxEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	return e, ok
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	logger, _ := testutil.Logger(t)
	return logger
}

// round returns the notification of round i: web<i> firing.
func round(i int) alerts.Notification {
	created := t0.Add(time.Duration(i) * time.Minute)
	return *alerts.NewNotification(created, []alerts.Alert{
		alert(fmt.Sprintf("web%d", i), "cpu", monitor.AlertFiring, "cpu 97.0 % ≥ 95 %", created, time.Time{}),
	}, false)
}

func flush(t *testing.T, o *Outbox, wantSent, wantFailed int) {
	t.Helper()
	sent, failed, err := o.Flush(context.Background())
	if err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if sent != wantSent || failed != wantFailed {
		t.Fatalf("Flush sent %d, failed %d; want %d, %d", sent, failed, wantSent, wantFailed)
	}
}

func entry(t *testing.T, st *memOutbox, id string) monitor.OutboxEntry {
	t.Helper()
	e, ok := st.get(id)
	if !ok {
		t.Fatalf("no outbox entry %s", id)
	}
	return e
}

// messageIDs returns the Message-ID of every message srv received, in
// order.
func messageIDs(t *testing.T, srv *mailServer) []string {
	t.Helper()
	var ids []string
	for _, m := range srv.messages() {
		ids = append(ids, parseMail(t, m.Data).MessageID)
	}
	return ids
}

func wantMessageIDs(ns ...alerts.Notification) []string {
	var ids []string
	for _, n := range ns {
		ids = append(ids, "<"+n.ID+"@collector>")
	}
	return ids
}

// TestOutboxSMTPDownThenUp: notifications enqueued while the SMTP server is
// down wait with backoff, and all arrive, once each and in order, when it
// is up.
func TestOutboxSMTPDownThenUp(t *testing.T) {
	ctx := context.Background()
	cert := newTestCert(t)
	addr := freeAddr(t) // nothing listens yet
	email := newTestEmail(t, addr, "starttls", &cert)
	st := newMemOutbox()
	clk := clockwork.NewFakeClockAt(t0)
	o := NewOutbox(st, []Notifier{email}, clk, testLogger(t))

	ns := []alerts.Notification{round(1), round(2), round(3)}
	for _, n := range ns {
		if err := o.Enqueue(ctx, n); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	// The first attempt fails; the channel's other entries wait with it.
	flush(t, o, 0, 1)
	first := entry(t, st, entryID(ns[0].ID, "email"))
	if first.Status != monitor.OutboxPending || first.Attempts != 1 || !strings.Contains(first.LastError, "connection refused") {
		t.Errorf("after a refused connection: %+v", first)
	}
	if wait := first.NextAttempt.Sub(t0); wait < 24*time.Second || wait > 30*time.Second {
		t.Errorf("first retry in %v, want 30s less up to 20%%", wait)
	}
	if e := entry(t, st, entryID(ns[1].ID, "email")); e.Attempts != 0 {
		t.Errorf("second entry tried %d times while the channel was known down", e.Attempts)
	}
	flush(t, o, 0, 0) // nothing is due before the backoff ends

	// Still down after the backoff: the wait doubles.
	clk.Advance(30 * time.Second)
	flush(t, o, 0, 1)
	first = entry(t, st, entryID(ns[0].ID, "email"))
	if wait := first.NextAttempt.Sub(clk.Now()); first.Attempts != 2 || wait < 48*time.Second || wait > 60*time.Second {
		t.Errorf("second failure: attempts %d, next in %v; want 2, 60s less up to 20%%", first.Attempts, wait)
	}

	srv := startMailServer(t, mailServerOptions{addr: addr, cert: &cert, user: "alerts", pass: "s3cret"})
	clk.Advance(10 * time.Second)
	flush(t, o, 0, 0) // up, but the backoff has not ended
	if n := len(srv.messages()); n != 0 {
		t.Fatalf("%d messages sent during the backoff", n)
	}
	clk.Advance(50 * time.Second)
	flush(t, o, 3, 0)
	if got, want := messageIDs(t, srv), wantMessageIDs(ns...); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("received %v, want %v", got, want)
	}
	for _, n := range ns {
		if e := entry(t, st, entryID(n.ID, "email")); e.Status != monitor.OutboxSent {
			t.Errorf("entry %s is %s, want sent", e.ID, e.Status)
		}
	}

	// Nothing more goes out: not on the next flush, not for a replay.
	clk.Advance(time.Hour)
	flush(t, o, 0, 0)
	if err := o.Enqueue(ctx, ns[0]); err != nil {
		t.Fatal(err)
	}
	flush(t, o, 0, 0)
	if n := len(srv.messages()); n != 3 {
		t.Errorf("server has %d messages, want 3", n)
	}
}

// TestOutboxResumesAfterRestart: a new Outbox over the same store delivers
// what the last one enqueued, whether it had tried or not.
func TestOutboxResumesAfterRestart(t *testing.T) {
	ctx := context.Background()
	cert := newTestCert(t)
	addr := freeAddr(t)
	st := newMemOutbox() // outlives the first Outbox, as the database does
	clk := clockwork.NewFakeClockAt(t0)
	n1, n2 := round(1), round(2)

	func() {
		o := NewOutbox(st, []Notifier{newTestEmail(t, addr, "starttls", &cert)}, clk, testLogger(t))
		if err := o.Enqueue(ctx, n1); err != nil {
			t.Fatal(err)
		}
		flush(t, o, 0, 1) // the server is down
		// n2 is stored, then the process "crashes" before any flush.
		if err := o.Enqueue(ctx, n2); err != nil {
			t.Fatal(err)
		}
	}()

	srv := startMailServer(t, mailServerOptions{addr: addr, cert: &cert, user: "alerts", pass: "s3cret"})
	o := NewOutbox(st, []Notifier{newTestEmail(t, addr, "starttls", &cert)}, clk, testLogger(t))
	flush(t, o, 1, 0) // n2 is due at once; n1 waits for its backoff
	clk.Advance(DefaultRetryMin)
	flush(t, o, 1, 0)
	// The round that produced n1 is replayed after the restart.
	if err := o.Enqueue(ctx, n1); err != nil {
		t.Fatal(err)
	}
	flush(t, o, 0, 0)
	if got, want := messageIDs(t, srv), wantMessageIDs(n2, n1); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("received %v, want %v", got, want)
	}
	if e := entry(t, st, entryID(n1.ID, "email")); e.Attempts != 2 || e.Status != monitor.OutboxSent {
		t.Errorf("n1 entry = %+v, want sent on attempt 2", e)
	}
}

// fakeNotifier records what it is asked to send and fails as told.
type fakeNotifier struct {
	name string
	mu   sync.Mutex
	err  error
	got  []string
}

func (f *fakeNotifier) Name() string { return f.name }

func (f *fakeNotifier) Notify(_ context.Context, n alerts.Notification) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.got = append(f.got, n.ID)
	return nil
}

func (f *fakeNotifier) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func (f *fakeNotifier) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// TestOutboxChannelsIndependent: each channel gets each notification once;
// a permanent refusal is not retried; one channel's failure holds no other
// back.
func TestOutboxChannelsIndependent(t *testing.T) {
	ctx := context.Background()
	st := newMemOutbox()
	clk := clockwork.NewFakeClockAt(t0)
	good := &fakeNotifier{name: "good"}
	refusing := &fakeNotifier{name: "refusing", err: Permanent(errors.New("400 bad payload"))}
	flaky := &fakeNotifier{name: "flaky", err: errors.New("503 unavailable")}
	o := NewOutbox(st, []Notifier{good, refusing, flaky}, clk, testLogger(t))

	n := round(1)
	for range 2 {
		if err := o.Enqueue(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, o, 1, 2)
	if got := good.sent(); len(got) != 1 || got[0] != n.ID {
		t.Errorf("good got %v, want [%s]", got, n.ID)
	}
	if e := entry(t, st, entryID(n.ID, "refusing")); e.Status != monitor.OutboxFailed || e.Attempts != 1 || !strings.Contains(e.LastError, "400 bad payload") {
		t.Errorf("refused entry = %+v", e)
	}
	if e := entry(t, st, entryID(n.ID, "flaky")); e.Status != monitor.OutboxPending || e.Attempts != 1 {
		t.Errorf("flaky entry = %+v", e)
	}
	if got, err := o.Pending(ctx); err != nil || got != 1 {
		t.Errorf("Pending = %d, %v; want the flaky entry only", got, err)
	}

	flaky.fail(nil)
	refusing.fail(nil)
	clk.Advance(DefaultRetryMax)
	flush(t, o, 1, 0) // flaky only: the refused entry is not retried
	if got := refusing.sent(); len(got) != 0 {
		t.Errorf("refused entry retried: %v", got)
	}
	if got := flaky.sent(); len(got) != 1 {
		t.Errorf("flaky got %v, want one", got)
	}

	// A channel removed from the configuration: its pending entries are
	// marked failed, not retried forever.
	flaky.fail(errors.New("down"))
	n2 := round(2)
	if err := o.Enqueue(ctx, n2); err != nil {
		t.Fatal(err)
	}
	flush(t, o, 2, 1) // good and refusing (now accepting) send; flaky fails
	o2 := NewOutbox(st, []Notifier{good}, clk, testLogger(t))
	clk.Advance(DefaultRetryMax)
	flush(t, o2, 0, 1)
	if e := entry(t, st, entryID(n2.ID, "flaky")); e.Status != monitor.OutboxFailed || !strings.Contains(e.LastError, "no longer configured") {
		t.Errorf("entry of a removed channel = %+v", e)
	}
}

// flakyStore fails every call while down is set.
type flakyStore struct {
	*memOutbox
	down atomic.Bool
}

var errStoreDown = errors.New("store down")

func (f *flakyStore) OutboxInsert(ctx context.Context, e monitor.OutboxEntry) (bool, error) {
	if f.down.Load() {
		return false, errStoreDown
	}
	return f.memOutbox.OutboxInsert(ctx, e)
}

func (f *flakyStore) OutboxDue(ctx context.Context, now time.Time, limit int) ([]monitor.OutboxEntry, error) {
	if f.down.Load() {
		return nil, errStoreDown
	}
	return f.memOutbox.OutboxDue(ctx, now, limit)
}

func (f *flakyStore) OutboxSave(ctx context.Context, e monitor.OutboxEntry) error {
	if f.down.Load() {
		return errStoreDown
	}
	return f.memOutbox.OutboxSave(ctx, e)
}

// TestOutboxStoreDown: with the store down, a notification is held in
// memory and still delivered; when the store is back it records the entry
// as sent, so a replay sends nothing.
func TestOutboxStoreDown(t *testing.T) {
	ctx := context.Background()
	fs := &flakyStore{memOutbox: newMemOutbox()}
	clk := clockwork.NewFakeClockAt(t0)
	ch := &fakeNotifier{name: "chat"}
	o := NewOutbox(fs, []Notifier{ch}, clk, testLogger(t))

	fs.down.Store(true)
	n := round(1)
	if err := o.Enqueue(ctx, n); err != nil {
		t.Fatalf("Enqueue with the store down: %v", err)
	}
	sent, failed, err := o.Flush(ctx)
	if sent != 1 || failed != 0 || !errors.Is(err, errStoreDown) {
		t.Fatalf("Flush = %d, %d, %v; want 1 sent and the store's error", sent, failed, err)
	}
	if err := o.Enqueue(ctx, n); err != nil { // a replay while the store is still down
		t.Fatal(err)
	}
	if sent, _, _ = o.Flush(ctx); sent != 0 {
		t.Errorf("held entry sent again")
	}

	fs.down.Store(false)
	flush(t, o, 0, 0)
	if e := entry(t, fs.memOutbox, entryID(n.ID, "chat")); e.Status != monitor.OutboxSent || e.Attempts != 1 {
		t.Errorf("entry after the store came back = %+v", e)
	}
	if err := o.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	flush(t, o, 0, 0)
	if got := ch.sent(); len(got) != 1 {
		t.Errorf("channel got %v, want one", got)
	}

	// A state change the store misses is saved on the next flush, and the
	// entry is not sent again meanwhile.
	n2 := round(2)
	if err := o.Enqueue(ctx, n2); err != nil {
		t.Fatal(err)
	}
	down := &downOnSave{flakyStore: fs}
	o.store = down
	sent, _, err = o.Flush(ctx)
	if sent != 1 || !errors.Is(err, errStoreDown) {
		t.Fatalf("Flush = %d sent, %v; want 1 and the store's error", sent, err)
	}
	o.store = fs
	flush(t, o, 0, 0)
	if e := entry(t, fs.memOutbox, entryID(n2.ID, "chat")); e.Status != monitor.OutboxSent {
		t.Errorf("entry = %+v, want sent", e)
	}
	if got := ch.sent(); len(got) != 2 {
		t.Errorf("channel got %v, want two", got)
	}
}

// downOnSave fails only OutboxSave.
type downOnSave struct{ *flakyStore }

func (d *downOnSave) OutboxSave(context.Context, monitor.OutboxEntry) error { return errStoreDown }

// runOutbox runs o.Run(ctx, every) until the end of the test.
func runOutbox(t *testing.T, o *Outbox, every time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx, every)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestOutboxRunDeliversOnEnqueue(t *testing.T) {
	ctx := context.Background()
	ch := &fakeNotifier{name: "chat"}
	o := NewOutbox(newMemOutbox(), []Notifier{ch}, clockwork.NewFakeClockAt(t0), testLogger(t))
	runOutbox(t, o, time.Hour) // the fake clock never ticks in this test
	n := round(1)
	if err := o.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "delivered by Run", func() bool { return len(ch.sent()) == 1 })
}

// TestOutboxRunRetriesOnTick: what failed is retried when Run's ticker
// fires on the outbox's clock, with no enqueue to wake it.
func TestOutboxRunRetriesOnTick(t *testing.T) {
	ctx := context.Background()
	st := newMemOutbox()
	clk := clockwork.NewFakeClockAt(t0)
	ch := &fakeNotifier{name: "chat", err: errors.New("503 unavailable")}
	o := NewOutbox(st, []Notifier{ch}, clk, testLogger(t))
	n := round(1)
	if err := o.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	<-o.wake // only the ticker may start the retry
	runOutbox(t, o, time.Minute)
	id := entryID(n.ID, "chat")
	testutil.Eventually(t, 10*time.Second, "tried once", func() bool {
		e, _ := st.get(id)
		return e.Attempts == 1
	})
	ch.fail(nil)
	if err := clk.BlockUntilContext(ctx, 1); err != nil { // Run's ticker
		t.Fatal(err)
	}
	clk.Advance(time.Minute) // past the first backoff (30 s at most)
	testutil.Eventually(t, 10*time.Second, "sent on the tick", func() bool {
		e, _ := st.get(id)
		return e.Status == monitor.OutboxSent
	})
	if got := ch.sent(); len(got) != 1 || got[0] != n.ID {
		t.Errorf("channel got %v, want [%s]", got, n.ID)
	}
}

func TestOutboxPrune(t *testing.T) {
	ctx := context.Background()
	st := newMemOutbox()
	clk := clockwork.NewFakeClockAt(t0)
	ch := &fakeNotifier{name: "chat"}
	o := NewOutbox(st, []Notifier{ch}, clk, testLogger(t))
	n := round(1)
	if err := o.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	flush(t, o, 1, 0)
	clk.Advance(DefaultKeep - time.Minute)
	if got, err := o.Prune(ctx); err != nil || got != 0 {
		t.Errorf("Prune within Keep = %d, %v", got, err)
	}
	clk.Advance(2 * time.Minute)
	if got, err := o.Prune(ctx); err != nil || got != 1 {
		t.Errorf("Prune after Keep = %d, %v; want 1", got, err)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 30 * time.Second, Max: time.Hour}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := b.Delay(1000); got != time.Hour {
		t.Errorf("Delay(1000) = %v, want the cap", got)
	}
	b.Jitter = 0.2
	for range 100 {
		if got := b.Delay(3); got > 2*time.Minute || got < 96*time.Second {
			t.Fatalf("Delay(3) with jitter = %v, want within [96s, 2m]", got)
		}
	}
}

// unavailableStore is down as a database is: its errors wrap
// monitor.ErrUnavailable. It counts the calls it gets.
type unavailableStore struct {
	*memOutbox
	down  atomic.Bool
	calls atomic.Int64
}

func (u *unavailableStore) fail() error {
	u.calls.Add(1)
	if u.down.Load() {
		return fmt.Errorf("server selection timeout: %w", monitor.ErrUnavailable)
	}
	return nil
}

func (u *unavailableStore) OutboxInsert(ctx context.Context, e monitor.OutboxEntry) (bool, error) {
	if err := u.fail(); err != nil {
		return false, err
	}
	return u.memOutbox.OutboxInsert(ctx, e)
}

func (u *unavailableStore) OutboxDue(ctx context.Context, now time.Time, limit int) ([]monitor.OutboxEntry, error) {
	if err := u.fail(); err != nil {
		return nil, err
	}
	return u.memOutbox.OutboxDue(ctx, now, limit)
}

func (u *unavailableStore) OutboxSave(ctx context.Context, e monitor.OutboxEntry) error {
	if err := u.fail(); err != nil {
		return err
	}
	return u.memOutbox.OutboxSave(ctx, e)
}

// TestOutboxKeepsHeldEntriesLocally: while the database is down a queued
// notification is kept in the local file, and the outbox stops asking the
// database for StoreRetry; a restart (a new Outbox over the same file)
// still delivers it once and records it when the database is back.
func TestOutboxKeepsHeldEntriesLocally(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox-held.json")
	st := &unavailableStore{memOutbox: newMemOutbox()}
	st.down.Store(true)
	clk := clockwork.NewFakeClockAt(t0)
	quiet := &fakeNotifier{name: "chat", err: errors.New("503 unavailable")}
	o := NewOutbox(st, []Notifier{quiet}, clk, testLogger(t))
	if err := o.KeepLocally(path); err != nil {
		t.Fatal(err)
	}
	n := round(1)
	if err := o.Enqueue(ctx, n); err != nil {
		t.Fatalf("Enqueue with the database down: %v", err)
	}
	if err := o.Enqueue(ctx, round(2)); err != nil {
		t.Fatal(err)
	}
	if got := st.calls.Load(); got != 1 {
		t.Errorf("the store was called %d times; after it failed, the outbox should wait StoreRetry", got)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), n.ID) {
		t.Fatalf("local file = %s, %v; want the held entry", b, err)
	}

	// The collector restarts; the database is back.
	st.down.Store(false)
	ch := &fakeNotifier{name: "chat"}
	o2 := NewOutbox(st, []Notifier{ch}, clk, testLogger(t))
	if err := o2.KeepLocally(path); err != nil {
		t.Fatal(err)
	}
	flush(t, o2, 2, 0)
	if e := entry(t, st.memOutbox, entryID(n.ID, "chat")); e.Status != monitor.OutboxSent {
		t.Errorf("entry after the restart = %+v, want sent", e)
	}
	b, err = os.ReadFile(path)
	if err != nil || string(b) != "[]" {
		t.Errorf("local file after the database took the entries = %s, %v; want empty", b, err)
	}
	flush(t, o2, 0, 0)
	if got := ch.sent(); len(got) != 2 {
		t.Errorf("channel got %v, want two, once each", got)
	}
}

// TestOutboxEnqueueFailsWhenKeptNowhere: the database down and the local
// file unwritable: Enqueue says so, so that the round notifies again.
func TestOutboxEnqueueFailsWhenKeptNowhere(t *testing.T) {
	st := &unavailableStore{memOutbox: newMemOutbox()}
	st.down.Store(true)
	o := NewOutbox(st, []Notifier{&fakeNotifier{name: "chat"}}, clockwork.NewFakeClockAt(t0), testLogger(t))
	if err := o.KeepLocally(filepath.Join(t.TempDir(), "missing-dir", "held.json")); err != nil {
		t.Fatal(err)
	}
	if err := o.Enqueue(context.Background(), round(1)); err == nil || !strings.Contains(err.Error(), "keep held notifications") {
		t.Fatalf("Enqueue = %v; want an error: the notification is kept nowhere", err)
	}
}

// TestOutboxRunRetriesWhenDue: Run wakes at the retry time of a failed
// delivery, not at its next periodic flush, so the retry happens when the
// log said it would.
func TestOutboxRunRetriesWhenDue(t *testing.T) {
	ctx := context.Background()
	st := newMemOutbox()
	clk := clockwork.NewFakeClockAt(t0)
	ch := &fakeNotifier{name: "chat", err: errors.New("503 unavailable")}
	logger, logs := testutil.Logger(t)
	o := NewOutbox(st, []Notifier{ch}, clk, logger)
	o.Backoff.Jitter = 0 // the first retry is exactly 30 s later
	n := round(1)
	if err := o.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	runOutbox(t, o, time.Hour)
	id := entryID(n.ID, "chat")
	testutil.Eventually(t, testutil.Patience, "tried once", func() bool {
		e, _ := st.get(id)
		return e.Attempts == 1
	})
	if !strings.Contains(logs.String(), "retry_in_s=30") {
		t.Errorf("the log does not say the retry is in 30 s:\n%s", logs)
	}
	ch.fail(nil)
	testutil.BlockUntil(t, clk, 1, "Run waiting")
	clk.Advance(30 * time.Second)
	testutil.Eventually(t, testutil.Patience, "sent 30 s later", func() bool {
		e, _ := st.get(id)
		return e.Status == monitor.OutboxSent
	})
}
