package schedule

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the time zone cases do not depend on the machine's zoneinfo

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
)

// The tests drive the scheduler with a fake clock. Between ticks each
// distinct schedule waits on one timer of that clock, so that after an
// Advance, testutil.BlockUntil for as many timers means every schedule has
// handled the tick: its round (if any) is counted in s.rounds and its
// goroutine started, and its skips are logged. Rounds report themselves on a
// channel. Nothing waits for real time to pass.

// t0 is half a second past a whole second: a per-second schedule first ticks
// at 10:00:01.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 5e8, time.UTC)

func parse(t *testing.T, text string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse(strings.NewReader("[defaults]\nuser = \"u\"\n"+text), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func servers(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString("[[server]]\nname = \"" + n + "\"\naddress = \"local\"\n")
	}
	return b.String()
}

// started is one call of the RoundFunc.
type started struct {
	names    []string
	ctx      context.Context
	finished func(string)
}

// recorder is a RoundFunc's memory: it counts rounds per server.
type recorder struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *recorder) add(servers []inventory.Server) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	names := make([]string, len(servers))
	for i, srv := range servers {
		names[i] = srv.Name
		r.n[srv.Name]++
	}
	return names
}

func (r *recorder) get(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[name]
}

// harness is a started scheduler on a fake clock.
type harness struct {
	t      *testing.T
	s      *Scheduler
	clock  *clockwork.FakeClock
	logs   *testutil.SyncBuffer
	timers int // distinct schedules in force
}

// start starts a scheduler for inv on a fake clock at t0, and waits until
// its schedules (timers of them) wait for their first tick.
func start(t *testing.T, inv *inventory.Inventory, timers int, round RoundFunc) *harness {
	t.Helper()
	logger, logs := testutil.Logger(t)
	clock := clockwork.NewFakeClockAt(t0)
	s, err := New(inv, round, logger, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s, clock: clock, logs: logs, timers: timers}
	t.Cleanup(func() { s.Stop(context.Background()) })
	s.Start()
	testutil.BlockUntil(t, clock, timers, "the schedules waiting for their first tick")
	return h
}

// advanceTo moves the clock to when, and waits until every schedule has
// handled the ticks up to it and waits for its next one.
func (h *harness) advanceTo(when time.Time) {
	h.t.Helper()
	h.clock.Advance(when.Sub(h.clock.Now()))
	testutil.BlockUntil(h.t, h.clock, h.timers, "the schedules waiting again after "+when.Format(time.TimeOnly))
}

// roundsStarted returns how many rounds the scheduler has started.
func (h *harness) roundsStarted() uint64 {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.rounds
}

func at(hms string) time.Time {
	t, err := time.Parse(time.DateOnly+" "+time.TimeOnly, "2026-03-02 "+hms)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSlowServerIsSkippedOthersKeepTheirSchedule(t *testing.T) {
	inv := parse(t, "[schedule]\ncron = \"* * * * * *\"\n"+servers("fast", "slow", "hourly")+"schedule = \"0 * * * *\"\n")
	var rec recorder
	rounds := make(chan []string, 10)
	release := make(chan struct{})
	var slowRounds int
	h := start(t, inv, 2, func(ctx context.Context, _ time.Time, servers []inventory.Server, finished func(string)) {
		names := rec.add(servers)
		for _, n := range names {
			if n != "slow" {
				finished(n) // released before the round reports itself
			}
		}
		rounds <- names
		if slices.Contains(names, "slow") {
			slowRounds++ // only one round holds slow at a time
			if slowRounds == 1 {
				<-release // the first round of slow hangs
			}
		}
	})

	want := [][]string{{"fast", "slow"}, {"fast"}, {"fast"}}
	for i, w := range want {
		h.advanceTo(t0.Truncate(time.Second).Add(time.Duration(i+1) * time.Second))
		if got := testutil.Receive(t, rounds, "round"); !slices.Equal(got, w) {
			t.Errorf("tick %d: round of %v, want %v", i+1, got, w)
		}
	}
	if got := h.s.busy(); !slices.Equal(got, []string{"slow"}) {
		t.Errorf("running = %v, want [slow]", got)
	}
	if got, want := h.s.nextTicks()["0 * * * *"], at("11:00:00"); !got.Equal(want) {
		t.Errorf("hourly waits for %v, want %v", got, want)
	}
	close(release)
	if !h.s.Stop(context.Background()) {
		t.Error("Stop: rounds did not finish")
	}
	if n := rec.get("fast"); n != 3 {
		t.Errorf("fast ran %d rounds while slow hung, want 3", n)
	}
	if n := rec.get("slow"); n != 1 {
		t.Errorf("slow ran %d rounds, want 1: it was still running", n)
	}
	if n := rec.get("hourly"); n != 0 {
		t.Errorf("hourly ran %d rounds in three seconds", n)
	}
	logs := h.logs.String()
	if n := strings.Count(logs, "previous round still running"); n != 2 || !strings.Contains(logs, "servers=[slow]") {
		t.Errorf("want 2 skips of slow logged:\n%s", logs)
	}
}

// TestTicksFasterThanRounds checks what happens when a round takes longer
// than its schedule's interval: the ticks meanwhile start no round (every
// server is busy) and are logged, a late scheduler does not make up the ticks
// it missed, and the first tick after the round returns starts a round of
// all the servers again. The RoundFunc is never called with no servers.
func TestTicksFasterThanRounds(t *testing.T) {
	inv := parse(t, "[schedule]\ncron = \"*/2 * * * * *\"\n"+servers("web1", "web2"))
	var rec recorder
	rounds := make(chan []string, 10)
	release := make(chan struct{})
	var n int
	h := start(t, inv, 1, func(ctx context.Context, _ time.Time, servers []inventory.Server, finished func(string)) {
		if len(servers) == 0 {
			t.Error("a round of no servers")
		}
		rounds <- rec.add(servers)
		if n++; n == 1 {
			<-release // the first round is slow, and releases its servers only by returning
		}
	})

	h.advanceTo(at("10:00:02"))
	if got := testutil.Receive(t, rounds, "first round"); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Fatalf("first round of %v", got)
	}
	h.advanceTo(at("10:00:04"))
	// The scheduler was held up past five ticks: it fires once.
	h.advanceTo(at("10:00:14"))
	if got := h.roundsStarted(); got != 1 {
		t.Errorf("%d rounds started while the first was running, want 1", got)
	}
	if n := strings.Count(h.logs.String(), "previous round still running"); n != 2 {
		t.Errorf("%d skips logged, want 2 (one per tick that fired):\n%s", n, h.logs)
	}
	if got, want := h.s.nextTicks()["*/2 * * * * *"], at("10:00:16"); !got.Equal(want) {
		t.Errorf("next tick %v, want %v: missed ticks are not made up", got, want)
	}

	close(release)
	testutil.Eventually(t, testutil.Patience, "the servers released when the slow round returned", func() bool { return len(h.s.busy()) == 0 })
	h.advanceTo(at("10:00:16"))
	if got := testutil.Receive(t, rounds, "second round"); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Errorf("second round of %v, want both servers", got)
	}
	if got := h.roundsStarted(); got != 2 {
		t.Errorf("%d rounds started, want 2", got)
	}
	for _, name := range []string{"web1", "web2"} {
		if n := rec.get(name); n != 2 {
			t.Errorf("%s in %d rounds, want 2", name, n)
		}
	}
}

// TestNextTicks checks when each kind of spec ticks: with seconds, 5 fields,
// descriptors, @every, and in the inventory's time zone.
func TestNextTicks(t *testing.T) {
	tests := []struct {
		name, spec, zone string
		want             []string // RFC 3339
	}{
		{"every second", "* * * * * *", "UTC", []string{"2026-03-02T10:00:01Z", "2026-03-02T10:00:02Z", "2026-03-02T10:00:03Z"}},
		{"seconds field", "*/15 * * * * *", "UTC", []string{"2026-03-02T10:00:15Z", "2026-03-02T10:00:30Z", "2026-03-02T10:00:45Z"}},
		{"five fields", "*/5 * * * *", "UTC", []string{"2026-03-02T10:05:00Z", "2026-03-02T10:10:00Z", "2026-03-02T10:15:00Z"}},
		{"descriptor", "@hourly", "UTC", []string{"2026-03-02T11:00:00Z", "2026-03-02T12:00:00Z", "2026-03-02T13:00:00Z"}},
		// @every counts from whole seconds.
		{"every", "@every 90s", "UTC", []string{"2026-03-02T10:01:30Z", "2026-03-02T10:03:00Z", "2026-03-02T10:04:30Z"}},
		// 03:00 in Shanghai (UTC+8) is 19:00 UTC the day before.
		{"time zone", "0 3 * * *", "Asia/Shanghai", []string{"2026-03-02T19:00:00Z", "2026-03-03T19:00:00Z", "2026-03-04T19:00:00Z"}},
		{"time zone with seconds", "30 0 9 * * *", "America/New_York", []string{"2026-03-02T14:00:30Z", "2026-03-03T14:00:30Z", "2026-03-04T14:00:30Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := parse(t, "[schedule]\ntimezone = \""+tt.zone+"\"\ncron = \""+tt.spec+"\"\n"+servers("web1"))
			rounds := make(chan time.Time, 10)
			h := start(t, inv, 1, func(_ context.Context, slot time.Time, _ []inventory.Server, _ func(string)) { rounds <- slot })
			for i, w := range tt.want {
				want, err := time.Parse(time.RFC3339, w)
				if err != nil {
					t.Fatal(err)
				}
				next := h.s.nextTicks()[tt.spec]
				if !next.Equal(want) {
					t.Fatalf("tick %d at %v, want %v", i+1, next.UTC(), want)
				}
				if loc := next.Location().String(); loc != tt.zone {
					t.Errorf("tick %d computed in %s, want %s", i+1, loc, tt.zone)
				}
				h.advanceTo(want.Add(-time.Nanosecond))
				if got := h.roundsStarted(); got != uint64(i) {
					t.Fatalf("%d rounds started a nanosecond before tick %d", got, i+1)
				}
				h.advanceTo(want)
				if slot := testutil.Receive(t, rounds, "round"); !slot.Equal(want) {
					t.Errorf("round %d for slot %v, want the tick %v", i+1, slot.UTC(), want)
				}
			}
		})
	}
}

// TestStopWaitsForRounds checks that Stop waits for a round in flight
// without cancelling it, and that no tick starts a round afterwards.
func TestStopWaitsForRounds(t *testing.T) {
	inv := parse(t, "[schedule]\ncron = \"* * * * * *\"\n"+servers("web1"))
	rounds := make(chan struct{}, 10)
	release := make(chan struct{})
	ctxErr := make(chan error, 1)
	h := start(t, inv, 1, func(ctx context.Context, _ time.Time, _ []inventory.Server, _ func(string)) {
		rounds <- struct{}{}
		<-release
		ctxErr <- ctx.Err()
	})
	h.advanceTo(at("10:00:01"))
	testutil.Receive(t, rounds, "round")

	stopped := make(chan bool, 1)
	go func() { stopped <- h.s.Stop(context.Background()) }()
	testutil.Eventually(t, testutil.Patience, "Stop called", func() bool {
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		return h.s.stopped
	})
	select {
	case <-stopped:
		t.Fatal("Stop returned while a round was running")
	default:
	}
	close(release)
	if !testutil.Receive(t, stopped, "return from Stop") {
		t.Error("Stop reported the round cut short")
	}
	select {
	case err := <-ctxErr:
		if err != nil {
			t.Errorf("the round's context ended before it returned: %v", err)
		}
	default:
		t.Error("Stop returned before the round")
	}
	h.clock.Advance(time.Hour)
	if got := h.roundsStarted(); got != 1 {
		t.Errorf("%d rounds started, want 1: none after Stop", got)
	}
}

func TestStopCancelsRoundsAfterGrace(t *testing.T) {
	inv := parse(t, "[schedule]\ncron = \"* * * * * *\"\n"+servers("hung"))
	rounds := make(chan struct{}, 1)
	cancelled := make(chan struct{})
	h := start(t, inv, 1, func(ctx context.Context, _ time.Time, _ []inventory.Server, _ func(string)) {
		rounds <- struct{}{}
		<-ctx.Done()
		close(cancelled)
	})
	h.advanceTo(at("10:00:01"))
	testutil.Receive(t, rounds, "round")

	// The grace period is over before Stop is called.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if h.s.Stop(ctx) {
		t.Error("Stop reported that a hung round finished on its own")
	}
	select {
	case <-cancelled:
	default:
		t.Error("Stop returned before the hung round saw its context cancelled")
	}
}

// TestReloadSwapsSchedules checks that Reload replaces the servers and their
// schedules at once, while a round of the old schedules finishes: a server
// in both inventories stays busy, and skipped, until that round returns.
func TestReloadSwapsSchedules(t *testing.T) {
	var rec recorder
	rounds := make(chan []string, 10)
	release := make(chan struct{})
	h := start(t, parse(t, "[schedule]\ncron = \"* * * * * *\"\n"+servers("kept", "old")),
		1, func(_ context.Context, _ time.Time, servers []inventory.Server, finished func(string)) {
			names := rec.add(servers)
			finished("old")
			finished("new")
			rounds <- names
			if slices.Contains(names, "kept") && rec.get("kept") == 1 {
				<-release // the first round of kept is still running at the reload
			}
		})
	h.advanceTo(at("10:00:01"))
	if got := testutil.Receive(t, rounds, "round before the reload"); !slices.Equal(got, []string{"kept", "old"}) {
		t.Fatalf("round of %v", got)
	}

	const every2s = "*/2 * * * * *"
	next := parse(t, "[schedule]\ncron = \""+every2s+"\"\n"+servers("kept", "new"))
	if err := h.s.Reload(next); err != nil {
		t.Fatal(err)
	}
	testutil.BlockUntil(t, h.clock, 1, "the new schedule waiting")
	if got := h.s.nextTicks(); len(got) != 1 || !got[every2s].Equal(at("10:00:02")) {
		t.Errorf("after the reload the schedules wait for %v, want only %s at 10:00:02", got, every2s)
	}
	h.advanceTo(at("10:00:02"))
	if got := testutil.Receive(t, rounds, "round after the reload"); !slices.Equal(got, []string{"new"}) {
		t.Errorf("round of %v, want [new]: kept is still busy", got)
	}
	if !strings.Contains(h.logs.String(), "servers=[kept]") {
		t.Errorf("the skip of kept is not logged:\n%s", h.logs)
	}

	close(release)
	testutil.Eventually(t, testutil.Patience, "kept released by its round", func() bool { return len(h.s.busy()) == 0 })
	h.advanceTo(at("10:00:03")) // not a tick of the new schedule
	h.advanceTo(at("10:00:04"))
	if got := testutil.Receive(t, rounds, "round with kept"); !slices.Equal(got, []string{"kept", "new"}) {
		t.Errorf("round of %v, want [kept new]", got)
	}
	if n := rec.get("old"); n != 1 {
		t.Errorf("the removed server ran %d rounds, want 1 (before the reload)", n)
	}
	if got := h.roundsStarted(); got != 3 {
		t.Errorf("%d rounds started, want 3", got)
	}

	// A spec that does not parse keeps the schedules in force.
	bad := parse(t, "[schedule]\ncron = \"* * * * * *\"\n"+servers("web1"))
	bad.Servers[0].Schedule = "61 * * * *"
	if err := h.s.Reload(bad); err == nil || !strings.Contains(err.Error(), `schedule "61 * * * *"`) {
		t.Errorf("Reload of a bad spec: %v", err)
	}
	if got := h.s.nextTicks(); len(got) != 1 || got[every2s].IsZero() {
		t.Errorf("after a rejected reload the schedules are %v", got)
	}
	h.s.Stop(context.Background())
	if err := h.s.Reload(next); err == nil {
		t.Error("Reload after Stop succeeded")
	}
}

// TestRealClock checks that a scheduler without WithClock ticks by the real
// clock. It waits for a real tick of an every-second schedule, so it takes
// up to a second.
func TestRealClock(t *testing.T) {
	inv := parse(t, "[schedule]\ncron = \"* * * * * *\"\n"+servers("web1"))
	rounds := make(chan struct{}, 10)
	logger, _ := testutil.Logger(t)
	s, err := New(inv, func(context.Context, time.Time, []inventory.Server, func(string)) { rounds <- struct{}{} }, logger)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	testutil.Receive(t, rounds, "round on the real clock")
	if !s.Stop(context.Background()) {
		t.Error("Stop: rounds did not finish")
	}
}
