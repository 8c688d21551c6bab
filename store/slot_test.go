package store

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/crawlerfleet/collector/monitor"
)

// TestSlotKeepsOneResult: two collectors probe one server in one slot, at
// slightly different times; the store keeps the first result stored, its
// rollups count the slot once, and the server's latest snapshot is that
// result. The same result written again (a replay) changes nothing either.
func TestSlotKeepsOneResult(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	slot := mustTime(t, "2024-05-01T10:00:00Z")
	a := snapResult("web1", slot.Add(1200*time.Millisecond), reading{cpu: 10, mem: 20, disk: 30, load1: 1})
	a.Slot, a.Member = slot, "a"
	b := snapResult("web1", slot.Add(1700*time.Millisecond), reading{cpu: 90, mem: 20, disk: 30, load1: 1})
	b.Slot, b.Member = slot, "b"
	// A failure of a third collector in the same slot, and the next slot.
	c := failResult("web1", slot.Add(1900*time.Millisecond), monitor.KindTimeout, "slow")
	c.Slot, c.Member = slot, "c"
	d := failResult("web1", slot.Add(2100*time.Millisecond), monitor.KindTimeout, "slow")
	d.Slot, d.Member = slot, "d"

	writeAll(t, s, []monitor.Result{a})
	writeAll(t, s, []monitor.Result{b, c})
	writeAll(t, s, []monitor.Result{d, a, c})

	if n := count(t, s, snapshotsName, nil); n != 1 {
		t.Errorf("%d snapshots stored for one slot, want 1", n)
	}
	if n := count(t, s, attemptsName, nil); n != 1 {
		t.Errorf("%d failed attempts stored for one slot, want 1", n)
	}
	var doc bson.M
	if err := s.snapshots.FindOne(ctx, bson.D{}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["_id"] != "web1|2024-05-01T10:00:00.000Z" || doc["member"] != "a" {
		t.Errorf("stored snapshot %v, want _id web1|slot and member a", doc)
	}
	rs := allRollups(t, s, slot.Add(-time.Hour), slot.Add(time.Hour))
	for _, r := range rs {
		if r.Count != 1 || r.Failed != 1 || r.CPU.Peak.Value != 10 {
			t.Errorf("%s: count %d failed %d cpu peak %v; want the slot's first snapshot and first failure once", describe(r), r.Count, r.Failed, r.CPU.Peak.Value)
		}
	}
	if len(rs) != 2 {
		t.Errorf("%d rollups, want an hour and a day", len(rs))
	}
	latest, err := s.Latest(ctx, "web1")
	if err != nil || !latest.At.Equal(a.At.Truncate(time.Millisecond)) || !latest.Slot.Equal(slot) || latest.Member != "a" {
		t.Errorf("Latest = %+v, %v; want a's result", latest, err)
	}
	last, err := s.LastFailure(ctx, "web1")
	if err != nil || !last.At.Equal(c.At) {
		t.Errorf("LastFailure at %v, %v; want c's at %v", last.At, err, c.At)
	}
}

// TestSlotRangeReads: a scheduled result is read by its at, not its slot,
// through the embedded store's direct reads and the driver's query alike;
// unscheduled results and documents stored before slots existed read as
// before.
func TestSlotRangeReads(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	if s.direct == nil {
		t.Fatal("the embedded store does not read directly")
	}
	slot := mustTime(t, "2024-05-01T10:00:00Z")
	var in []monitor.Result
	for i := range 5 {
		r := snapResult("web1", slot.Add(time.Duration(i)*time.Minute+50*time.Second), reading{cpu: float64(i)})
		r.Slot = slot.Add(time.Duration(i) * time.Minute)
		in = append(in, r)
		f := failResult("web1", r.At.Add(time.Second), monitor.KindAuth, "no")
		f.Slot = r.Slot.Add(30 * time.Second)
		in = append(in, f)
	}
	late := snapResult("web1", slot.Add(40*time.Minute), reading{cpu: 7})
	late.Slot = slot // ended past MaxSlotLag: kept under its at
	old := snapResult("web1", slot.Add(5*time.Minute+10*time.Second), reading{cpu: 8})
	writeAll(t, s, append(in, late, old))
	if n := count(t, s, snapshotsName, bson.D{{Key: "_id", Value: "web1|" + timeID(late.At)}}); n != 1 {
		t.Errorf("the late result is not kept under its at")
	}

	from, to := slot.Add(55*time.Second), slot.Add(3*time.Minute+50*time.Second) // slots 1 and 2 end inside
	for _, read := range []struct {
		name  string
		snaps func(limit int) ([]monitor.Result, error)
		fails func() ([]monitor.Result, error)
	}{
		{"direct", func(limit int) ([]monitor.Result, error) { return s.snapshotsDirect(ctx, "web1", from, to, limit) },
			func() ([]monitor.Result, error) { return s.attemptsDirect(ctx, "web1", from, to) }},
		{"query", func(limit int) ([]monitor.Result, error) { return s.snapshotsByQuery(ctx, "web1", from, to, limit) },
			func() ([]monitor.Result, error) { return s.attemptsByQuery(ctx, "web1", from, to) }},
	} {
		t.Run(read.name, func(t *testing.T) {
			got, err := read.snaps(0)
			if err != nil || len(got) != 2 || got[0].Snapshot.CPU.Percent != 1 || got[1].Snapshot.CPU.Percent != 2 || !got[0].Slot.Equal(slot.Add(time.Minute)) {
				t.Errorf("snapshots = %v, %v; want those of slots 1 and 2", cpus(got), err)
			}
			got, err = read.snaps(1)
			if err != nil || len(got) != 1 || got[0].Snapshot.CPU.Percent != 2 {
				t.Errorf("newest snapshot = %v, %v; want slot 2's", cpus(got), err)
			}
			fails, err := read.fails()
			if err != nil || len(fails) != 2 {
				t.Errorf("attempts = %d, %v; want 2", len(fails), err)
			}
		})
	}
	all, err := s.Snapshots(ctx, "web1", slot, slot.Add(time.Hour), 0)
	if err != nil || len(all) != 7 || all[6].Snapshot.CPU.Percent != 7 || all[5].Snapshot.CPU.Percent != 8 {
		t.Errorf("all snapshots = %v, %v; want 7 in the order they ended", cpus(all), err)
	}
}

// cpus returns the CPU percent of each result's snapshot, for messages.
func cpus(rs []monitor.Result) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, r.Snapshot.CPU.Percent)
	}
	return out
}
