package alerts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
)

// memStore is a StateStore in memory, with the contract's semantics:
// states by server and rule (AlertOK deletes), sorted reads, silences
// active while Until is after now, and new silence IDs only.
type memStore struct {
	mu       sync.Mutex
	states   map[string]monitor.AlertState // by server|rule
	silences []monitor.Silence
	saveErr  error
}

var _ StateStore = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{states: map[string]monitor.AlertState{}} }

func (m *memStore) LoadStates(_ context.Context, servers []string) ([]monitor.AlertState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []monitor.AlertState
	for _, st := range m.states {
		if servers == nil || slices.Contains(servers, st.Server) {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b monitor.AlertState) int {
		return cmp.Or(strings.Compare(a.Server, b.Server), strings.Compare(a.Rule, b.Rule))
	})
	return out, nil
}

func (m *memStore) SaveStates(_ context.Context, states []monitor.AlertState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saveErr != nil {
		return m.saveErr
	}
	for _, st := range states {
		if st.Status == monitor.AlertOK || st.Status == "" {
			delete(m.states, st.Key())
			continue
		}
		m.states[st.Key()] = st
	}
	return nil
}

func (m *memStore) Silences(_ context.Context, now time.Time) ([]monitor.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []monitor.Silence
	for _, s := range m.silences {
		if s.Until.After(now) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b monitor.Silence) int {
		return cmp.Or(strings.Compare(a.Server, b.Server), strings.Compare(a.Rule, b.Rule), a.Until.Compare(b.Until))
	})
	return out, nil
}

func (m *memStore) AddSilence(_ context.Context, s monitor.Silence) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.ContainsFunc(m.silences, func(o monitor.Silence) bool { return o.ID == s.ID }) {
		return fmt.Errorf("add silence of %s: id %s exists", s.Server, s.ID)
	}
	m.silences = append(m.silences, s)
	return nil
}

func (m *memStore) DeleteSilence(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.silences, func(o monitor.Silence) bool { return o.ID == id })
	if i < 0 {
		return fmt.Errorf("delete silence %s: %w", id, monitor.ErrNotFound)
	}
	m.silences = slices.Delete(m.silences, i, i+1)
	return nil
}

func (m *memStore) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.states))
	for k := range m.states {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestStateStoreRestart evaluates a firing alert, "restarts" (a new engine
// over the same StateStore) and checks that no duplicate goes out within
// repeat, that the repeat does go out after it, and that silences and the
// firing list survive too. Package store runs the same scenario over the
// real database.
func TestStateStoreRestart(t *testing.T) {
	ctx := context.Background()
	servers := fleet("web1", "web2")
	const repeat = 4 * time.Hour
	st := newMemStore()
	clk := clockwork.NewFakeClockAt(t0)
	logger, _ := testutil.Logger(t)

	e := NewEngine(st, clk, logger)
	n, err := e.Round(ctx, servers, []monitor.Result{
		at("web1", t0, ok(rd{disk: 95})),
		at("web2", t0, fail(monitor.KindUnreachable, "refused")),
	}, repeat)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summaries(n), []string{"web1 disk firing"}; !slices.Equal(got, want) {
		t.Fatalf("first round: %v, want %v", got, want)
	}
	sil, err := NewSilence("web2", RuleDown, "maintenance", t0, 8*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddSilence(ctx, sil); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Hour)
	e = NewEngine(st, clk, logger)
	n, err = e.Round(ctx, servers, []monitor.Result{
		at("web1", t0.Add(time.Hour), ok(rd{disk: 95})),
		at("web2", t0.Add(time.Hour), fail(monitor.KindUnreachable, "refused")),
	}, repeat)
	if err != nil {
		t.Fatal(err)
	}
	if n != nil {
		t.Fatalf("after the restart, within repeat: %v, want nothing", summaries(n))
	}

	clk.Advance(repeat - time.Hour)
	n, err = e.Round(ctx, servers, []monitor.Result{
		at("web1", t0.Add(repeat), ok(rd{disk: 95})),
		at("web2", t0.Add(repeat), fail(monitor.KindUnreachable, "refused")), // third failure: fires, silenced
	}, repeat)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summaries(n), []string{"web1 disk firing"}; !slices.Equal(got, want) {
		t.Errorf("after repeat: %v, want %v", got, want)
	}

	firing, err := Firing(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range firing {
		keys = append(keys, f.Key()+" "+f.Summary)
	}
	want := []string{"web1|disk disk 95.0 % ≥ 90 % for 3 snapshots", "web2|down down: 3 failed attempts (unreachable: refused)"}
	if !slices.Equal(keys, want) {
		t.Errorf("Firing = %q, want %q", keys, want)
	}
	if !firing[0].Since.Equal(t0) {
		t.Errorf("disk firing since %s, want %s", firing[0].Since, t0)
	}
	if firing[1].Kind != monitor.KindUnreachable {
		t.Errorf("down firing with kind %q, want unreachable", firing[1].Kind)
	}

	sils, err := st.Silences(ctx, t0.Add(repeat))
	if err != nil {
		t.Fatal(err)
	}
	if len(sils) != 1 || sils[0].ID != sil.ID || !sils[0].Until.Equal(sil.Until) || sils[0].Rule != RuleDown {
		t.Errorf("silences %+v, want %+v", sils, sil)
	}
}

// errStore fails every read.
type errStore struct{ memStore }

func (e *errStore) LoadStates(context.Context, []string) ([]monitor.AlertState, error) {
	return nil, monitor.ErrUnavailable
}

func TestFiring(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	states := []monitor.AlertState{
		{Server: "web2", Rule: RuleDown, Status: monitor.AlertFiring, Summary: "down"},
		{Server: "web1", Rule: RuleMemory, Status: monitor.AlertPending},
		{Server: "web1", Rule: RuleDisk, Status: monitor.AlertFiring, Summary: "disk"},
		{Server: "web1", Rule: RuleCPU, Status: monitor.AlertResolved},
		{Server: "web3", Rule: RuleLoad, Status: monitor.AlertOK}, // deleted, never stored
	}
	if err := st.SaveStates(ctx, states); err != nil {
		t.Fatal(err)
	}
	firing, err := Firing(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range firing {
		keys = append(keys, f.Key())
	}
	if want := []string{"web1|disk", "web2|down"}; !slices.Equal(keys, want) {
		t.Errorf("Firing = %v, want %v", keys, want)
	}

	if _, err := Firing(ctx, &errStore{}); !errors.Is(err, monitor.ErrUnavailable) {
		t.Errorf("Firing over a failing store: %v, want it to wrap the store's error", err)
	}
}
