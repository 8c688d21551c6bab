package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// An Engine runs the alert rules on each round's results, keeping
// their state in a StateStore. Rounds may run concurrently: those over
// disjoint sets of servers run side by side, and those that share a server
// take turns with its rules (a slow round may still hold a server's result
// when the next round has probed it again).
type Engine struct {
	queue  func(context.Context, Notification) error // see SetQueue
	st     StateStore
	clock  clockwork.Clock
	logger *slog.Logger
	trends diskTrends // the daily disk peaks of the "disk_full" forecasts
	turns  turns

	mu     sync.Mutex
	latest map[string]time.Time // by server: the newest result evaluated
}

// NewEngine returns an engine that keeps state in st and reads the time
// from clock, the notification clock of Evaluate; nil means the real clock
// (tests pass clockwork.NewFakeClock()).
func NewEngine(st StateStore, clock clockwork.Clock, logger *slog.Logger) *Engine {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Engine{st: st, clock: clock, logger: logger, latest: map[string]time.Time{}}
}

// SetQueue makes Round hand each notification to queue (the outbox) before
// it saves the rule states, so that a crash between the two notifies again
// rather than never. Call it before the first Round.
func (e *Engine) SetQueue(queue func(context.Context, Notification) error) { e.queue = queue }

// Round evaluates the results of one round with the rules of servers and
// returns the round's digest: one Notification with every alert that fired,
// repeated or resolved, or nil when there is none.
//
// It loads the states of the servers with results, evaluates the results
// oldest first, queues the notification (see SetQueue), and saves the
// states that changed before it returns, so a restart does not notify the
// same alert twice. When the notification cannot be queued, the states are
// not saved and it returns an error: the next round notifies again. When
// the states cannot be saved it returns an error, with the notification
// already queued (or, without a queue, no notification: the next round
// finds the old states and notifies then). Results of servers not in
// servers are skipped with a warning. repeat ≤ 0 means
// inventory.DefaultAlertRepeat.
func (e *Engine) Round(ctx context.Context, servers []inventory.Server, results []monitor.Result, repeat time.Duration) (*Notification, error) {
	now := e.clock.Now()
	rules := make(map[string]inventory.AlertRules, len(servers))
	for _, s := range servers {
		rules[s.Name] = s.Alerts
	}
	var known []monitor.Result
	var names []string
	for _, r := range results {
		if _, ok := rules[r.Server]; !ok {
			e.logger.Warn("result of a server not in the inventory; skipped", "server", r.Server)
			continue
		}
		known = append(known, r)
		names = append(names, r.Server)
	}
	if len(known) == 0 {
		return nil, nil
	}
	sort.Strings(names)
	names = slices.Compact(names)
	release, err := e.turns.take(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("alerts: wait for another round evaluating these servers: %w", err)
	}
	defer release()

	rs, names, latest := e.newer(known)
	if len(rs) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		seen[name] = true
	}

	stored, err := e.st.LoadStates(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("alerts: load rule states: %w", err)
	}
	prev := make(map[string]map[string]monitor.AlertState, len(names))
	for _, st := range stored {
		if !seen[st.Server] {
			continue // not asked for
		}
		if prev[st.Server] == nil {
			prev[st.Server] = map[string]monitor.AlertState{}
		}
		prev[st.Server][st.Rule] = st
	}
	silences, err := e.st.Silences(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("alerts: load silences: %w", err)
	}

	cur := make(map[string]map[string]monitor.AlertState, len(names))
	for _, name := range names {
		cur[name] = prev[name]
	}
	var alerts []Alert
	for _, r := range rs {
		silenced := func(rule string) bool {
			for _, s := range silences {
				if s.Matches(r.Server, rule, now) {
					return true
				}
			}
			return false
		}
		next, notify := EvaluateForecast(rules[r.Server], cur[r.Server], r, e.forecast(ctx, rules[r.Server], r), now, repeat, silenced)
		cur[r.Server] = next
		alerts = append(alerts, notify...)
	}

	changed := changes(names, prev, cur)
	var n *Notification
	if len(alerts) > 0 {
		n = NewNotification(now, alerts, false)
		// Queue first, then save: a crash in between notifies again after
		// the restart (at least once) rather than never.
		if e.queue != nil {
			if err := e.queue(ctx, *n); err != nil {
				return nil, fmt.Errorf("alerts: queue notification %s (rule states not saved, so the next round notifies again): %w", n.ID, err)
			}
		}
	}
	e.mu.Lock()
	maps.Copy(e.latest, latest)
	e.mu.Unlock()
	if len(changed) > 0 {
		if err := e.st.SaveStates(ctx, changed); err != nil {
			if e.queue == nil {
				n = nil // not notified: the next round finds the old states and notifies then
			}
			return n, fmt.Errorf("alerts: save rule states: %w", err)
		}
	}
	if n == nil {
		e.logger.Debug("alerts evaluated", "results", len(rs), "states_saved", len(changed))
		return nil, nil
	}
	firing := 0
	for _, a := range n.Alerts {
		if a.State == monitor.AlertFiring {
			firing++
		}
	}
	e.logger.Info("alerts to notify", "id", n.ID, "firing", firing, "resolved", len(n.Alerts)-firing,
		"results", len(rs), "states_saved", len(changed))
	return n, nil
}

// newer returns the results newer than the newest the engine evaluated of
// their server (or without a time), oldest first, with their servers,
// sorted, and the newest time of each. The caller holds the servers' turns.
func (e *Engine) newer(results []monitor.Result) (rs []monitor.Result, names []string, latest map[string]time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	latest = map[string]time.Time{}
	for _, r := range results {
		if last, ok := e.latest[r.Server]; ok && r.At.Before(last) && !r.At.IsZero() {
			e.logger.Debug("result older than one evaluated already; its alert rules are not evaluated again", "server", r.Server, "at", r.At, "evaluated", last)
			continue
		}
		rs = append(rs, r)
		if _, ok := latest[r.Server]; !ok {
			names = append(names, r.Server)
		}
		if r.At.After(latest[r.Server]) {
			latest[r.Server] = r.At
		}
	}
	sort.Strings(names)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].At.Before(rs[j].At) })
	return rs, names, latest
}

// turns gives each server's rules to one round at a time. A turn is a
// channel of one slot, so that a round waiting for one can give up with its
// context.
type turns struct {
	mu   sync.Mutex
	slot map[string]chan struct{}
}

// take waits for the turns of servers (sorted, so that two rounds never
// wait on each other) and returns the function that gives them back.
func (t *turns) take(ctx context.Context, servers []string) (release func(), err error) {
	t.mu.Lock()
	if t.slot == nil {
		t.slot = map[string]chan struct{}{}
	}
	slots := make([]chan struct{}, len(servers))
	for i, s := range servers {
		if t.slot[s] == nil {
			t.slot[s] = make(chan struct{}, 1)
		}
		slots[i] = t.slot[s]
	}
	t.mu.Unlock()
	release = func() {
		for _, c := range slots {
			<-c
		}
	}
	for i, c := range slots {
		select {
		case c <- struct{}{}:
		case <-ctx.Done():
			slots = slots[:i]
			release()
			return nil, ctx.Err()
		}
	}
	return release, nil
}

// changes returns the states of servers that differ between before and
// after; a rule gone from after comes back as AlertOK (deleted).
func changes(servers []string, before, after map[string]map[string]monitor.AlertState) []monitor.AlertState {
	var out []monitor.AlertState
	for _, server := range servers {
		b, a := before[server], after[server]
		for rule, st := range a {
			old, ok := b[rule]
			if !ok {
				old = okState(server, rule)
			}
			if old != st {
				out = append(out, st)
			}
		}
		for rule := range b {
			if _, ok := a[rule]; !ok {
				out = append(out, okState(server, rule))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}
