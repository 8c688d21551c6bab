package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/store"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a log sink that tests can read while the outbox writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	var buf syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openStore opens an embedded store in dir (a new temporary one when "")
// and closes it at the end of the test.
func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := store.Open(context.Background(), store.Config{DataDir: dir}, testLogger(t))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return st
}

// round returns the notification of round i: web<i> firing.
func round(i int) alerts.Notification {
	created := t0.Add(time.Duration(i) * time.Minute)
	return *alerts.NewNotification(created, []alerts.Alert{
		alert(fmt.Sprintf("web%d", i), "cpu", alerts.StateFiring, "cpu 97.0 % ≥ 95 %", created, time.Time{}),
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

func entry(t *testing.T, st *store.Store, id string) *store.OutboxEntry {
	t.Helper()
	e, err := st.OutboxGet(context.Background(), id)
	if err != nil {
		t.Fatalf("outbox entry %s: %v", id, err)
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
	st := openStore(t, "")
	clk := &clock{now: t0}
	o := NewOutbox(st, []Notifier{email}, clk.Now, testLogger(t))

	ns := []alerts.Notification{round(1), round(2), round(3)}
	for _, n := range ns {
		if err := o.Enqueue(ctx, n); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	// The first attempt fails; the channel's other entries wait with it.
	flush(t, o, 0, 1)
	first := entry(t, st, entryID(ns[0].ID, "email"))
	if first.Status != store.OutboxPending || first.Attempts != 1 || !strings.Contains(first.LastError, "connection refused") {
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
		if e := entry(t, st, entryID(n.ID, "email")); e.Status != store.OutboxSent {
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
	dir := t.TempDir()
	clk := &clock{now: t0}
	n1, n2 := round(1), round(2)

	func() {
		st, err := store.Open(ctx, store.Config{DataDir: dir}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close(ctx)
		o := NewOutbox(st, []Notifier{newTestEmail(t, addr, "starttls", &cert)}, clk.Now, testLogger(t))
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
	st := openStore(t, dir)
	o := NewOutbox(st, []Notifier{newTestEmail(t, addr, "starttls", &cert)}, clk.Now, testLogger(t))
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
	if e := entry(t, st, entryID(n1.ID, "email")); e.Attempts != 2 || e.Status != store.OutboxSent {
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
	st := openStore(t, "")
	clk := &clock{now: t0}
	good := &fakeNotifier{name: "good"}
	refusing := &fakeNotifier{name: "refusing", err: Permanent(errors.New("400 bad payload"))}
	flaky := &fakeNotifier{name: "flaky", err: errors.New("503 unavailable")}
	o := NewOutbox(st, []Notifier{good, refusing, flaky}, clk.Now, testLogger(t))

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
	if e := entry(t, st, entryID(n.ID, "refusing")); e.Status != store.OutboxFailed || e.Attempts != 1 || !strings.Contains(e.LastError, "400 bad payload") {
		t.Errorf("refused entry = %+v", e)
	}
	if e := entry(t, st, entryID(n.ID, "flaky")); e.Status != store.OutboxPending || e.Attempts != 1 {
		t.Errorf("flaky entry = %+v", e)
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
	o2 := NewOutbox(st, []Notifier{good}, clk.Now, testLogger(t))
	clk.Advance(DefaultRetryMax)
	flush(t, o2, 0, 1)
	if e := entry(t, st, entryID(n2.ID, "flaky")); e.Status != store.OutboxFailed || !strings.Contains(e.LastError, "no longer configured") {
		t.Errorf("entry of a removed channel = %+v", e)
	}
}

// flakyStore fails every call while down is set.
type flakyStore struct {
	*store.Store
	down atomic.Bool
}

var errStoreDown = errors.New("store down")

func (f *flakyStore) OutboxInsert(ctx context.Context, e store.OutboxEntry) (bool, error) {
	if f.down.Load() {
		return false, errStoreDown
	}
	return f.Store.OutboxInsert(ctx, e)
}

func (f *flakyStore) OutboxDue(ctx context.Context, now time.Time, limit int) ([]store.OutboxEntry, error) {
	if f.down.Load() {
		return nil, errStoreDown
	}
	return f.Store.OutboxDue(ctx, now, limit)
}

func (f *flakyStore) OutboxSave(ctx context.Context, e store.OutboxEntry) error {
	if f.down.Load() {
		return errStoreDown
	}
	return f.Store.OutboxSave(ctx, e)
}

// TestOutboxStoreDown: with the store down, a notification is held in
// memory and still delivered; when the store is back it records the entry
// as sent, so a replay sends nothing.
func TestOutboxStoreDown(t *testing.T) {
	ctx := context.Background()
	fs := &flakyStore{Store: openStore(t, "")}
	clk := &clock{now: t0}
	ch := &fakeNotifier{name: "chat"}
	o := NewOutbox(fs, []Notifier{ch}, clk.Now, testLogger(t))

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
	if e := entry(t, fs.Store, entryID(n.ID, "chat")); e.Status != store.OutboxSent || e.Attempts != 1 {
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
	if e := entry(t, fs.Store, entryID(n2.ID, "chat")); e.Status != store.OutboxSent {
		t.Errorf("entry = %+v, want sent", e)
	}
	if got := ch.sent(); len(got) != 2 {
		t.Errorf("channel got %v, want two", got)
	}
}

// downOnSave fails only OutboxSave.
type downOnSave struct{ *flakyStore }

func (d *downOnSave) OutboxSave(context.Context, store.OutboxEntry) error { return errStoreDown }

func TestOutboxRunDeliversOnEnqueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st := openStore(t, "")
	ch := &fakeNotifier{name: "chat"}
	o := NewOutbox(st, []Notifier{ch}, time.Now, testLogger(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx, time.Hour) // the ticker never fires in this test
	}()
	defer func() {
		cancel()
		<-done
	}()
	n := round(1)
	if err := o.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(ch.sent()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not deliver an enqueued notification")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOutboxPrune(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, "")
	clk := &clock{now: t0}
	ch := &fakeNotifier{name: "chat"}
	o := NewOutbox(st, []Notifier{ch}, clk.Now, testLogger(t))
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
