package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/crawlerfleet/collector/inventory"
)

// A StateStore keeps rule states and silences across rounds and restarts.
type StateStore interface {
	// LoadStates returns the stored states of servers: server → rule →
	// state. A rule without a stored state is ok.
	LoadStates(ctx context.Context, servers []string) (map[string]map[string]RuleState, error)
	// SaveStates stores states; a state in StateOK is deleted instead.
	SaveStates(ctx context.Context, states []RuleState) error
	// ActiveSilences returns the silences that have not expired at now.
	ActiveSilences(ctx context.Context, now time.Time) ([]Silence, error)
	// AddSilence stores a silence.
	AddSilence(ctx context.Context, s Silence) error
	// Firing returns the states of all firing rules, by server and rule.
	Firing(ctx context.Context) ([]RuleState, error)
}

// An Engine runs the alert rules on each round's observations, keeping
// their state in a StateStore. Rounds over disjoint sets of servers may run
// concurrently.
type Engine struct {
	st     StateStore
	now    func() time.Time
	logger *slog.Logger
}

// NewEngine returns an engine that keeps state in st and reads the clock
// from now (time.Now when nil).
func NewEngine(st StateStore, now func() time.Time, logger *slog.Logger) *Engine {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Engine{st: st, now: now, logger: logger}
}

// Round evaluates the observations of one round with the rules of servers
// and returns the round's digest: one Notification with every alert that
// fired, repeated or resolved, or nil when there is none.
//
// It loads the states of the observed servers, evaluates the observations
// oldest first, and saves the states that changed before it returns, so a
// restart does not notify the same alert twice. When the states cannot be
// saved it returns no notification and an error: the next round finds the
// old states and notifies then. Observations of servers not in servers are
// skipped with a warning. repeat ≤ 0 means inventory.DefaultAlertRepeat.
func (e *Engine) Round(ctx context.Context, servers []inventory.Server, results []Observation, repeat time.Duration) (*Notification, error) {
	now := e.now()
	rules := make(map[string]inventory.AlertRules, len(servers))
	for _, s := range servers {
		rules[s.Name] = s.Alerts
	}
	var obs []Observation
	seen := map[string]bool{}
	var names []string
	for _, o := range results {
		if _, ok := rules[o.Server]; !ok {
			e.logger.Warn("observation of a server not in the inventory; skipped", "server", o.Server)
			continue
		}
		obs = append(obs, o)
		if !seen[o.Server] {
			seen[o.Server] = true
			names = append(names, o.Server)
		}
	}
	if len(obs) == 0 {
		return nil, nil
	}
	sort.Strings(names)
	sort.SliceStable(obs, func(i, j int) bool { return obs[i].At.Before(obs[j].At) })

	prev, err := e.st.LoadStates(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("alerts: load rule states: %w", err)
	}
	silences, err := e.st.ActiveSilences(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("alerts: load silences: %w", err)
	}

	cur := make(map[string]map[string]RuleState, len(names))
	for _, name := range names {
		cur[name] = prev[name]
	}
	var alerts []Alert
	for _, o := range obs {
		silenced := func(rule string) bool {
			for _, s := range silences {
				if s.Matches(o.Server, rule, now) {
					return true
				}
			}
			return false
		}
		next, notify := Evaluate(rules[o.Server], cur[o.Server], o, now, repeat, silenced)
		cur[o.Server] = next
		alerts = append(alerts, notify...)
	}

	changed := changes(names, prev, cur)
	if len(changed) > 0 {
		if err := e.st.SaveStates(ctx, changed); err != nil {
			return nil, fmt.Errorf("alerts: save rule states: %w", err)
		}
	}
	if len(alerts) == 0 {
		e.logger.Debug("alerts evaluated", "observations", len(obs), "states_saved", len(changed))
		return nil, nil
	}
	n := NewNotification(now, alerts, false)
	firing := 0
	for _, a := range n.Alerts {
		if a.State == StateFiring {
			firing++
		}
	}
	e.logger.Info("alerts to notify", "id", n.ID, "firing", firing, "resolved", len(n.Alerts)-firing,
		"observations", len(obs), "states_saved", len(changed))
	return n, nil
}

// changes returns the states of servers that differ between before and
// after; a rule gone from after comes back as StateOK (deleted).
func changes(servers []string, before, after map[string]map[string]RuleState) []RuleState {
	var out []RuleState
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
