package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
)

func TestAlertStates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logger, _ := testutil.Logger(t)
	s, err := Open(ctx, Config{DataDir: dir}, logger)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close(ctx)
		}
	})
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC)
	firing := monitor.AlertState{
		Server: "web1", Rule: "disk", Status: monitor.AlertFiring, Streak: 3,
		Since: t0, LastNotified: t0.Add(time.Minute), Value: 93.25, Threshold: 90,
		Summary: "disk 93.2 % ≥ 90 %",
	}
	down := monitor.AlertState{
		Server: "web2", Rule: "down", Status: monitor.AlertFiring, Streak: 1, Since: t0,
		Value: 1, Threshold: 3, Summary: "down: host key changed", Kind: monitor.KindHostKey, HostKeyChanged: true,
	}
	pending := monitor.AlertState{Server: "web1", Rule: "processes:python", Status: monitor.AlertPending, Streak: 1, Since: t0}
	if err := s.SaveStates(ctx, []monitor.AlertState{firing, down, pending}); err != nil {
		t.Fatal(err)
	}

	// Times come back in UTC to the millisecond; a zero time stays zero.
	want := func(st monitor.AlertState) monitor.AlertState {
		st.Since = st.Since.Truncate(time.Millisecond)
		st.LastNotified = st.LastNotified.Truncate(time.Millisecond)
		return st
	}
	got, err := s.LoadStates(ctx, []string{"web1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != want(firing) || got[1] != want(pending) {
		t.Fatalf("LoadStates(web1) = %+v", got)
	}
	if !got[1].LastNotified.IsZero() || got[1].LastNotified != (time.Time{}) {
		t.Errorf("zero LastNotified came back as %s (%#v), want time.Time{}", got[1].LastNotified, got[1].LastNotified)
	}

	t.Run("an ok state is deleted", func(t *testing.T) {
		pending.Status = monitor.AlertOK
		firing.Streak = 4
		if err := s.SaveStates(ctx, []monitor.AlertState{pending, firing}); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadStates(ctx, []string{"web1", "web9"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != want(firing) {
			t.Errorf("LoadStates = %+v", got)
		}
		if n := count(t, s, alertStateName, nil); n != 2 {
			t.Errorf("%d documents, want 2", n)
		}
	})

	t.Run("no servers, all servers", func(t *testing.T) {
		got, err := s.LoadStates(ctx, []string{})
		if err != nil || len(got) != 0 {
			t.Errorf("LoadStates([]) = %+v, %v", got, err)
		}
		got, err = s.LoadStates(ctx, nil)
		if err != nil || len(got) != 2 || got[1] != want(down) {
			t.Errorf("LoadStates(nil) = %+v, %v", got, err)
		}
	})

	t.Run("a state without server or rule is refused", func(t *testing.T) {
		if err := s.SaveStates(ctx, []monitor.AlertState{{Rule: "disk", Status: monitor.AlertFiring}}); err == nil {
			t.Error("no error")
		}
	})

	t.Run("states survive a reopen", func(t *testing.T) {
		closed = true
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		s2, _ := openTest(t, Config{DataDir: dir})
		got, err := s2.LoadStates(ctx, []string{"web1", "web2"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != want(firing) || got[1] != want(down) {
			t.Errorf("after reopen: %+v", got)
		}
	})
}

func TestDeleteSilence(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	keep := monitor.Silence{ID: "keep", Server: "web1", Created: t0, Until: t0.Add(time.Hour)}
	lift := monitor.Silence{ID: "lift", Server: "web2", Rule: "disk", Created: t0, Until: t0.Add(time.Hour)}
	for _, sil := range []monitor.Silence{keep, lift} {
		if err := s.AddSilence(ctx, sil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteSilence(ctx, "lift"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Silences(ctx, t0)
	if err != nil || len(got) != 1 || got[0].ID != "keep" {
		t.Errorf("after deleting lift: %+v, %v", got, err)
	}
	for _, id := range []string{"lift", "nope"} {
		if err := s.DeleteSilence(ctx, id); !errors.Is(err, monitor.ErrNotFound) || !strings.Contains(err.Error(), id) {
			t.Errorf("DeleteSilence(%q) = %v, want one that wraps ErrNotFound and names the id", id, err)
		}
	}
}

func TestSilences(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	short := monitor.Silence{ID: "a1", Server: "web1", Rule: "disk", Created: t0, Until: t0.Add(time.Hour), Comment: "disk swap"}
	long := monitor.Silence{ID: "b2", Server: "web1", Created: t0, Until: t0.Add(2 * time.Hour)}
	for _, sil := range []monitor.Silence{long, short} {
		if err := s.AddSilence(ctx, sil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddSilence(ctx, short); err == nil {
		t.Error("AddSilence with a used id: no error")
	}
	if err := s.AddSilence(ctx, monitor.Silence{Server: "web1"}); err == nil {
		t.Error("AddSilence without id: no error")
	}

	for _, tc := range []struct {
		name   string
		at     time.Duration
		want   []monitor.Silence
		stored int64 // documents before the prune at the same time
		docs   int64 // after it
	}{
		{"both active", 30 * time.Minute, []monitor.Silence{long, short}, 2, 2},
		{"just before the short one's end", time.Hour - time.Microsecond, []monitor.Silence{long, short}, 2, 2},
		{"the short one expired at its end", time.Hour, []monitor.Silence{long}, 2, 1},
		{"all expired", 3 * time.Hour, nil, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0.Add(tc.at)
			for range 2 { // reading changes nothing
				got, err := s.Silences(ctx, now)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("silence %d: %+v, want %+v", i, got[i], tc.want[i])
					}
				}
				if n := count(t, s, silencesName, bson.D{}); n != tc.stored {
					t.Errorf("%d documents after Silences, want %d (reading deletes nothing)", n, tc.stored)
				}
			}
			if err := s.Prune(ctx, now); err != nil {
				t.Fatal(err)
			}
			if n := count(t, s, silencesName, bson.D{}); n != tc.docs {
				t.Errorf("%d documents left, want %d (expired ones pruned)", n, tc.docs)
			}
			got, err := s.Silences(ctx, now)
			if err != nil || len(got) != len(tc.want) {
				t.Errorf("after Prune: %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestPruneWithoutSilences prunes a store that never used the alert
// collections: there are no silences to delete, and no error.
func TestPruneWithoutSilences(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	if err := s.Prune(ctx, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("Prune: %v", err)
	}
}

// TestSaveStatesInChunks saves more states than one command may carry on
// FerretDB (maxStatements), upserts and deletes mixed.
func TestSaveStatesInChunks(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	n := 3*maxStatements + 5
	states := make([]monitor.AlertState, n)
	for i := range states {
		states[i] = monitor.AlertState{Server: fmt.Sprintf("web%03d", i), Rule: "disk", Status: monitor.AlertFiring, Streak: i, Since: t0}
	}
	if err := s.SaveStates(ctx, states); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, alertStateName, nil); got != int64(n) {
		t.Fatalf("%d states stored, want %d", got, n)
	}
	for i := range states {
		if i%2 == 0 {
			states[i].Status = monitor.AlertOK
		}
	}
	if err := s.SaveStates(ctx, states); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadStates(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n/2 {
		t.Fatalf("%d states left, want %d", len(got), n/2)
	}
	for _, st := range got {
		if st.Streak%2 != 1 {
			t.Errorf("state %s|%s (streak %d) should have been deleted", st.Server, st.Rule, st.Streak)
		}
	}
}

// TestFirstUseConcurrent uses the collections made on first use from
// several goroutines at once: each is made once, and every call succeeds.
// Run with -race.
func TestFirstUseConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	errs := make(chan error, 3*8)
	for i := range 8 {
		go func() {
			errs <- s.SaveStates(ctx, []monitor.AlertState{{Server: fmt.Sprintf("web%d", i), Rule: "down", Status: monitor.AlertFiring, Since: t0}})
		}()
		go func() {
			_, err := s.Silences(ctx, t0)
			errs <- err
		}()
		go func() {
			_, err := s.OutboxInsert(ctx, monitor.OutboxEntry{ID: fmt.Sprintf("n%d|email", i), Status: monitor.OutboxPending, Created: t0})
			errs <- err
		}()
	}
	for range 3 * 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	states, err := s.LoadStates(ctx, nil)
	if err != nil || len(states) != 8 {
		t.Errorf("LoadStates = %d states, %v; want 8", len(states), err)
	}
	if n, err := s.OutboxPending(ctx); err != nil || n != 8 {
		t.Errorf("OutboxPending = %d, %v; want 8", n, err)
	}
}
