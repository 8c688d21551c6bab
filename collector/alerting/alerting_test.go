package alerting

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/alerts/notify"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// fakeStore keeps states, silences and outbox entries in memory, and fails
// every call with an outage while down is set.
type fakeStore struct {
	mu       sync.Mutex
	down     bool
	states   map[string]monitor.AlertState
	silences []monitor.Silence
	outbox   map[string]monitor.OutboxEntry
}

func newFakeStore() *fakeStore {
	return &fakeStore{states: map[string]monitor.AlertState{}, outbox: map[string]monitor.OutboxEntry{}}
}

func (f *fakeStore) fail() error {
	if f.down {
		return fmt.Errorf("server selection timeout: %w", monitor.ErrUnavailable)
	}
	return nil
}

func (f *fakeStore) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *fakeStore) LoadStates(_ context.Context, servers []string) ([]monitor.AlertState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return nil, err
	}
	var out []monitor.AlertState
	for _, st := range f.states {
		if servers == nil || slices.Contains(servers, st.Server) {
			out = append(out, st)
		}
	}
	return out, nil
}

func (f *fakeStore) SaveStates(_ context.Context, states []monitor.AlertState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return err
	}
	for _, st := range states {
		if st.Status == monitor.AlertOK {
			delete(f.states, st.Key())
		} else {
			// Times to the millisecond, as the database keeps them.
			st.Since, st.LastNotified = st.Since.Truncate(time.Millisecond), st.LastNotified.Truncate(time.Millisecond)
			f.states[st.Key()] = st
		}
	}
	return nil
}

func (f *fakeStore) Silences(_ context.Context, now time.Time) ([]monitor.Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return nil, err
	}
	var out []monitor.Silence
	for _, s := range f.silences {
		if now.Before(s.Until) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeStore) AddSilence(_ context.Context, s monitor.Silence) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return err
	}
	f.silences = append(f.silences, s)
	return nil
}

func (f *fakeStore) DeleteSilence(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return err
	}
	for i, s := range f.silences {
		if s.ID == id {
			f.silences = append(f.silences[:i], f.silences[i+1:]...)
			return nil
		}
	}
	return monitor.ErrNotFound
}

func (f *fakeStore) OutboxInsert(_ context.Context, e monitor.OutboxEntry) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return false, err
	}
	if _, ok := f.outbox[e.ID]; ok {
		return false, nil
	}
	e.Created = e.Created.Truncate(time.Millisecond) // as the database keeps it
	f.outbox[e.ID] = e
	return true, nil
}

func (f *fakeStore) OutboxDue(_ context.Context, now time.Time, _ int) ([]monitor.OutboxEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return nil, err
	}
	var out []monitor.OutboxEntry
	for _, e := range f.outbox {
		if e.Status == monitor.OutboxPending && !e.NextAttempt.After(now) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeStore) OutboxSave(_ context.Context, e monitor.OutboxEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return err
	}
	if _, ok := f.outbox[e.ID]; !ok {
		return monitor.ErrNotFound
	}
	f.outbox[e.ID] = e
	return nil
}

func (f *fakeStore) OutboxSince(_ context.Context, since time.Time) ([]monitor.OutboxEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return nil, err
	}
	var out []monitor.OutboxEntry
	for _, e := range f.outbox {
		if !e.Created.Before(since) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b monitor.OutboxEntry) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (f *fakeStore) OutboxPrune(context.Context, time.Time) (int64, error) { return 0, f.fail() }
func (f *fakeStore) OutboxPending(context.Context) (int64, error)          { return 0, f.fail() }

// chat is a channel that records the alerts it was sent.
type chat struct {
	mu   sync.Mutex
	sent []string // "server rule state"
}

func (c *chat) Name() string { return "chat" }
func (c *chat) Notify(_ context.Context, n alerts.Notification) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range n.Alerts {
		c.sent = append(c.sent, a.Server+" "+a.Rule+" "+string(a.State))
	}
	return nil
}
func (c *chat) got() []string { c.mu.Lock(); defer c.mu.Unlock(); return slices.Clone(c.sent) }

func newAlerting(t *testing.T, st *fakeStore, dir string, clock clockwork.Clock, storeDown func() (bool, string)) (*Alerting, *chat) {
	t.Helper()
	logger, _ := testutil.Logger(t)
	a, err := New(context.Background(), Options{Store: st, Dir: dir, Clock: clock, Logger: logger, Host: "master", StoreDown: storeDown,
		Alerts: inventory.Alerts{Repeat: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	c := &chat{}
	a.Outbox().SetNotifiers([]notify.Notifier{c})
	return a, c
}

func servers() []inventory.Server {
	return []inventory.Server{{Name: "web1", Alerts: inventory.DefaultAlertRules()}}
}

func failed(at time.Time) []monitor.Result {
	return []monitor.Result{{Server: "web1", At: at, Kind: monitor.KindUnreachable, Err: errors.New("web1: connection refused")}}
}

func ok(at time.Time) []monitor.Result {
	return []monitor.Result{{Server: "web1", At: at, Snapshot: &snapshot.Snapshot{Version: snapshot.Version, Time: at,
		CPU: snapshot.CPU{LogicalCount: 2}, Memory: snapshot.Memory{Total: 100, UsedPercent: 10}, Disk: snapshot.Disk{UsedPercent: 10}}}}
}

// TestAlertingWhileTheDatabaseIsDown: a server that fails while the
// database is down is still notified; its state survives a restart that
// also finds the database down (it is in the local file, so the restart
// does not notify again); once the database is back the states reach it.
func TestAlertingWhileTheDatabaseIsDown(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	st := newFakeStore()
	st.setDown(true)
	a, c := newAlerting(t, st, dir, clock, nil)
	for range 3 { // down fires after 3 failed attempts
		clock.Advance(time.Minute)
		a.Observe(ctx, servers(), failed(clock.Now()))
	}
	a.Flush(ctx)
	if got := c.got(); !slices.Equal(got, []string{"web1 down firing"}) {
		t.Fatalf("sent %q; want web1's down alert, database or not", got)
	}
	if len(st.states) != 0 {
		t.Fatal("states reached a database that is down")
	}

	// A restart, the database still down: the state is in the local file.
	a2, c2 := newAlerting(t, st, dir, clock, nil)
	clock.Advance(time.Minute)
	a2.Observe(ctx, servers(), failed(clock.Now()))
	a2.Flush(ctx)
	if got := c2.got(); len(got) != 0 {
		t.Errorf("after the restart: sent %q; want nothing (still firing, repeat not due)", got)
	}

	st.setDown(false)
	a2.Flush(ctx) // writes the states to the database
	if s, ok := st.states["web1|down"]; !ok || s.Status != monitor.AlertFiring {
		t.Errorf("database states after it came back: %+v; want web1 down firing", st.states)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		t.Error(err)
	}
}

// TestStoreAlert: the collector's own "store" alert fires after
// StoreAlertAfter rounds with the database down, goes out once (not on
// every round), and resolves once the database is back.
func TestStoreAlert(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	st := newFakeStore()
	down, why := false, ""
	a, c := newAlerting(t, st, t.TempDir(), clock, func() (bool, string) { return down, why })
	round := func() {
		clock.Advance(time.Minute)
		a.Observe(ctx, servers(), ok(clock.Now()))
		a.Flush(ctx)
	}
	round()
	down, why = true, "dial tcp 10.0.0.5:27017: connection refused"
	st.setDown(true)
	round()
	if got := c.got(); len(got) != 0 {
		t.Fatalf("sent %q after one round down; want nothing yet", got)
	}
	round()
	round()
	if got := c.got(); !slices.Equal(got, []string{"master store firing"}) {
		t.Fatalf("sent %q; want the store alert once", got)
	}
	down = false
	st.setDown(false)
	round()
	if got := c.got(); !slices.Equal(got, []string{"master store firing", "master store resolved"}) {
		t.Fatalf("sent %q; want it resolved", got)
	}
	firing, err := a.Firing(ctx)
	if err != nil || len(firing) != 0 {
		t.Errorf("Firing = %v, %v", firing, err)
	}
	if p := a.Problems(); p != nil {
		t.Errorf("problems %q", p)
	}
	if !strings.Contains(fmt.Sprint(c.got()), "store") {
		t.Error("no store alert")
	}
}
