package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// peakSeries is a hand-made day of web1: a reading every minute from 10:00
// to 11:29. CPU peaks at 10:17 with 7 python processes (and ties at 10:50
// with 2, which must not win); memory peaks at 10:42 with 12; disk at 10:33
// with 9; load1 at 10:05 with 6. At 10:30 the CPU section failed, at 10:45
// the process count; at 10:30:30 the probe timed out.
func peakSeries(t *testing.T) []monitor.Result {
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	var rs []monitor.Result
	for m := 0; m < 90; m++ {
		r := reading{
			cpu:   20 + float64(m%10),
			mem:   50 + float64(m%7),
			disk:  60 + float64(m/10)/2,
			load1: 1 + float64(m%5)/10,
			procs: []monitor.KeywordCount{{Keyword: "python", Count: 3 + m%3}, {Keyword: "node", Count: 1}},
		}
		if m >= 60 { // 11:00 on: busier but lower peaks
			r.cpu = 30 + float64(m%10)
		}
		switch m {
		case 5:
			r.load1, r.procs[0].Count = 7.5, 6
		case 17:
			r.cpu, r.procs[0].Count = 95, 7
		case 30:
			r.cpuErr = true
		case 33:
			r.disk, r.procs[0].Count = 91, 9
		case 42:
			r.mem, r.procs[0].Count = 88, 12
		case 45:
			r.procErr = true
		case 50:
			r.cpu, r.procs[0].Count = 95, 2
		}
		rs = append(rs, snapResult("web1", t0.Add(time.Duration(m)*time.Minute), r))
	}
	rs = append(rs, failResult("web1", t0.Add(30*time.Minute+30*time.Second), monitor.KindTimeout, "probe did not answer within 10s"))
	return rs
}

func TestRollupPeaks(t *testing.T) {
	series := peakSeries(t)
	day := mustTime(t, "2024-05-01T00:00:00Z")
	h10, h11 := day.Add(10*time.Hour), day.Add(11*time.Hour)

	// The facts the series was made to show.
	type peakFact struct {
		metric string
		at     time.Time
		value  float64
		python int
	}
	facts := map[string][]peakFact{
		"hour 10": {
			{"cpu", h10.Add(17 * time.Minute), 95, 7},
			{"mem", h10.Add(42 * time.Minute), 88, 12},
			{"disk", h10.Add(33 * time.Minute), 91, 9},
			{"load1", h10.Add(5 * time.Minute), 7.5, 6},
		},
		"hour 11": {
			{"cpu", h11.Add(9 * time.Minute), 39, 3 + 69%3},
		},
		"day": {
			{"cpu", h10.Add(17 * time.Minute), 95, 7},
			{"mem", h10.Add(42 * time.Minute), 88, 12},
			{"disk", h10.Add(33 * time.Minute), 91, 9},
			{"load1", h10.Add(5 * time.Minute), 7.5, 6},
		},
	}
	want := []monitor.Rollup{
		expectRollup(series, "web1", monitor.Day, day),
		expectRollup(series, "web1", monitor.Hour, h10),
		expectRollup(series, "web1", monitor.Hour, h11),
	}

	reversed := slices.Clone(series)
	slices.Reverse(reversed)
	for _, tc := range []struct {
		name    string
		results []monitor.Result
		batch   int
	}{
		{"one at a time", series, 1},
		{"batches of 7", series, 7},
		{"batches of 60", series, 60},
		{"one batch", series, len(series)},
		{"newest first, batches of 7", reversed, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTest(t, Config{})
			for rs := tc.results; len(rs) > 0; {
				n := min(tc.batch, len(rs))
				writeAll(t, s, rs[:n])
				rs = rs[n:]
			}

			got := allRollups(t, s, day, day.Add(24*time.Hour))
			sort.Slice(got, func(i, j int) bool { return describe(got[i]) < describe(got[j]) })
			if !reflect.DeepEqual(roundSums(got), roundSums(want)) {
				t.Fatalf("rollups:\n got %+v\nwant %+v", got, want)
			}
			for _, r := range got {
				key := "day"
				if r.Period == monitor.Hour {
					key = fmt.Sprintf("hour %d", r.Start.Hour())
				}
				for _, f := range facts[key] {
					p := map[string]monitor.Peak{"cpu": r.CPU.Peak, "mem": r.Mem.Peak, "disk": r.Disk.Peak, "load1": r.Load1.Peak}[f.metric]
					python := -1
					for _, kc := range p.Procs {
						if kc.Keyword == "python" {
							python = kc.Count
						}
					}
					if !p.At.Equal(f.at) || p.Value != f.value || python != f.python || !p.ProcsKnown || p.MatchedTotal != f.python+1 {
						t.Errorf("%s %s peak = %v at %s with python=%d (total %d); want %v at %s with python=%d",
							key, f.metric, p.Value, p.At.Format("15:04"), python, p.MatchedTotal, f.value, f.at.Format("15:04"), f.python)
					}
				}
			}
		})
	}
}

// expectRollup computes a rollup from results the plain way, as the test's
// oracle: the peak is the first reading of the highest value.
func expectRollup(results []monitor.Result, server string, p monitor.Period, start time.Time) monitor.Rollup {
	want := monitor.Rollup{Server: server, Period: p, Start: start}
	sorted := slices.Clone(results)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].At.Before(sorted[j].At) })
	first := true
	for _, r := range sorted {
		if r.Server != server || !p.Start(r.At).Equal(start) {
			continue
		}
		if r.Snapshot == nil {
			want.Failed++
			continue
		}
		want.Count++
		snap := r.Snapshot
		peak := monitor.Peak{At: r.At, Sample: time.Duration(math.Round(snap.SampleSeconds*1000)) * time.Millisecond}
		if snap.Processes.Error == "" {
			peak.ProcsKnown = true
			peak.MatchedTotal = snap.Processes.MatchedTotal
			peak.Procs = []monitor.KeywordCount{}
			for _, m := range snap.Processes.Matched {
				peak.Procs = append(peak.Procs, monitor.KeywordCount{Keyword: m.Keyword, Count: m.Count})
			}
			mt := snap.Processes.MatchedTotal
			if first || mt < want.Matched.Min {
				want.Matched.Min = mt
			}
			if first || mt > want.Matched.Max {
				want.Matched.Max = mt
			}
			first = false
			want.Matched.Sum += int64(mt)
			want.Matched.N++
			for _, m := range snap.Processes.Matched {
				i := slices.IndexFunc(want.Keywords, func(k monitor.KeywordSum) bool { return k.Keyword == m.Keyword })
				if i < 0 {
					want.Keywords = append(want.Keywords, monitor.KeywordSum{Keyword: m.Keyword})
					i = len(want.Keywords) - 1
				}
				k := &want.Keywords[i]
				k.Sum += int64(m.Count)
				k.N++
				k.RSSBytes += float64(m.RSSBytes)
				k.CPUPercent += m.CPUPercent
				k.RSSN++
				if snap.Version >= 2 && m.FDsUnreadable == 0 {
					k.FDs += int64(m.FDs)
					k.FDN++
					k.FDCount += int64(m.Count)
				}
			}
		}
		observe := func(m *monitor.Metric, v float64) {
			m.Sum += v
			m.N++
			if m.N == 1 || v > m.Peak.Value {
				m.Peak = peak
				m.Peak.Value = v
			}
		}
		if snap.CPU.Error == "" {
			observe(&want.CPU, snap.CPU.Percent)
			observe(&want.Load1, snap.CPU.Load1)
		}
		if snap.Memory.Error == "" {
			observe(&want.Mem, snap.Memory.UsedPercent)
		}
		if snap.Disk.Error == "" {
			observe(&want.Disk, snap.Disk.UsedPercent)
		}
		if m := snap.Memory; m.Error == "" && m.Total > 0 {
			observe(&want.Unavailable, 100-float64(m.Available)/float64(m.Total)*100)
		}
		if sw := snap.Swap; sw != nil && sw.Error == "" {
			observe(&want.SwapPages, sw.PagesInPerSecond+sw.PagesOutPerSecond)
		}
		if pr := snap.Pressure; pr != nil {
			for _, x := range []struct {
				m   *monitor.Metric
				psi *snapshot.PSI
			}{{&want.PressureCPU, pr.CPU}, {&want.PressureMem, pr.Memory}, {&want.PressureIO, pr.IO}} {
				if x.psi != nil && x.psi.SomeStallPercent != nil {
					observe(x.m, *x.psi.SomeStallPercent)
				}
			}
		}
		if q := snap.RunQueue; q != nil && snap.CPU.Error == "" {
			observe(&want.RunQueue, float64(q.Running-1)/float64(snap.CPU.LogicalCount))
		}
		if n := snap.Network; n != nil {
			observe(&want.NetBytes, n.RxBytesPerSecond+n.TxBytesPerSecond)
		}
		if f := snap.FileDescriptors; f != nil {
			observe(&want.FDUsed, float64(f.Allocated)/float64(f.Max)*100)
		}
		if fs := snap.Filesystems; fs != nil {
			for _, m := range fs.Mounts {
				i := slices.IndexFunc(want.Filesystems, func(f monitor.FilesystemMetric) bool { return f.Path == m.Path })
				if i < 0 {
					want.Filesystems = append(want.Filesystems, monitor.FilesystemMetric{Path: m.Path})
					i = len(want.Filesystems) - 1
				}
				observe(&want.Filesystems[i].Metric, m.UsedPercent)
			}
		}
	}
	slices.SortFunc(want.Filesystems, func(a, b monitor.FilesystemMetric) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(want.Keywords, func(a, b monitor.KeywordSum) int { return strings.Compare(a.Keyword, b.Keyword) })
	return want
}

func TestRollupReadPaths(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := mustTime(t, "2024-05-01T22:00:00Z")
	var rs []monitor.Result
	for _, server := range []string{"web1", "web2", "db1"} {
		for m := 0; m < 4*60; m += 20 { // 22:00 to 01:40 the next day
			rs = append(rs, snapResult(server, t0.Add(time.Duration(m)*time.Minute), reading{cpu: float64(m % 17), mem: 30, disk: 40, load1: 1}))
		}
	}
	writeAll(t, s, rs)
	for _, q := range []monitor.RollupFilter{
		{Period: monitor.Hour, From: t0, To: t0.Add(4 * time.Hour)},
		{Period: monitor.Hour, From: t0.Add(90 * time.Minute), To: t0.Add(3 * time.Hour), Servers: []string{"web2", "db1"}},
		{Period: monitor.Day, From: t0, To: t0.Add(48 * time.Hour)},
		{Period: monitor.Day, From: t0, To: t0.Add(48 * time.Hour), Servers: []string{"web1", "nosuch"}},
	} {
		t.Run(fmt.Sprintf("%s from %s servers %v", q.Period, q.From.Format("15:04"), q.Servers), func(t *testing.T) {
			got, err := s.Rollups(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var want []monitor.Rollup
			servers := q.Servers
			if len(servers) == 0 {
				servers = []string{"db1", "web1", "web2"}
			}
			slices.Sort(servers)
			for _, server := range servers {
				for start := q.Period.Start(q.From); start.Before(q.To); start = q.Period.Next(start) {
					if r := expectRollup(rs, server, q.Period, start); r.Count > 0 {
						want = append(want, r)
					}
				}
			}
			if !reflect.DeepEqual(roundSums(got), roundSums(want)) {
				t.Errorf("Rollups:\n got %v\nwant %v", descriptions(got), descriptions(want))
			}
			// The range query, which MongoDB uses, must agree on the
			// embedded store too.
			q.From = q.Period.Start(q.From)
			docs, err := s.rollupsByRange(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != len(want) {
				t.Errorf("range query found %d rollups, want %d", len(docs), len(want))
			}
		})
	}
}

func descriptions(rs []monitor.Rollup) []string {
	var out []string
	for _, r := range rs {
		out = append(out, describe(r))
	}
	return out
}

// TestIdempotentWrite writes the same batch again, directly and through the
// spool: nothing is stored twice and no rollup counts anything twice.
func TestIdempotentWrite(t *testing.T) {
	ctx := context.Background()
	series := peakSeries(t)
	day := mustTime(t, "2024-05-01T00:00:00Z")
	s, _ := openTest(t, Config{})

	state := func() (int64, int64, []monitor.Rollup) {
		return count(t, s, snapshotsName, nil), count(t, s, attemptsName, nil), allRollups(t, s, day, day.Add(24*time.Hour))
	}
	writeAll(t, s, series)
	snaps, atts, rollups := state()
	if snaps != int64(len(series)-1) || atts != 1 {
		t.Fatalf("after the first write: %d snapshots and %d attempts, want %d and 1", snaps, atts, len(series)-1)
	}

	check := func(how string) {
		t.Helper()
		s2, a2, r2 := state()
		if s2 != snaps || a2 != atts {
			t.Errorf("%s: %d snapshots and %d attempts, want %d and %d", how, s2, a2, snaps, atts)
		}
		if !reflect.DeepEqual(r2, rollups) {
			t.Errorf("%s: rollups changed:\n got %+v\nwant %+v", how, r2, rollups)
		}
	}
	writeAll(t, s, series)
	check("write again")

	writeAll(t, s, series[10:40])
	check("write a part again")

	doubled := append(slices.Clone(series[:5]), series[:5]...)
	writeAll(t, s, doubled)
	check("write a batch holding its results twice")

	spoolWhileDown(t, filepath.Join(s.DataDir(), "spool"), series)
	if err := openSpool(t, s).Replay(ctx); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	check("replay the spool")
}

// TestInterruptedWrite covers a pass that stored raw results and then lost
// the database before its rollup upkeep: the pass repeated from the spool
// finds the results already stored, yet must fold them into the rollups,
// exactly once.
func TestInterruptedWrite(t *testing.T) {
	t.Run("rollups with marks by member", func(t *testing.T) { testInterruptedWrite(t, false) })
	// Rollups written before rolled_to_by existed are judged by rolled_to.
	t.Run("rollups without", func(t *testing.T) { testInterruptedWrite(t, true) })
}

func testInterruptedWrite(t *testing.T, legacy bool) {
	ctx := context.Background()
	series := peakSeries(t)
	day := mustTime(t, "2024-05-01T00:00:00Z")
	s, _ := openTest(t, Config{})

	half := len(series) / 2
	writeAll(t, s, series[:half])
	if legacy {
		if _, err := s.rollups.UpdateMany(ctx, bson.D{}, bson.D{{Key: "$unset", Value: bson.D{{Key: "rolled_to_by", Value: ""}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// The interrupted pass: raw inserts of the second half, no upkeep.
	var docs []any
	for _, r := range series[half:] {
		r := normalized(t, r)
		if r.Snapshot == nil {
			continue
		}
		doc, err := rawDoc(r)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, doc)
	}
	if _, err := s.snapshots.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	// Its repetition carries the whole batch again.
	writeAll(t, s, series)
	got := allRollups(t, s, day, day.Add(24*time.Hour))
	sort.Slice(got, func(i, j int) bool { return describe(got[i]) < describe(got[j]) })
	want := []monitor.Rollup{
		expectRollup(series, "web1", monitor.Day, day),
		expectRollup(series, "web1", monitor.Hour, day.Add(10*time.Hour)),
		expectRollup(series, "web1", monitor.Hour, day.Add(11*time.Hour)),
	}
	if !reflect.DeepEqual(roundSums(got), roundSums(want)) {
		t.Errorf("rollups:\n got %+v\nwant %+v", got, want)
	}
	if n := count(t, s, snapshotsName, bson.D{}); n != int64(len(series)-1) {
		t.Errorf("%d snapshots stored, want %d", n, len(series)-1)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	now := mustTime(t, "2024-12-31T12:00:00Z")
	s, _ := openTest(t, Config{Retention: 30 * 24 * time.Hour, RollupRetention: 100 * 24 * time.Hour})
	ages := []time.Duration{
		150 * 24 * time.Hour, // rollups gone too
		60 * 24 * time.Hour,  // raw gone, rollups kept
		29 * 24 * time.Hour,  // all kept
		time.Hour,
	}
	var rs []monitor.Result
	for _, age := range ages {
		rs = append(rs,
			snapResult("web1", now.Add(-age), reading{cpu: 10}),
			failResult("web1", now.Add(-age).Add(time.Second), monitor.KindAuth, "permission denied (publickey)"))
	}
	writeAll(t, s, rs)
	if err := s.Prune(ctx, now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		coll   string
		field  string
		cutoff time.Time
		want   int64
	}{
		{snapshotsName, "at", now.Add(-30 * 24 * time.Hour), 2},
		{attemptsName, "at", now.Add(-30 * 24 * time.Hour), 2},
		{rollupsName, "start", now.Add(-100 * 24 * time.Hour).Add(-24 * time.Hour), 6},
	} {
		t.Run(tc.coll, func(t *testing.T) {
			if n := count(t, s, tc.coll, nil); n != tc.want {
				t.Errorf("%d left, want %d", n, tc.want)
			}
			if n := count(t, s, tc.coll, bson.D{{Key: tc.field, Value: bson.D{{Key: "$lt", Value: tc.cutoff}}}}); n != 0 {
				t.Errorf("%d older than %s left", n, tc.cutoff)
			}
		})
	}
	// Latest still answers from what is left.
	if r, err := s.Latest(ctx, "web1"); err != nil || !r.At.Equal(now.Add(-time.Hour)) {
		t.Errorf("Latest after prune = %v, %v", r, err)
	}
}

// TestRollupsErrorsSayWhatWasRead: a failed read names the period, the
// servers and the range, on each read path, and the _id of a failed lookup.
func TestRollupsErrorsSayWhatWasRead(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	writeAll(t, s, []monitor.Result{snapResult("web1", t0, reading{cpu: 5})})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	rng := "from 2024-05-01T10:00:00Z to 2024-05-01T12:00:00Z"
	five := []string{"web1", "web2", "web3", "web4", "web5"}
	direct := s.direct

	for _, tc := range []struct {
		name    string
		path    func() // sets up the read path; undone after
		servers []string
		want    []string
	}{
		{"direct", func() {}, []string{"web1"}, []string{"read hour rollups of web1 " + rng + ": "}},
		{"direct, all servers", func() {}, nil, []string{"read hour rollups of all servers " + rng + ": list servers: "}},
		{"by _id", func() { s.direct = nil }, five,
			[]string{"read hour rollups of web1, web2, web3 and 2 more " + rng + ": rollup web", "|hour|2024-05-01T1"}},
		{"by range", func() { s.direct = nil; s.ferret.Store(false) }, []string{"web1", "web2"},
			[]string{"read hour rollups of web1, web2 " + rng + ": "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.path()
			defer func() { s.direct = direct; s.ferret.Store(true) }()
			_, err := s.Rollups(cancelled, monitor.RollupFilter{Servers: tc.servers, Period: monitor.Hour, From: t0.Add(time.Minute), To: t0.Add(2 * time.Hour)})
			if err == nil {
				t.Fatal("no error with a cancelled context")
			}
			if !errors.Is(err, monitor.ErrUnavailable) {
				t.Errorf("error %q does not wrap ErrUnavailable", err)
			}
			t.Log(err)
			if e := containsAll(err.Error(), tc.want...); e != nil {
				t.Errorf("error %q: %v", err, e)
			}
		})
	}
	// The same reads answer with a live context.
	if rs, err := s.Rollups(ctx, monitor.RollupFilter{Period: monitor.Hour, From: t0, To: t0.Add(2 * time.Hour)}); err != nil || len(rs) != 1 {
		t.Errorf("Rollups = %v, %v; want the one rollup", rs, err)
	}
}

// TestInterruptedWriteTakenOver covers a member killed between storing a
// result and folding it into the rollups, whose server another member
// probed meanwhile: the newer results of that member are folded first, and
// the killed member's spool, replayed later, must still fold its result in,
// exactly once. (A watermark shared by all members skipped it: older than
// what the rollup had taken.)
func TestInterruptedWriteTakenOver(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	at := mustTime(t, "2024-05-01T10:00:00Z")
	result := func(member string, sec int) monitor.Result {
		r := snapResult("web1", at.Add(time.Duration(sec)*time.Second), reading{cpu: float64(sec)})
		r.Member, r.Slot = member, r.At.Truncate(10*time.Second)
		return r
	}
	writeAll(t, s, []monitor.Result{result("m1", 0)})
	// m1 stores its next result and is killed before its rollup upkeep.
	doc, err := rawDoc(normalized(t, result("m1", 10)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.snapshots.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	// m2 takes web1 over; then m1's spool is replayed.
	writeAll(t, s, []monitor.Result{result("m2", 20), result("m2", 30)})
	writeAll(t, s, []monitor.Result{result("m1", 10)})
	writeAll(t, s, []monitor.Result{result("m1", 10)}) // and again: still once

	for _, ru := range allRollups(t, s, at.Add(-24*time.Hour), at.Add(24*time.Hour)) {
		if ru.Count != 4 || ru.CPU.N != 4 || ru.CPU.Sum != 60 {
			t.Errorf("%s rollup counts %d results (cpu n %d, sum %v), want 4 (4, 60)", ru.Period, ru.Count, ru.CPU.N, ru.CPU.Sum)
		}
	}
}
