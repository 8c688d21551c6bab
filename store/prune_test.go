package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/crawlerfleet/collector/monitor"
)

// TestPruneIfDue prunes on the first call, not again before every has
// passed since the recorded prune, and again once it has; a garbled marker,
// or one from the future, makes the prune due.
func TestPruneIfDue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := openTest(t, Config{DataDir: dir, Retention: 24 * time.Hour})
	marker := filepath.Join(dir, prunedAtName)
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	every := time.Hour

	// old writes a snapshot past retention at now and a silence that
	// expires just after now, and returns a function that reports which of
	// them are still stored.
	old := func(now time.Time, id string) func() (snap, sil bool) {
		t.Helper()
		r := snapResult("web-"+id, now.Add(-48*time.Hour), reading{cpu: 1})
		writeAll(t, s, []monitor.Result{r})
		if err := s.AddSilence(ctx, monitor.Silence{ID: id, Server: "web1", Created: now, Until: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		return func() (bool, bool) {
			return count(t, s, snapshotsName, bson.D{{Key: "server", Value: r.Server}}) == 1,
				count(t, s, silencesName, bson.D{{Key: "_id", Value: id}}) == 1
		}
	}
	pruneIfDue := func(now time.Time, want bool) {
		t.Helper()
		ran, err := s.PruneIfDue(ctx, now, every)
		if err != nil || ran != want {
			t.Fatalf("PruneIfDue at %s = %v, %v; want %v, nil", now.Format(time.TimeOnly), ran, err, want)
		}
	}

	// No marker: due. The old snapshot goes; the silence is not expired yet.
	first := old(t0, "s1")
	pruneIfDue(t0, true)
	if snap, sil := first(); snap || !sil {
		t.Errorf("after the first prune: snapshot kept %v (want false), silence kept %v (want true)", snap, sil)
	}
	b, err := os.ReadFile(marker)
	if err != nil {
		t.Fatalf("no marker after a prune: %v", err)
	}
	if got, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err != nil || !got.Equal(t0) {
		t.Errorf("marker holds %q, want %s", b, t0.Format(time.RFC3339Nano))
	}

	// Half an hour later: not due, nothing deleted though there is
	// something to delete.
	second := old(t0.Add(30*time.Minute), "s2")
	pruneIfDue(t0.Add(30*time.Minute), false)
	pruneIfDue(t0.Add(every-time.Millisecond), false)
	if snap, sil := second(); !snap || !sil {
		t.Errorf("prune not due, yet something was deleted: snapshot kept %v, silence kept %v", snap, sil)
	}
	if _, sil := first(); !sil {
		t.Error("prune not due, yet the expired silence was deleted")
	}

	// every after the last prune: due again, and both old silences expired.
	pruneIfDue(t0.Add(every), true)
	if snap, sil := second(); snap || sil {
		t.Errorf("after the second prune: snapshot kept %v, silence kept %v; want both gone", snap, sil)
	}
	if _, sil := first(); sil {
		t.Error("after the second prune: the first silence, expired, is still stored")
	}
	pruneIfDue(t0.Add(every+time.Minute), false)

	// A marker that cannot be read is due, and is rewritten.
	if err := os.WriteFile(marker, []byte("yesterday\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pruneIfDue(t0.Add(every+2*time.Minute), true)
	pruneIfDue(t0.Add(every+3*time.Minute), false)

	// A marker after now (the clock went back) is due.
	pruneIfDue(t0, true)
	pruneIfDue(t0.Add(time.Minute), false)

	// Only the marker is left in the data dir: no temporary files.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), prunedAtName) && e.Name() != prunedAtName {
			t.Errorf("left behind in the data dir: %s", e.Name())
		}
	}
}

// TestPruneIfDueFailure records nothing when the prune fails, so the next
// call tries again.
func TestPruneIfDueFailure(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, Config{DataDir: dir})
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	ran, err := s.PruneIfDue(cancelled, t0, time.Hour)
	if !ran || err == nil {
		t.Fatalf("PruneIfDue with a cancelled context = %v, %v; want true and an error", ran, err)
	}
	if _, err := os.Stat(filepath.Join(dir, prunedAtName)); !os.IsNotExist(err) {
		t.Errorf("marker after a failed prune: %v; want none", err)
	}
	ran, err = s.PruneIfDue(context.Background(), t0.Add(time.Minute), time.Hour)
	if !ran || err != nil {
		t.Errorf("PruneIfDue after a failed prune = %v, %v; want true, nil", ran, err)
	}
}
