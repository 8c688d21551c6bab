package alerts

import (
	"context"
	"sync"
	"time"

	"github.com/crawlerfleet/collector/store"
)

// NewStoreState returns a StateStore that keeps states and silences in s
// (collections alert_state and silences), opening them on first use.
func NewStoreState(s *store.Store) StateStore { return &storeState{s: s} }

var _ StateStore = (*storeState)(nil)

type storeState struct {
	s  *store.Store
	mu sync.Mutex
	as *store.AlertStore
}

// open returns the alert collections, opening them on first success.
func (st *storeState) open(ctx context.Context) (*store.AlertStore, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.as == nil {
		as, err := st.s.AlertStore(ctx)
		if err != nil {
			return nil, err
		}
		st.as = as
	}
	return st.as, nil
}

func (st *storeState) LoadStates(ctx context.Context, servers []string) (map[string]map[string]RuleState, error) {
	as, err := st.open(ctx)
	if err != nil {
		return nil, err
	}
	if servers == nil {
		servers = []string{} // nil asks the store for every server
	}
	docs, err := as.LoadStates(ctx, servers)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]RuleState, len(servers))
	for _, d := range docs {
		if out[d.Server] == nil {
			out[d.Server] = map[string]RuleState{}
		}
		out[d.Server][d.Rule] = fromDoc(d)
	}
	return out, nil
}

func (st *storeState) SaveStates(ctx context.Context, states []RuleState) error {
	as, err := st.open(ctx)
	if err != nil {
		return err
	}
	docs := make([]store.AlertState, len(states))
	for i, s := range states {
		state := string(s.State)
		if s.State == StateOK {
			state = store.StateOK
		}
		docs[i] = store.AlertState{
			Server: s.Server, Rule: s.Rule, State: state, Streak: s.Streak,
			Since: s.Since, LastNotified: s.LastNotified,
			Value: s.Value, Threshold: s.Threshold, Summary: s.Summary, Kind: s.Kind,
			HostKeyChanged: s.HostKeyChanged,
		}
	}
	return as.SaveStates(ctx, docs)
}

func (st *storeState) ActiveSilences(ctx context.Context, now time.Time) ([]Silence, error) {
	as, err := st.open(ctx)
	if err != nil {
		return nil, err
	}
	docs, err := as.Silences(ctx, now)
	if err != nil {
		return nil, err
	}
	out := make([]Silence, len(docs))
	for i, d := range docs {
		out[i] = Silence{ID: d.ID, Server: d.Server, Rule: d.Rule, Until: d.Until, Created: d.Created, Comment: d.Comment}
	}
	return out, nil
}

func (st *storeState) AddSilence(ctx context.Context, s Silence) error {
	as, err := st.open(ctx)
	if err != nil {
		return err
	}
	return as.AddSilence(ctx, store.Silence{ID: s.ID, Server: s.Server, Rule: s.Rule, Until: s.Until, Created: s.Created, Comment: s.Comment})
}

func (st *storeState) Firing(ctx context.Context) ([]RuleState, error) {
	as, err := st.open(ctx)
	if err != nil {
		return nil, err
	}
	docs, err := as.LoadStates(ctx, nil)
	if err != nil {
		return nil, err
	}
	var out []RuleState
	for _, d := range docs {
		if State(d.State) == StateFiring {
			out = append(out, fromDoc(d))
		}
	}
	return out, nil
}

func fromDoc(d store.AlertState) RuleState {
	return RuleState{
		Server: d.Server, Rule: d.Rule, State: State(d.State), Streak: d.Streak,
		Since: d.Since, LastNotified: d.LastNotified,
		Value: d.Value, Threshold: d.Threshold, Summary: d.Summary, Kind: d.Kind,
		HostKeyChanged: d.HostKeyChanged,
	}
}
