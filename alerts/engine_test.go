package alerts

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// quietLogger returns a logger whose output shows only when t fails.
func quietLogger(t *testing.T) *slog.Logger {
	t.Helper()
	logger, _ := testutil.Logger(t)
	return logger
}

// fleet returns servers with the default rules.
func fleet(names ...string) []inventory.Server {
	out := make([]inventory.Server, len(names))
	for i, n := range names {
		out[i] = inventory.Server{Name: n, Alerts: inventory.DefaultAlertRules()}
	}
	return out
}

func at(server string, t time.Time, r monitor.Result) monitor.Result {
	r.Server, r.At = server, t
	return r
}

func summaries(n *Notification) []string {
	if n == nil {
		return nil
	}
	var out []string
	for _, a := range n.Alerts {
		out = append(out, a.Server+" "+a.Rule+" "+string(a.State))
	}
	return out
}

func TestRound(t *testing.T) {
	ctx := context.Background()
	servers := fleet("web1", "web2", "web3")

	t.Run("one digest for the round", func(t *testing.T) {
		st := newMemStore()
		c := clockwork.NewFakeClockAt(t0)
		e := NewEngine(st, c, quietLogger(t))
		n, err := e.Round(ctx, servers, []monitor.Result{
			at("web3", t0, ok(rd{disk: 50})),
			at("web2", t0, keyChanged()),
			at("web1", t0, ok(rd{disk: 95})),
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"web1 disk firing", "web2 down firing"}
		if got := summaries(n); !slices.Equal(got, want) {
			t.Fatalf("alerts %v, want %v", got, want)
		}
		if n.ID == "" || !n.Created.Equal(t0) || n.Test {
			t.Errorf("notification %+v", n)
		}
		if n.ID != NotificationID(n.Created, n.Alerts, false) {
			t.Errorf("ID %s is not the hash of the notification", n.ID)
		}
		if keys := st.keys(); !slices.Equal(keys, []string{"web1|disk", "web2|down"}) {
			t.Errorf("stored %v, want only the firing states", keys)
		}

		c.Advance(time.Minute)
		n, err = e.Round(ctx, servers, []monitor.Result{
			at("web1", t0.Add(time.Minute), ok(rd{disk: 95})),
			at("web2", t0.Add(time.Minute), keyChanged()),
		}, 0)
		if err != nil || n != nil {
			t.Fatalf("second round: %v, %v; want nothing to send", summaries(n), err)
		}
	})

	t.Run("results in time order", func(t *testing.T) {
		e := NewEngine(newMemStore(), clockwork.NewFakeClockAt(t0.Add(3*time.Minute)), quietLogger(t))
		n, err := e.Round(ctx, servers, []monitor.Result{
			at("web1", t0.Add(2*time.Minute), ok(rd{disk: 50})),
			at("web1", t0.Add(time.Minute), ok(rd{disk: 95})),
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := summaries(n), []string{"web1 disk firing", "web1 disk resolved"}; !slices.Equal(got, want) {
			t.Errorf("alerts %v, want %v", got, want)
		}
	})

	t.Run("nothing to send", func(t *testing.T) {
		e := NewEngine(newMemStore(), clockwork.NewFakeClockAt(t0), quietLogger(t))
		n, err := e.Round(ctx, servers, []monitor.Result{at("web1", t0, ok(rd{disk: 50}))}, 0)
		if err != nil || n != nil {
			t.Errorf("got %v, %v", summaries(n), err)
		}
	})

	t.Run("a failed save sends nothing and the next round does", func(t *testing.T) {
		st := newMemStore()
		st.saveErr = errors.New("database is down")
		e := NewEngine(st, clockwork.NewFakeClockAt(t0), quietLogger(t))
		obs := []monitor.Result{at("web1", t0, ok(rd{disk: 95}))}
		n, err := e.Round(ctx, servers, obs, 0)
		if !errors.Is(err, st.saveErr) || n != nil {
			t.Fatalf("got %v, %v; want the save error and no notification", summaries(n), err)
		}
		st.saveErr = nil
		n, err = e.Round(ctx, servers, obs, 0)
		if err != nil || !slices.Equal(summaries(n), []string{"web1 disk firing"}) {
			t.Errorf("retry: %v, %v", summaries(n), err)
		}
	})

	t.Run("silences", func(t *testing.T) {
		st := newMemStore()
		c := clockwork.NewFakeClockAt(t0)
		e := NewEngine(st, c, quietLogger(t))
		sil, err := NewSilence("web1", RuleDisk, "disk swap", t0, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddSilence(ctx, sil); err != nil {
			t.Fatal(err)
		}
		n, err := e.Round(ctx, servers, []monitor.Result{
			at("web1", t0, ok(rd{disk: 95, mem: 99})),
			at("web2", t0, ok(rd{disk: 95})),
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := summaries(n), []string{"web2 disk firing"}; !slices.Equal(got, want) {
			t.Errorf("silenced round: %v, want %v", got, want)
		}
		if keys := st.keys(); !slices.Equal(keys, []string{"web1|disk", "web1|memory", "web2|disk"}) {
			t.Errorf("stored %v: a silenced rule's state must still advance", keys)
		}
		c.Advance(time.Hour)
		n, err = e.Round(ctx, servers, []monitor.Result{at("web1", t0.Add(time.Hour), ok(rd{disk: 95}))}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := summaries(n), []string{"web1 disk firing"}; !slices.Equal(got, want) {
			t.Errorf("after the silence: %v, want %v", got, want)
		}
	})

	t.Run("states back to ok are deleted", func(t *testing.T) {
		st := newMemStore()
		e := NewEngine(st, clockwork.NewFakeClockAt(t0), quietLogger(t))
		if _, err := e.Round(ctx, servers, []monitor.Result{at("web1", t0, fail(monitor.KindTimeout, "deadline"))}, 0); err != nil {
			t.Fatal(err)
		}
		if keys := st.keys(); !slices.Equal(keys, []string{"web1|down"}) {
			t.Fatalf("stored %v, want the pending down", keys)
		}
		if _, err := e.Round(ctx, servers, []monitor.Result{at("web1", t0.Add(time.Minute), ok(rd{}))}, 0); err != nil {
			t.Fatal(err)
		}
		if keys := st.keys(); len(keys) != 0 {
			t.Errorf("stored %v, want nothing", keys)
		}
	})

	t.Run("a rule turned off is deleted", func(t *testing.T) {
		st := newMemStore()
		e := NewEngine(st, clockwork.NewFakeClockAt(t0), quietLogger(t))
		if _, err := e.Round(ctx, servers, []monitor.Result{at("web1", t0, ok(rd{mem: 95}))}, 0); err != nil {
			t.Fatal(err)
		}
		off := fleet("web1")
		off[0].Alerts.Memory = inventory.Threshold{}
		if _, err := e.Round(ctx, off, []monitor.Result{at("web1", t0.Add(time.Minute), ok(rd{mem: 95}))}, 0); err != nil {
			t.Fatal(err)
		}
		if keys := st.keys(); len(keys) != 0 {
			t.Errorf("stored %v, want nothing", keys)
		}
	})

	t.Run("servers not in the inventory are skipped", func(t *testing.T) {
		st := newMemStore()
		e := NewEngine(st, clockwork.NewFakeClockAt(t0), quietLogger(t))
		n, err := e.Round(ctx, servers, []monitor.Result{at("gone", t0, ok(rd{disk: 99}))}, 0)
		if err != nil || n != nil || len(st.keys()) != 0 {
			t.Errorf("got %v, %v, stored %v", summaries(n), err, st.keys())
		}
	})
}

func TestNotificationID(t *testing.T) {
	a := Alert{Server: "web1", Rule: RuleDisk, State: monitor.AlertFiring, StartsAt: t0}
	b := Alert{Server: "web2", Rule: RuleDown, State: monitor.AlertFiring, StartsAt: t0}
	id := NotificationID(t0, []Alert{a, b}, false)
	for _, tc := range []struct {
		name   string
		other  string
		differ bool
	}{
		{"same input", NotificationID(t0, []Alert{a, b}, false), false},
		{"same alerts, other order after NewNotification", NewNotification(t0, []Alert{b, a}, false).ID, false},
		{"other time", NotificationID(t0.Add(time.Second), []Alert{a, b}, false), true},
		{"fewer alerts", NotificationID(t0, []Alert{a}, false), true},
		{"resolved instead of firing", NotificationID(t0, []Alert{a, {Server: "web2", Rule: RuleDown, State: monitor.AlertResolved, StartsAt: t0}}, false), true},
		{"test", NotificationID(t0, []Alert{a, b}, true), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.other != id) != tc.differ {
				t.Errorf("ID %s vs %s, want differ=%v", tc.other, id, tc.differ)
			}
		})
	}
}

func TestSilence(t *testing.T) {
	t.Run("matches", func(t *testing.T) {
		for _, tc := range []struct {
			name         string
			silenceRule  string
			server, rule string
			at           time.Duration
			want         bool
		}{
			{"all rules", "", "web1", RuleDisk, 0, true},
			{"that rule", RuleDisk, "web1", RuleDisk, 0, true},
			{"another rule", RuleDisk, "web1", RuleMemory, 0, false},
			{"another server", "", "web2", RuleDisk, 0, false},
			{"every process rule", monitor.SilenceAllProcesses, "web1", "processes:python", 0, true},
			{"one process rule", "processes:python", "web1", "processes:java", 0, false},
			{"expired", "", "web1", RuleDisk, 2 * time.Hour, false},
			{"at its end", "", "web1", RuleDisk, 2*time.Hour - time.Nanosecond, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, err := NewSilence("web1", tc.silenceRule, "", t0, 2*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if got := s.Matches(tc.server, tc.rule, t0.Add(tc.at)); got != tc.want {
					t.Errorf("Matches = %v, want %v", got, tc.want)
				}
			})
		}
	})
	t.Run("rejects", func(t *testing.T) {
		for _, tc := range []struct {
			name, server, rule string
			d                  time.Duration
		}{
			{"no server", "", "", time.Hour},
			{"no duration", "web1", "", 0},
			{"unknown rule", "web1", "dsik", time.Hour},
			{"process rule without keyword", "web1", "processes:", time.Hour},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := NewSilence(tc.server, tc.rule, "", t0, tc.d); err == nil {
					t.Error("no error")
				}
			})
		}
	})
	t.Run("ids differ", func(t *testing.T) {
		a, _ := NewSilence("web1", "", "", t0, time.Hour)
		b, _ := NewSilence("web1", "", "", t0, time.Hour)
		if a.ID == "" || a.ID == b.ID {
			t.Errorf("ids %q and %q", a.ID, b.ID)
		}
	})
}

// TestRoundQueuesBeforeSaving: with a queue, the notification is queued
// before the rule states are saved; a queue that fails leaves the states
// unsaved, so the next round notifies again (at least once, never lost).
func TestRoundQueuesBeforeSaving(t *testing.T) {
	ctx := context.Background()
	servers := fleet("web1")
	st := newMemStore()
	e := NewEngine(st, clockwork.NewFakeClockAt(t0), quietLogger(t))
	var order []string
	queueErr := errors.New("outbox: disk full")
	e.SetQueue(func(_ context.Context, n Notification) error {
		order = append(order, "queue "+n.ID)
		if len(st.states) != 0 {
			order = append(order, "states saved before the queue")
		}
		return queueErr
	})
	down := at("web1", t0, keyChanged()) // fires "down" at once
	n, err := e.Round(ctx, servers, []monitor.Result{down}, 0)
	if n != nil || !errors.Is(err, queueErr) || len(st.states) != 0 || len(order) != 1 {
		t.Fatalf("queue failed: n %v, err %v, states %v, order %q; want no notification, the error, nothing saved", n, err, st.states, order)
	}
	queueErr = nil
	n, err = e.Round(ctx, servers, []monitor.Result{down}, 0)
	if err != nil || n == nil || len(order) != 2 || len(st.states) != 1 {
		t.Fatalf("queue works: n %v, err %v, order %q, states %v; want the alert queued, then saved", n, err, order, st.states)
	}
	if got := summaries(n); !slices.Equal(got, []string{"web1 down firing"}) {
		t.Errorf("notified %q", got)
	}
}

// historyStore is a memStore that also keeps daily disk peaks.
type historyStore struct {
	*memStore
	peaks map[string][]monitor.DailyPeak
	asked int
}

func (h *historyStore) DailyDiskPeaks(_ context.Context, _ string, from, to time.Time) (map[string][]monitor.DailyPeak, error) {
	h.asked++
	out := map[string][]monitor.DailyPeak{}
	for path, ps := range h.peaks {
		for _, p := range ps {
			if !p.Day.Before(from) && p.Day.Before(to) {
				out[path] = append(out[path], p)
			}
		}
	}
	return out, nil
}

// TestEngineDiskForecast: the engine draws the trend through the store's
// daily peaks and today's readings, reads the history once a day, and
// fires "disk_full" when a file system fills within the horizon.
func TestEngineDiskForecast(t *testing.T) {
	day := monitor.Day.Start(t0)
	st := &historyStore{memStore: newMemStore(), peaks: map[string][]monitor.DailyPeak{
		"/": {{Day: day.AddDate(0, 0, -3), Value: 60}, {Day: day.AddDate(0, 0, -2), Value: 70}, {Day: day.AddDate(0, 0, -1), Value: 80}},
	}}
	logger, _ := testutil.Logger(t)
	e := NewEngine(st, clockwork.NewFakeClockAt(t0), logger)
	servers := []inventory.Server{{Name: "web1", Alerts: inventory.AlertRules{DiskFull: inventory.DiskFullRule{Within: 24 * time.Hour}, Down: inventory.DownRule{After: 3}}}}
	res := func(at time.Time, disk float64) []monitor.Result {
		return []monitor.Result{{Server: "web1", At: at, Snapshot: snap(rd{disk: disk})}}
	}
	// 60, 70, 80, then 85 today: 10 % a day from 85 leaves 36 hours.
	n, err := e.Round(context.Background(), servers, res(t0, 85), 0)
	if err != nil || n != nil {
		t.Fatalf("85 %% today: %v, %v; want nothing yet", n, err)
	}
	// 95 today: the trend steepens, and 5 % at ~11.7 %/day is under a day.
	n, err = e.Round(context.Background(), servers, res(t0.Add(time.Hour), 95), 0)
	if err != nil || n == nil || len(n.Alerts) != 1 || n.Alerts[0].Rule != RuleDiskFull {
		t.Fatalf("95 %% today: %+v, %v; want disk_full", n, err)
	}
	if st.asked != 1 {
		t.Errorf("history read %d times in one day, want once", st.asked)
	}
}

// gatedStore is a memStore whose Silences waits on gate while gate is set,
// to hold a round between loading its states and saving them.
type gatedStore struct {
	*memStore
	gate chan struct{}
}

func (g *gatedStore) Silences(ctx context.Context, now time.Time) ([]monitor.Silence, error) {
	if gate := g.gate; gate != nil {
		<-gate
	}
	return g.memStore.Silences(ctx, now)
}

// TestRoundsOfOneServerTakeTurns: two rounds that both hold results of one
// server (a slow round still running when the next one probed that server
// again) evaluate its rules one after the other, so the alert that the
// first fires is not fired again by the second from the same old state.
// Found under load in TestClusterFailover: one "down" mailed twice by one
// collector.
func TestRoundsOfOneServerTakeTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		servers := fleet("dead1")
		servers[0].Alerts.Down.After = 2
		st := &gatedStore{memStore: newMemStore()}
		e := NewEngine(st, clockwork.NewFakeClockAt(t0.Add(time.Minute)), quietLogger(t))
		refused := func(d time.Duration) monitor.Result {
			return at("dead1", t0.Add(d), fail(monitor.KindUnreachable, "connection refused"))
		}
		if n, err := e.Round(ctx, servers, []monitor.Result{refused(0)}, 0); n != nil || err != nil {
			t.Fatalf("first failure: %v, %v; want pending, no notification", summaries(n), err)
		}

		var mu sync.Mutex
		var notified []string
		round := func(r monitor.Result) {
			n, err := e.Round(ctx, servers, []monitor.Result{r}, 0)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			notified = append(notified, summaries(n)...)
			mu.Unlock()
		}
		st.gate = make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { round(refused(2 * time.Second)) }) // the slow round
		synctest.Wait()                                   // holding its states
		gate := st.gate
		st.gate = nil
		wg.Go(func() { round(refused(4 * time.Second)) }) // the next round
		synctest.Wait()
		close(gate)
		wg.Wait()
		if want := []string{"dead1 down firing"}; !slices.Equal(notified, want) {
			t.Errorf("notified %q, want %q", notified, want)
		}
	})
}

// TestRoundSkipsOlderResults: a result older than one the engine already
// evaluated for its server (a slow round's, evaluated after the next
// round's) leaves the rule states alone: they follow the readings in time
// order, so an old success does not resolve what a newer failure fired.
func TestRoundSkipsOlderResults(t *testing.T) {
	ctx := context.Background()
	servers := fleet("web1")
	st := newMemStore()
	e := NewEngine(st, clockwork.NewFakeClockAt(t0.Add(time.Minute)), quietLogger(t))
	n, err := e.Round(ctx, servers, []monitor.Result{at("web1", t0.Add(4*time.Second), keyChanged())}, 0)
	if err != nil || !slices.Equal(summaries(n), []string{"web1 down firing"}) {
		t.Fatalf("newer result: %v, %v; want down firing", summaries(n), err)
	}
	n, err = e.Round(ctx, servers, []monitor.Result{at("web1", t0.Add(2*time.Second), ok(rd{disk: 50}))}, 0)
	if err != nil || n != nil {
		t.Fatalf("older result: %v, %v; want no notification", summaries(n), err)
	}
	if keys := st.keys(); !slices.Equal(keys, []string{"web1|down"}) {
		t.Errorf("states %v, want down still firing", keys)
	}
	n, err = e.Round(ctx, servers, []monitor.Result{at("web1", t0.Add(6*time.Second), ok(rd{disk: 50}))}, 0)
	if err != nil || !slices.Equal(summaries(n), []string{"web1 down resolved"}) {
		t.Errorf("newer success: %v, %v; want down resolved", summaries(n), err)
	}
}
