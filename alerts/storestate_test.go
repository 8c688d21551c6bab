package alerts

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/store"
)

// openStore opens the embedded store in dir; it is closed at the end of the
// test unless the returned func closes it first.
func openStore(t *testing.T, dir string) (*store.Store, func()) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{DataDir: dir}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	closeFn := func() {
		if closed {
			return
		}
		closed = true
		if err := s.Close(ctx); err != nil {
			t.Errorf("close store: %v", err)
		}
	}
	t.Cleanup(closeFn)
	return s, closeFn
}

// TestStoreStateRestart evaluates a firing alert, "restarts" (reopens the
// store with a new engine) and checks that no duplicate goes out within
// repeat, that the repeat does go out after it, and that silences and the
// firing list survive too.
func TestStoreStateRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	servers := fleet("web1", "web2")
	const repeat = 4 * time.Hour

	s, closeStore := openStore(t, dir)
	c := &clock{t: t0}
	e := NewEngine(NewStoreState(s), c.now, quietLogger())
	n, err := e.Round(ctx, servers, []Observation{
		at("web1", t0, ok(rd{disk: 95})),
		at("web2", t0, fail("unreachable", "refused")),
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
	if err := NewStoreState(s).AddSilence(ctx, sil); err != nil {
		t.Fatal(err)
	}
	closeStore()

	s, _ = openStore(t, dir)
	st := NewStoreState(s)
	c.set(t0.Add(time.Hour))
	e = NewEngine(st, c.now, quietLogger())
	n, err = e.Round(ctx, servers, []Observation{
		at("web1", t0.Add(time.Hour), ok(rd{disk: 95})),
		at("web2", t0.Add(time.Hour), fail("unreachable", "refused")),
	}, repeat)
	if err != nil {
		t.Fatal(err)
	}
	if n != nil {
		t.Fatalf("after the restart, within repeat: %v, want nothing", summaries(n))
	}

	c.set(t0.Add(repeat))
	n, err = e.Round(ctx, servers, []Observation{
		at("web1", t0.Add(repeat), ok(rd{disk: 95})),
		at("web2", t0.Add(repeat), fail("unreachable", "refused")), // third failure: fires, silenced
	}, repeat)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summaries(n), []string{"web1 disk firing"}; !slices.Equal(got, want) {
		t.Errorf("after repeat: %v, want %v", got, want)
	}

	firing, err := st.Firing(ctx)
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

	sils, err := st.ActiveSilences(ctx, t0.Add(repeat))
	if err != nil {
		t.Fatal(err)
	}
	if len(sils) != 1 || sils[0].ID != sil.ID || !sils[0].Until.Equal(sil.Until) || sils[0].Rule != RuleDown {
		t.Errorf("silences %+v, want %+v", sils, sil)
	}
}
