package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
)

func outboxEntry(id string, created time.Time) monitor.OutboxEntry {
	return monitor.OutboxEntry{
		ID:           id + "|email",
		Notification: id,
		Channel:      "email",
		Payload:      []byte(`{"ID":"` + id + `"}`),
		Status:       monitor.OutboxPending,
		NextAttempt:  created,
		Created:      created,
		Updated:      created,
	}
}

func dueIDs(t *testing.T, s *Store, now time.Time) []string {
	t.Helper()
	due, err := s.OutboxDue(context.Background(), now, 0)
	if err != nil {
		t.Fatalf("OutboxDue: %v", err)
	}
	var ids []string
	for _, e := range due {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestOutboxInsertOnce(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := time.Date(2024, 5, 1, 10, 17, 0, 123456789, time.UTC)
	e := outboxEntry("n1", t0)

	ok, err := s.OutboxInsert(ctx, e)
	if err != nil || !ok {
		t.Fatalf("first OutboxInsert = %v, %v; want true, nil", ok, err)
	}
	changed := e
	changed.Payload = []byte(`{"ID":"other"}`)
	ok, err = s.OutboxInsert(ctx, changed)
	if err != nil || ok {
		t.Fatalf("second OutboxInsert = %v, %v; want false, nil", ok, err)
	}
	got, err := s.OutboxGet(ctx, e.ID)
	if err != nil {
		t.Fatalf("OutboxGet: %v", err)
	}
	if string(got.Payload) != string(e.Payload) {
		t.Errorf("payload = %s, want the first one %s", got.Payload, e.Payload)
	}
	if !got.Created.Equal(t0.Truncate(time.Millisecond)) || got.Created.Location() != time.UTC {
		t.Errorf("created = %v, want %v in UTC", got.Created, t0.Truncate(time.Millisecond))
	}
	if got.Status != monitor.OutboxPending || got.Channel != "email" || got.Notification != "n1" {
		t.Errorf("entry = %+v", got)
	}
	if _, err := s.OutboxGet(ctx, "missing|email"); !errors.Is(err, monitor.ErrNotFound) {
		t.Errorf("OutboxGet(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := s.OutboxInsert(ctx, monitor.OutboxEntry{}); err == nil {
		t.Error("OutboxInsert without an id succeeded")
	}
}

func TestOutboxDueSaveAndPrune(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"b", "a", "c"} {
		if _, err := s.OutboxInsert(ctx, outboxEntry(id, t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	if got := dueIDs(t, s, t0.Add(-time.Second)); len(got) != 0 {
		t.Errorf("due before any next attempt = %v, want none", got)
	}
	if got, want := dueIDs(t, s, t0.Add(time.Hour)), []string{"b|email", "a|email", "c|email"}; !slices.Equal(got, want) {
		t.Errorf("due = %v, want %v (oldest created first)", got, want)
	}
	due, err := s.OutboxDue(ctx, t0.Add(time.Hour), 2)
	if err != nil || len(due) != 2 {
		t.Fatalf("OutboxDue limit 2 = %d entries, %v", len(due), err)
	}

	// b failed once: back off; a is sent.
	b := outboxEntry("b", t0)
	b.Attempts, b.NextAttempt, b.Updated, b.LastError = 1, t0.Add(30*time.Minute), t0, "dial tcp: connection refused"
	if err := s.OutboxSave(ctx, b); err != nil {
		t.Fatalf("OutboxSave: %v", err)
	}
	if err := s.OutboxSave(ctx, b); err != nil { // saving the same state again is harmless
		t.Fatalf("OutboxSave again: %v", err)
	}
	a := outboxEntry("a", t0.Add(time.Minute))
	a.Status, a.Attempts, a.Updated = monitor.OutboxSent, 1, t0.Add(2*time.Minute)
	if err := s.OutboxSave(ctx, a); err != nil {
		t.Fatalf("OutboxSave: %v", err)
	}
	if got, want := dueIDs(t, s, t0.Add(10*time.Minute)), []string{"c|email"}; !slices.Equal(got, want) {
		t.Errorf("due at +10m = %v, want %v", got, want)
	}
	if got, want := dueIDs(t, s, t0.Add(30*time.Minute)), []string{"b|email", "c|email"}; !slices.Equal(got, want) {
		t.Errorf("due at +30m = %v, want %v", got, want)
	}
	gotB, err := s.OutboxGet(ctx, "b|email")
	if err != nil {
		t.Fatal(err)
	}
	if gotB.Attempts != 1 || gotB.LastError != b.LastError || !gotB.NextAttempt.Equal(b.NextAttempt) {
		t.Errorf("b after save = %+v", gotB)
	}
	if err := s.OutboxSave(ctx, outboxEntry("missing", t0)); !errors.Is(err, monitor.ErrNotFound) {
		t.Errorf("OutboxSave(missing) error = %v, want ErrNotFound", err)
	}

	// Prune drops done entries older than the cut-off, never pending ones.
	n, err := s.OutboxPrune(ctx, t0.Add(2*time.Minute))
	if err != nil || n != 0 {
		t.Errorf("OutboxPrune at the sent time = %d, %v; want 0", n, err)
	}
	n, err = s.OutboxPrune(ctx, t0.Add(24*time.Hour))
	if err != nil || n != 1 {
		t.Errorf("OutboxPrune = %d, %v; want 1 (the sent entry)", n, err)
	}
	if _, err := s.OutboxGet(ctx, "a|email"); !errors.Is(err, monitor.ErrNotFound) {
		t.Errorf("sent entry after prune: %v, want ErrNotFound", err)
	}
	if _, err := s.OutboxGet(ctx, "b|email"); err != nil {
		t.Errorf("pending entry after prune: %v", err)
	}
	// The same notification again after its entry was pruned is new again:
	// pruning only happens long after any replay.
	if ok, err := s.OutboxInsert(ctx, outboxEntry("a", t0)); err != nil || !ok {
		t.Errorf("insert after prune = %v, %v", ok, err)
	}
}

func TestOutboxSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logger, _ := testutil.Logger(t)
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

	s, err := Open(ctx, Config{DataDir: dir}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OutboxInsert(ctx, outboxEntry("n1", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, Config{DataDir: dir}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if got, want := dueIDs(t, s, t0), []string{"n1|email"}; !slices.Equal(got, want) {
		t.Errorf("due after reopen = %v, want %v", got, want)
	}
	if ok, err := s.OutboxInsert(ctx, outboxEntry("n1", t0)); err != nil || ok {
		t.Errorf("insert after reopen = %v, %v; want false, nil", ok, err)
	}
}

// TestOutboxPending counts the pending entries, due or not, and none of the
// sent or failed ones.
func TestOutboxPending(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	if n, err := s.OutboxPending(ctx); err != nil || n != 0 {
		t.Fatalf("OutboxPending of an empty outbox = %d, %v; want 0, nil", n, err)
	}
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c", "d"} {
		if _, err := s.OutboxInsert(ctx, outboxEntry(id, t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	later := outboxEntry("b", t0)
	later.Attempts, later.NextAttempt = 1, t0.Add(24*time.Hour) // pending, not due
	sent := outboxEntry("c", t0)
	sent.Status, sent.Attempts = monitor.OutboxSent, 1
	failed := outboxEntry("d", t0)
	failed.Status, failed.Attempts = monitor.OutboxFailed, 1
	for _, e := range []monitor.OutboxEntry{later, sent, failed} {
		if err := s.OutboxSave(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.OutboxPending(ctx)
	if err != nil || n != 2 {
		t.Errorf("OutboxPending = %d, %v; want 2 (a due, b waiting)", n, err)
	}
	if due := dueIDs(t, s, t0.Add(time.Hour)); len(due) != 1 {
		t.Errorf("due = %v, want a only: OutboxPending counts more than OutboxDue", due)
	}
}

// TestOutboxSince: the entries created at or after a time come back oldest
// first, sent and pending alike, with their payloads.
func TestOutboxSince(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 500_000_000, time.UTC)
	for i, id := range []string{"n3", "n1", "n2", "n0"} {
		e := outboxEntry(id, t0.Add(time.Duration(len(id)+i%3)*time.Minute))
		if id == "n0" {
			e.Created = t0.Add(-time.Minute)
		}
		if _, err := s.OutboxInsert(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	sent, err := s.OutboxGet(ctx, "n1|email")
	if err != nil {
		t.Fatal(err)
	}
	sent.Status = monitor.OutboxSent
	if err := s.OutboxSave(ctx, *sent); err != nil {
		t.Fatal(err)
	}
	got, err := s.OutboxSince(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID+" "+string(e.Status)+" "+string(e.Payload))
	}
	want := []string{`n3|email pending {"ID":"n3"}`, `n1|email sent {"ID":"n1"}`, `n2|email pending {"ID":"n2"}`}
	if !slices.Equal(ids, want) {
		t.Errorf("OutboxSince = %q, want %q", ids, want)
	}
}
