package store

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/crawlerfleet/collector/monitor"
)

// sealedFleet writes three days (from 22:00 the day before t0's day) of
// results of two servers, one every 20 minutes, with failed sections,
// failed attempts, version-2 readings and keywords that hold the sealed
// text's separators, and returns the day t0 starts.
func sealedFleet(t *testing.T, s *Store) (day0 time.Time, servers []string) {
	t.Helper()
	day0 = mustTime(t, "2024-05-02T00:00:00Z")
	servers = []string{"web1", "web;1|%3B"}
	var rs []monitor.Result
	for i, server := range servers {
		for m := -120; m < 3*24*60; m += 20 {
			at := day0.Add(time.Duration(m)*time.Minute + time.Duration(i*7)*time.Second)
			r := reading{cpu: float64((m/20)%23 + i), mem: 30 + float64((m/20)%7), disk: 40, load1: float64((m / 20) % 5), v2: m%60 != 40,
				procs: []monitor.KeywordCount{{Keyword: "python", Count: (m / 20) % 4}, {Keyword: "a;b|c%25d", Count: 2}}}
			switch (m / 20) % 11 {
			case 3:
				r.cpuErr = true
			case 5:
				r.procErr = true
			}
			rs = append(rs, snapResult(server, at, r))
			if (m/20)%17 == 0 {
				rs = append(rs, failResult(server, at.Add(time.Second), monitor.KindUnreachable, "dial tcp: connection refused"))
			}
		}
	}
	writeAll(t, s, rs)
	return day0, servers
}

// TestSealTextRoundTrip: the hourly rollups the store writes, and rollups
// with every corner of a peak, read back from their sealed text exactly.
func TestSealTextRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	day0, servers := sealedFleet(t, s)
	for _, server := range servers {
		for day := day0; day.Before(day0.AddDate(0, 0, 3)); day = day.AddDate(0, 0, 1) {
			rs, err := s.hourlyRollups(ctx, server, day, day.AddDate(0, 0, 1))
			if err != nil || len(rs) != 24 {
				t.Fatalf("hourly rollups of %q on %s: %d, %v", server, day.Format(time.DateOnly), len(rs), err)
			}
			text, err := sealText(day, rs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseSealText(server, day, text)
			if err != nil {
				t.Fatalf("%q on %s: %v\n%s", server, day.Format(time.DateOnly), err, text)
			}
			if !reflect.DeepEqual(got, rs) {
				t.Errorf("%q on %s: read back\n%+v\nwant\n%+v", server, day.Format(time.DateOnly), got, rs)
			}
		}
	}

	day := mustTime(t, "2025-01-01T00:00:00Z")
	odd := monitor.Rollup{Server: "x", Period: monitor.Hour, Start: day.Add(23 * time.Hour), Count: 2, Failed: 1,
		CPU: monitor.Metric{Sum: 1e-300, N: 2, Peak: monitor.Peak{Value: -0.5, At: day.Add(22 * time.Hour), // before its hour
			Watched: true, Sample: 61 * time.Second, ProcsKnown: true, MatchedTotal: 0, Procs: []monitor.KeywordCount{}}},
		Mem:     monitor.Metric{Sum: 5, N: 1}, // sums without a peak
		Disk:    monitor.Metric{Peak: monitor.Peak{Value: 7, At: time.UnixMilli(0).UTC()}},
		Load1:   monitor.Metric{Peak: monitor.Peak{Value: 1.5, At: day.Add(23*time.Hour + 59*time.Minute), ProcsKnown: true, MatchedTotal: 3, Procs: []monitor.KeywordCount{{Keyword: "p|;%", Count: 3}}}},
		FDUsed:  monitor.Metric{Sum: 1e21, N: 1 << 40, Peak: monitor.Peak{Value: 1e21, At: day.Add(23 * time.Hour)}},
		Matched: monitor.Matched{Min: 3, Max: 9, Sum: 1 << 50, N: 4},
		Keywords: []monitor.KeywordSum{{Keyword: "", Sum: 1}, {Keyword: "%7C", Sum: 2, N: 3, RSSBytes: 1.5e9, CPUPercent: 0.1,
			RSSN: 3, FDs: 9, FDN: 2, FDCount: 4}},
		Filesystems: []monitor.FilesystemMetric{{Path: "/a;b", Metric: monitor.Metric{Sum: 3, N: 1,
			Peak: monitor.Peak{Value: 3, At: day.Add(23 * time.Hour), ProcsKnown: true, Procs: []monitor.KeywordCount{}}}}},
	}
	first := monitor.Rollup{Server: "x", Period: monitor.Hour, Start: day}
	text, err := sealText(day, []monitor.Rollup{first, odd})
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseSealText("x", day, text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if want := []monitor.Rollup{first, odd}; !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n%+v\nwant\n%+v\ntext %s", got, want, text)
	}
	if got, err := parseSealText("x", day, sealVersion); err != nil || len(got) != 0 {
		t.Errorf("an empty day: %v, %v", got, err)
	}
	if _, err := sealText(day, []monitor.Rollup{{Period: monitor.Hour, Start: day.Add(24 * time.Hour)}}); err == nil {
		t.Error("sealed an hour of the next day")
	}
}

// TestSealTextRefusesGarbage: a text that is not what sealText writes is an
// error that says what is wrong, never a rollup with figures made up.
func TestSealTextRefusesGarbage(t *testing.T) {
	day := mustTime(t, "2025-01-01T00:00:00Z")
	good, err := sealText(day, []monitor.Rollup{{Period: monitor.Hour, Start: day, Count: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ text, want string }{
		{"r2|0;1", "version"},
		{"", "version"},
		{good + "x", "field"},
		{strings.Replace(good, "r1|0;", "r1|24;", 1), "hour 24"},
		{good + ";1", "too many"},
		{good[:len(good)-4], "too few"},
		{"r1|0;1;0;0;1;0;0;", "peak reading"},
		{"r1|0;1;0;99999999", "entries"},
		{good + "|" + good[3:], "after"},
	} {
		_, err := parseSealText("x", day, tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseSealText(%.40q) = %v, want an error saying %q", tc.text, err, tc.want)
		}
	}
}

// TestSealedDays goes through the real store: days are sealed once they
// ended, long reads take them (and agree with the hourly rollups), a late
// result makes its day be read from the hourly rollups again until it is
// sealed anew, and an unreadable sealed day is never taken.
func TestSealedDays(t *testing.T) {
	ctx := context.Background()
	s, logs := openTest(t, Config{})
	day0, servers := sealedFleet(t, s)
	end := day0.AddDate(0, 0, 3)
	ranges := []monitor.RollupFilter{
		{Period: monitor.Hour, From: day0.Add(-2 * time.Hour), To: end},
		{Period: monitor.Hour, From: day0.Add(5*time.Hour + 30*time.Minute), To: end.Add(-3 * time.Hour)},
		{Period: monitor.Hour, From: day0.Add(time.Hour), To: day0.Add(26 * time.Hour), Servers: servers[1:]},
	}
	check := func(what string) {
		t.Helper()
		for _, f := range ranges {
			got, err := s.Rollups(ctx, f)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			var want []monitor.Rollup
			for _, server := range []string{"web1", "web;1|%3B"} {
				if len(f.Servers) > 0 && f.Servers[0] != server {
					continue
				}
				rs, err := s.hourlyRollups(ctx, server, f.Period.Start(f.From), f.To)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, rs...)
			}
			if len(want) == 0 || !reflect.DeepEqual(got, want) {
				t.Errorf("%s: rollups from %s to %s of %v: got %d\n%v\nwant %d\n%v", what, f.From.Format(time.RFC3339), f.To.Format(time.RFC3339),
					f.Servers, len(got), descriptions(got), len(want), descriptions(want))
			}
		}
	}
	check("before sealing")

	// The third day ended less than sealAfter ago: the day before day0
	// (from 22:00) and the two after it, for each server.
	n, err := s.SealDays(ctx, end.Add(sealAfter/2))
	if err != nil || n != 6 {
		t.Fatalf("SealDays = %d, %v; want 6", n, err)
	}
	if n, err := s.SealDays(ctx, end.Add(sealAfter/2)); err != nil || n != 0 {
		t.Fatalf("SealDays again = %d, %v; want 0 (nothing changed)", n, err)
	}
	if n, err := s.SealDays(ctx, end.Add(sealAfter)); err != nil || n != 2 {
		t.Fatalf("SealDays an hour later = %d, %v; want the third days", n, err)
	}
	check("sealed")

	// The reads take the sealed days: with a day's hourly rollups gone
	// (and its daily one kept) they still answer with them.
	var ids bson.A
	for h := day0; h.Before(day0.AddDate(0, 0, 1)); h = h.Add(time.Hour) {
		ids = append(ids, rollupID("web1", monitor.Hour, h))
	}
	gone, err := s.rollups.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil || gone.DeletedCount != 24 {
		t.Fatalf("delete the hourly rollups: %v, %v", gone, err)
	}
	rs, err := s.Rollups(ctx, monitor.RollupFilter{Servers: []string{"web1"}, From: day0, To: end})
	if err != nil || len(rs) != 72 || !rs[0].Start.Equal(day0) || rs[0].Count == 0 {
		t.Fatalf("with the hourly rollups of a sealed day gone: %d rollups, %v", len(rs), err)
	}
	// A short range reads the hourly rollups themselves.
	if rs, err := s.Rollups(ctx, monitor.RollupFilter{Servers: []string{"web1"}, From: day0, To: day0.Add(24 * time.Hour)}); err != nil || len(rs) != 0 {
		t.Errorf("one day: %d rollups, %v; want the hourly rollups, none", len(rs), err)
	}
	// DeleteRange rebuilds them from the raw results, and drops the
	// sealed day.
	if _, err := s.DeleteRange(ctx, "web1", day0, day0.Add(time.Minute), end); err != nil {
		t.Fatalf("DeleteRange: %v", err)
	}
	if days, err := s.sealedDays(ctx, "web1", day0, day0.AddDate(0, 0, 1), false); err != nil || len(days) != 0 {
		t.Errorf("DeleteRange left the sealed day: %+v, %v", days, err)
	}
	check("after DeleteRange rebuilt the first day")
	if n, err := s.SealDays(ctx, end.Add(sealAfter)); err != nil || n != 1 {
		t.Fatalf("SealDays after DeleteRange = %d, %v; want the rebuilt day", n, err)
	}

	// A late result for a sealed day: the reads see it at once.
	writeAll(t, s, []monitor.Result{snapResult("web;1|%3B", day0.Add(36*time.Hour+10*time.Minute), reading{cpu: 99.5, mem: 1, v2: true,
		procs: []monitor.KeywordCount{{Keyword: "python", Count: 40}}})})
	check("after a late result")
	late, err := s.Rollups(ctx, monitor.RollupFilter{Servers: []string{"web;1|%3B"}, From: day0, To: end})
	if err != nil {
		t.Fatal(err)
	}
	if ru := late[36]; ru.CPU.Peak.Value != 99.5 || ru.CPU.Peak.MatchedTotal != 40 {
		t.Errorf("the late result's hour: CPU peak %+v, want 99.5 with 40 processes", ru.CPU.Peak)
	}
	if n, err := s.SealDays(ctx, end.Add(sealAfter)); err != nil || n != 1 {
		t.Fatalf("SealDays after the late result = %d, %v; want that day", n, err)
	}
	check("sealed anew")

	// An unreadable sealed day whose total still matches is not taken.
	if _, err := s.sealed.UpdateOne(ctx, bson.D{{Key: "_id", Value: sealedID("web1", day0.AddDate(0, 0, 1))}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "text", Value: "r1|0;garbage"}}}}); err != nil {
		t.Fatal(err)
	}
	check("with a broken sealed day")
	if !strings.Contains(logs.String(), "sealed day unreadable") {
		t.Errorf("the broken sealed day was not logged:\n%s", logs)
	}

	if n, err := s.SealDays(ctx, end.Add(sealAfter)); err != nil || n != 0 {
		t.Fatalf("SealDays with the broken day = %d, %v; want 0 (its total matches)", n, err)
	}
	// A sealed day of another version is sealed anew.
	if _, err := s.sealed.UpdateOne(ctx, bson.D{{Key: "_id", Value: sealedID("web1", day0.AddDate(0, 0, 1))}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: "r0"}}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.SealDays(ctx, end.Add(sealAfter)); err != nil || n != 1 {
		t.Fatalf("SealDays with a day of another version = %d, %v; want 1", n, err)
	}
	check("sealed in this version")

	// Through the driver, as with MongoDB: the same answers.
	s.direct = nil
	s.ferret.Store(false)
	check("through the driver")
	writeAll(t, s, []monitor.Result{failResult("web1", day0.Add(47*time.Hour), monitor.KindTimeout, "probe timed out")})
	check("through the driver, after a late failure")
	if n, err := s.SealDays(ctx, end.Add(sealAfter)); err != nil || n != 1 {
		t.Fatalf("SealDays through the driver = %d, %v; want the day of the late failure", n, err)
	}
	check("through the driver, sealed anew")
}

// TestPruneSealedDays: a sealed day goes with its first hour's rollup.
func TestPruneSealedDays(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{RollupRetention: 10 * 24 * time.Hour})
	day0, _ := sealedFleet(t, s)
	end := day0.AddDate(0, 0, 3)
	if n, err := s.SealDays(ctx, end.Add(sealAfter)); err != nil || n != 8 {
		t.Fatalf("SealDays = %d, %v; want 8", n, err)
	}
	if err := s.Prune(ctx, day0.AddDate(0, 0, 11).Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, server := range []string{"web1", "web;1|%3B"} {
		days, err := s.sealedDays(ctx, server, day0.AddDate(0, 0, -1), end, false)
		if err != nil || len(days) != 1 || !days[0].Start.utc().Equal(day0.AddDate(0, 0, 2)) {
			t.Errorf("%q after the prune: %+v, %v; want the last day alone", server, days, err)
		}
	}
	// A day past the rollup retention is not sealed again.
	if n, err := s.SealDays(ctx, day0.AddDate(0, 0, 11).Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("SealDays after the prune = %d, %v", n, err)
	}
}

// TestSealDaysLooksBackTwoMonths: days that ended longer ago than
// sealLookback are left to their hourly rollups.
func TestSealDaysLooksBackTwoMonths(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	day0, _ := sealedFleet(t, s)
	end := day0.AddDate(0, 0, 3)
	if n, err := s.SealDays(ctx, end.Add(sealLookback+24*time.Hour+sealAfter)); err != nil || n != 0 {
		t.Errorf("SealDays long after = %d, %v; want 0", n, err)
	}
	if n, err := s.SealDays(ctx, end.Add(sealLookback-24*time.Hour+sealAfter)); err != nil || n != 2 {
		t.Errorf("SealDays as the last day nears the lookback = %d, %v; want its 2", n, err)
	}
}
