package store

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// TestDeleteRange deletes a burst of nonsense from a server's history: the
// rollups of the days it touched come out exactly as if it had never been
// stored, the other servers are untouched, and the latest snapshot and last
// failure are found again when they were deleted.
func TestDeleteRange(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Hour)
	t0 := now.Add(-30 * time.Hour) // two days, within retention
	var good, bad []monitor.Result
	for m := 0; m < 29*60; m += 7 { // ends an hour before now
		at := t0.Add(time.Duration(m) * time.Minute)
		r := snapResult("web1", at, reading{cpu: float64(m % 90), mem: 40 + float64(m%30), disk: 50, load1: 1,
			procs: []monitor.KeywordCount{{Keyword: "python", Count: m % 11}}})
		if m%97 == 0 {
			r = failResult("web1", at, monitor.KindTimeout, "probe did not answer")
		}
		good = append(good, r, snapResult("web2", at, reading{cpu: 10, mem: 10, disk: 10}))
	}
	spike := t0.Add(5*time.Hour + 30*time.Second)
	for i := 0; i < 3; i++ { // nonsense that was stored before the check existed
		bad = append(bad, snapResult("web1", spike.Add(time.Duration(i)*time.Second), reading{cpu: 100, mem: 100, disk: 100, load1: 999,
			procs: []monitor.KeywordCount{{Keyword: "python", Count: 5000}}}))
	}
	last := snapResult("web1", now.Add(-time.Minute), reading{cpu: 99, mem: 99, disk: 99})
	lastFail := failResult("web1", now.Add(-30*time.Second), monitor.KindAuth, "denied")

	dirty, _ := openTest(t, Config{})
	writeAll(t, dirty, append(append(append([]monitor.Result{}, good...), bad...), last, lastFail))
	clean, _ := openTest(t, Config{})
	writeAll(t, clean, good)

	// The spike, then the newest snapshot and failure.
	d, err := dirty.DeleteRange(ctx, "web1", spike, spike.Add(5*time.Second), now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Snapshots != 3 || d.Attempts != 0 || !d.From.Equal(monitor.Day.Start(spike)) || d.LatestReset {
		t.Errorf("deleted %+v; want the 3 spike snapshots, rollups of the spike's day rebuilt", d)
	}
	d, err = dirty.DeleteRange(ctx, "web1", now.Add(-2*time.Minute), now, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Snapshots != 1 || d.Attempts != 1 || !d.LatestReset || !d.LastFailReset {
		t.Errorf("deleted %+v; want the newest snapshot and failure, pointers reset", d)
	}

	from, to := monitor.Day.Start(t0), now.Add(24*time.Hour)
	got, want := roundSums(allRollups(t, dirty, from, to)), roundSums(allRollups(t, clean, from, to))
	if !reflect.DeepEqual(got, want) {
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("rollup %d after the delete:\n %s\nwant (never stored):\n %s", i, describe(got[i]), describe(want[i]))
				break
			}
		}
		t.Fatalf("%d rollups after the delete, %d without the nonsense", len(got), len(want))
	}
	for _, server := range []string{"web1", "web2"} {
		gl, err1 := dirty.Latest(ctx, server)
		wl, err2 := clean.Latest(ctx, server)
		if err1 != nil || err2 != nil || !gl.At.Equal(wl.At) {
			t.Errorf("Latest(%s) = %v, %v; want %v, %v", server, gl, err1, wl, err2)
		}
		gf, err1 := dirty.LastFailure(ctx, server)
		wf, err2 := clean.LastFailure(ctx, server)
		if (err1 == nil) != (err2 == nil) || err1 == nil && !gf.At.Equal(wf.At) {
			t.Errorf("LastFailure(%s) = %v, %v; want %v, %v", server, gf, err1, wf, err2)
		}
	}
}

func TestDeleteRangeRefusals(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{Retention: 48 * time.Hour})
	now := time.Now()
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     string
	}{
		{"empty range", now, now, "the range is empty"},
		{"past retention", now.Add(-72 * time.Hour), now, "past the raw retention (48h0m0s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.DeleteRange(ctx, "web1", tc.from, tc.to, now); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DeleteRange = %v; want %q", err, tc.want)
			}
		})
	}
}
