package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/monitor"
)

// TestSlotAndMemberTravel: a scheduled result keeps its slot and member
// through the spool; an unscheduled one writes neither field.
func TestSlotAndMemberTravel(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := &fakeWriter{down: true}
	s, _ := openTest(t, dir, w, WithClock(clockwork.NewFakeClock()))
	slot := time.Date(2024, 5, 1, 10, 17, 0, 0, time.UTC)
	in := []monitor.Result{
		{Server: "web1", Slot: slot, Member: "m1", At: slot.Add(1500 * time.Millisecond), Kind: monitor.KindTimeout, Err: errors.New("x")},
		{Server: "web1", At: slot.Add(time.Minute), Kind: monitor.KindTimeout, Err: errors.New("y")},
	}
	if err := s.Write(ctx, in); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, dir)
	if len(lines) != 2 || !strings.Contains(lines[0], `"slot":"2024-05-01T10:17:00Z","member":"m1"`) ||
		strings.Contains(lines[1], "slot") || strings.Contains(lines[1], "member") {
		t.Fatalf("spool lines:\n%s", strings.Join(lines, "\n"))
	}
	w.setDown(false)
	if err := s.Replay(ctx); err != nil {
		t.Fatal(err)
	}
	if len(w.stored) != 2 || !w.stored[0].Slot.Equal(slot) || w.stored[0].Member != "m1" || !w.stored[1].Slot.IsZero() {
		t.Errorf("replayed %+v", w.stored)
	}
}

// readLines returns the lines of the spool file in dir.
func readLines(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}
