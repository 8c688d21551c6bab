package alerts

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// A StateStore keeps rule states and silences across rounds and restarts.
// The store package implements it.
type StateStore interface {
	// LoadStates returns the stored states of servers (all servers when
	// servers is nil), sorted by server and rule. A rule without a stored
	// state is ok.
	LoadStates(ctx context.Context, servers []string) ([]monitor.AlertState, error)
	// SaveStates stores states by server and rule; a state with Status
	// AlertOK (or "") is deleted instead.
	SaveStates(ctx context.Context, states []monitor.AlertState) error
	// Silences returns the silences active at now (Until after now),
	// sorted by server, rule and expiry.
	Silences(ctx context.Context, now time.Time) ([]monitor.Silence, error)
	// AddSilence stores a silence; its ID must be new.
	AddSilence(ctx context.Context, s monitor.Silence) error
	// DeleteSilence removes the silence with id, expired or not; an
	// unknown id is an error that wraps monitor.ErrNotFound.
	DeleteSilence(ctx context.Context, id string) error
}

// Firing returns the states of every firing rule in st, of all servers,
// sorted by server and rule.
func Firing(ctx context.Context, st StateStore) ([]monitor.AlertState, error) {
	states, err := st.LoadStates(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("alerts: load firing states: %w", err)
	}
	var out []monitor.AlertState
	for _, s := range states {
		if s.Status == monitor.AlertFiring {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b monitor.AlertState) int {
		return cmp.Or(strings.Compare(a.Server, b.Server), strings.Compare(a.Rule, b.Rule))
	})
	return out, nil
}
