package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/crawlerfleet/collector/monitor"
)

// TestDirectReadAgreesWithFerretDB reads the same documents straight from
// the SQLite file and through FerretDB, for servers whose names need
// escaping in JSON, are prefixes of each other, or make an _id that sorts
// inside another server's range, and for rollups with failures only, failed
// sections, no process counts and several keywords.
func TestDirectReadAgreesWithFerretDB(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	if s.direct == nil {
		t.Fatal("the embedded store reads through FerretDB: its layout check failed")
	}
	t0 := mustTime(t, "2024-05-01T22:00:00Z")
	servers := []string{
		"web1", "web10",
		`<script>alert("x")</script>`,
		`back\slash "quoted" & amp`,
		"爬虫-1\u2028sep\ttab",
		"web1|hour|2024-05-01T23:00:00.000Z-x", // its _ids sort between web1's
	}
	var rs []monitor.Result
	for i, server := range servers {
		for m := 0; m < 3*60; m += 15 { // 22:00 to 00:45: two days, four hours
			at := t0.Add(time.Duration(m) * time.Minute)
			r := reading{cpu: float64(m%23 + i), mem: 30 + float64(m%7), disk: 40, load1: float64(m % 5),
				procs: []monitor.KeywordCount{{Keyword: "python", Count: m % 4}, {Keyword: "<b>node</b>", Count: 1}, {Keyword: "scrapy.crawl $HOME 50%2E", Count: 2}}}
			switch m {
			case 30:
				r.cpuErr = true
			case 45:
				r.procErr = true
			}
			rs = append(rs, snapResult(server, at, r))
		}
		// An hour with failures only.
		rs = append(rs, failResult(server, t0.Add(4*time.Hour+5*time.Minute), monitor.KindUnreachable, "dial tcp: connection refused"))
	}
	writeAll(t, s, rs)

	attemptsSeen := 0
	// Raw snapshots and attempts, over ranges whose bounds fall between
	// milliseconds (the driver cuts them to the millisecond, as a BSON date
	// holds them) and on a stored time, with and without a limit.
	for _, r := range []struct {
		from, to time.Time
		limit    int
	}{
		{t0.Add(-time.Hour), t0.Add(6 * time.Hour), 0},
		{t0.Add(15*time.Minute + time.Microsecond), t0.Add(75*time.Minute + time.Microsecond), 0},
		{t0.Add(15 * time.Minute), t0.Add(75 * time.Minute), 3},
		{t0, t0.Add(6 * time.Hour), 1},
	} {
		for _, server := range servers {
			direct, err := s.snapshotsDirect(ctx, server, r.from, r.to, r.limit)
			if err != nil {
				t.Fatalf("direct read of %q: %v", server, err)
			}
			viaFerret, err := s.snapshotsByQuery(ctx, server, r.from, r.to, r.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(direct) == 0 || !reflect.DeepEqual(direct, viaFerret) {
				t.Errorf("snapshots of %q from %s limit %d:\ndirect %v\nferret %v", server, r.from.Format(time.RFC3339Nano), r.limit, times(direct), times(viaFerret))
			}
			attDirect, err := s.attemptsDirect(ctx, server, r.from, r.to)
			if err != nil {
				t.Fatalf("direct read of %q: %v", server, err)
			}
			attFerret, err := s.attemptsByQuery(ctx, server, r.from, r.to)
			if err != nil {
				t.Fatal(err)
			}
			attemptsSeen += len(attDirect)
			if len(attDirect)+len(attFerret) > 0 && !reflect.DeepEqual(attDirect, attFerret) {
				t.Errorf("attempts of %q from %s:\ndirect %+v\nferret %+v", server, r.from.Format(time.RFC3339Nano), attDirect, attFerret)
			}
		}
	}

	if attemptsSeen == 0 {
		t.Error("no range held a failed attempt")
	}

	for _, q := range []monitor.RollupFilter{
		{Period: monitor.Hour, From: t0.Add(-time.Hour), To: t0.Add(6 * time.Hour)},
		{Period: monitor.Hour, From: t0.Add(time.Hour), To: t0.Add(2 * time.Hour)},
		{Period: monitor.Day, From: t0.Add(-24 * time.Hour), To: t0.Add(48 * time.Hour)},
	} {
		for _, server := range servers {
			direct, err := s.rollupRange(ctx, server, q.Period, q.Period.Start(q.From), q.To)
			if err != nil {
				t.Fatalf("direct read of %q: %v", server, err)
			}
			q := q
			q.Servers = []string{server}
			q.From = q.Period.Start(q.From)
			docs, err := s.rollupsByRange(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var viaFerret []monitor.Rollup
			for _, d := range docs {
				viaFerret = append(viaFerret, d.rollup())
			}
			slices.SortFunc(viaFerret, func(a, b monitor.Rollup) int { return a.Start.Compare(b.Start) })
			if len(direct) == 0 {
				t.Errorf("%s %q from %s: the direct read found nothing", q.Period, server, q.From.Format(time.RFC3339))
			}
			for _, ru := range direct {
				if k, ok := ru.Keyword("scrapy.crawl $HOME 50%2E"); ru.Count > 0 && (!ok || k.N == 0 || k.Sum != 2*k.N) {
					t.Errorf("%s %q at %s: keyword sums %+v, want 2 a snapshot", q.Period, server, ru.Start.Format(time.RFC3339), ru.Keywords)
				}
			}
			if !reflect.DeepEqual(direct, viaFerret) {
				t.Errorf("%s %q from %s:\ndirect %+v\nferret %+v", q.Period, server, q.From.Format(time.RFC3339), direct, viaFerret)
			}
		}
	}
}

func times(rs []monitor.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.At.Format(time.RFC3339Nano))
	}
	return out
}

// TestDirectReadRefusesBrokenRollup stores a rollup without its server and
// start by hand: the read fails and names it rather than reporting an
// empty hour.
func TestDirectReadRefusesBrokenRollup(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	id := rollupID("web1", monitor.Hour, t0)
	if _, err := s.rollups.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "period", Value: "hour"}, {Key: "count", Value: 3}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Rollups(ctx, monitor.RollupFilter{Servers: []string{"web1"}, Period: monitor.Hour, From: t0, To: t0.Add(time.Hour)})
	if err == nil || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "no server or start") {
		t.Errorf("Rollups over a broken rollup: %v; want an error naming %s", err, id)
	}
}

func TestKeywordFieldRoundTrip(t *testing.T) {
	for _, k := range []string{"python", "scrapy.crawl", "$HOME", "50%", "50%2E", "%24", "a.b.c$%", "爬虫"} {
		f := keywordField(k)
		if strings.ContainsAny(f, ".$") {
			t.Errorf("keywordField(%q) = %q: still holds '.' or '$'", k, f)
		}
		if got := keywordSums(map[string]keywordDoc{f: {Sum: 1, N: 1}}); len(got) != 1 || got[0].Keyword != k {
			t.Errorf("keyword %q stored as %q reads back as %+v", k, f, got)
		}
	}
}

// TestDecodeStoredErrors: a document as Scan hands it over that does not
// decode is named in the error. (A stored form without its schema is
// embedded's to refuse: see its TestScanRefusesOtherLayouts.)
func TestDecodeStoredErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"not json", `{"_id":`, "stored document"},
		{"wrong type", `{"_id":"a|hour|x","server":"a","count":"many"}`, "cannot unmarshal"},
		{"date not in milliseconds", `{"_id":"a|hour|x","server":"a","start":"yesterday"}`, `stored date "yesterday": not milliseconds`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d rollupDoc
			err := decodeStored([]byte(tc.in), &d)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("decodeStored(%s) = %v; want an error with %q", tc.in, err, tc.err)
			}
		})
	}
}

// TestPointsAndVersion2Rollups writes snapshots of schema version 2 and
// reads their points (straight from the file and through FerretDB, where a
// snapshot stored before points were kept gives the point of its snapshot)
// and their rollups, whose figures of version 2 keep their peaks with the
// process counts at them; a rollup written before those figures were kept
// still decodes.
func TestPointsAndVersion2Rollups(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	if s.direct == nil {
		t.Fatal("the embedded store reads through FerretDB: its layout check failed")
	}
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	var rs []monitor.Result
	for m := 0; m < 90; m += 5 {
		rs = append(rs, snapResult("web1", t0.Add(time.Duration(m)*time.Minute), reading{
			cpu: float64(m % 37), mem: 30 + float64(m%11), disk: 40, load1: 1, v2: m != 25,
			procs: []monitor.KeywordCount{{Keyword: "python", Count: 2 + m%7}, {Keyword: "node.js", Count: 1}}}))
	}
	writeAll(t, s, rs)
	// A snapshot stored before points were kept: it has none.
	old := normalized(t, snapResult("web1", t0.Add(-5*time.Minute), reading{cpu: 12, mem: 33, disk: 40, v2: true,
		procs: []monitor.KeywordCount{{Keyword: "python", Count: 3}}}))
	doc, err := rawDoc(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.snapshots.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	// A rollup written before the figures of version 2 were kept.
	if _, err := s.rollups.InsertOne(ctx, bson.D{
		{Key: "_id", Value: rollupID("web1", monitor.Hour, t0.Add(-time.Hour))}, {Key: "server", Value: "web1"},
		{Key: "period", Value: "hour"}, {Key: "start", Value: t0.Add(-time.Hour)}, {Key: "count", Value: int64(1)},
		{Key: "cpu", Value: bson.D{{Key: "sum", Value: 5.0}, {Key: "n", Value: int64(1)}}},
		{Key: "keywords", Value: bson.D{{Key: "python", Value: bson.D{{Key: "sum", Value: int64(4)}, {Key: "n", Value: int64(1)}}}}},
	}); err != nil {
		t.Fatal(err)
	}

	want := make([]monitor.Point, 0, len(rs)+1)
	for _, r := range append([]monitor.Result{old}, rs...) {
		r = normalized(t, r)
		want = append(want, monitor.PointOf(r.At, r.Snapshot))
	}
	direct, err := s.Points(ctx, "web1", t0.Add(-time.Hour), t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	scan := s.direct
	s.direct = nil
	viaFerret, err := s.Points(ctx, "web1", t0.Add(-time.Hour), t0.Add(3*time.Hour))
	s.direct = scan
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]monitor.Point{"direct": direct, "through FerretDB": viaFerret} {
		if len(got) != len(want) {
			t.Fatalf("%s: %d points, want %d", name, len(got), len(want))
		}
		for i := range want {
			if !samePoint(got[i], want[i]) {
				t.Errorf("%s: point %d:\n got %+v\nwant %+v", name, i, got[i], want[i])
			}
		}
	}
	if p := direct[1]; p.RunQueue != 0 || p.SwapPages != 45 || p.FDUsed != 3 || len(p.Filesystems) != 2 || p.Keywords[0].FDs != 14 {
		t.Errorf("first point %+v: want run queue 0, swap 45 pages/s, fd 3 %%, 2 file systems, 14 python descriptors", p)
	}
	if p := direct[6]; monitor.Known(p.SwapPages) || monitor.Known(p.PressureCPU) || p.Filesystems != nil {
		t.Errorf("point of a snapshot without the sections of version 2 %+v: want the figures of version 2 unknown", p)
	}

	got, err := s.Rollups(ctx, monitor.RollupFilter{Servers: []string{"web1"}, Period: monitor.Hour, From: t0.Add(-time.Hour), To: t0.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].CPU.N != 1 || got[0].RunQueue.N != 0 || got[0].Filesystems != nil {
		t.Fatalf("rollups %v: want the old one first, with no figures of version 2", descriptions(got))
	}
	// The points of each ten minutes are in one bucket: 10:00 to 11:25.
	if n := count(t, s, pointsName, nil); n != 9 {
		t.Errorf("%d buckets of points stored, want 9", n)
	}
	for _, ru := range got[1:] {
		// The old snapshot document went in without rollup upkeep.
		if w := expectRollup(rs, "web1", monitor.Hour, ru.Start); !reflect.DeepEqual(roundSums([]monitor.Rollup{ru}), roundSums([]monitor.Rollup{w})) {
			t.Errorf("rollup at %s:\n got %+v\nwant %+v", ru.Start.Format(time.RFC3339), ru, w)
		}
	}
	// 10:35 has CPU 35, the highest pressure and traffic, with 2+35%7 = 2
	// python processes (the run queue is as high from 10:30 on).
	h := got[1]
	for name, m := range map[string]monitor.Metric{"cpu pressure": h.PressureCPU, "network": h.NetBytes} {
		if !m.Peak.At.Equal(t0.Add(35*time.Minute)) || len(m.Peak.Procs) != 2 || m.Peak.Procs[0].Count != 2 {
			t.Errorf("%s peak %+v: want at 10:35 with 2 python processes", name, m.Peak)
		}
	}
	if len(h.Filesystems) != 2 || h.Filesystems[1].Path != "/var/lib.data" || h.Filesystems[1].N != 11 {
		t.Errorf("file systems %+v: want / and /var/lib.data, 11 readings each", h.Filesystems)
	}
}

// samePoint compares points, NaN equal to NaN.
func samePoint(a, b monitor.Point) bool {
	same := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
	if !a.At.Equal(b.At) || a.CPUs != b.CPUs || a.MemTotal != b.MemTotal || a.Matched != b.Matched ||
		len(a.Keywords) != len(b.Keywords) || !slices.EqualFunc(a.Filesystems, b.Filesystems, func(x, y monitor.FilesystemUsage) bool {
		return x.Path == y.Path && same(x.UsedPercent, y.UsedPercent)
	}) {
		return false
	}
	for _, p := range [][2]float64{{a.CPU, b.CPU}, {a.Load1, b.Load1}, {a.Mem, b.Mem}, {a.MemAvail, b.MemAvail}, {a.Disk, b.Disk},
		{a.RunQueue, b.RunQueue}, {a.SwapPages, b.SwapPages}, {a.PressureCPU, b.PressureCPU}, {a.PressureMem, b.PressureMem},
		{a.PressureIO, b.PressureIO}, {a.NetBytes, b.NetBytes}, {a.FDUsed, b.FDUsed}} {
		if !same(p[0], p[1]) {
			return false
		}
	}
	for i := range a.Keywords {
		x, y := a.Keywords[i], b.Keywords[i]
		if x.Keyword != y.Keyword || !same(x.Count, y.Count) || !same(x.RSSBytes, y.RSSBytes) || !same(x.CPUPercent, y.CPUPercent) || !same(x.FDs, y.FDs) {
			return false
		}
	}
	return true
}

func TestPointTextRoundTrip(t *testing.T) {
	at := mustTime(t, "2024-05-01T10:00:00Z")
	nan := math.NaN()
	for _, p := range []monitor.Point{
		monitor.PointOf(at, makeSnapshot(at, "h", reading{cpu: 12.5, mem: 33.25, disk: 40, load1: 1.75, v2: true,
			procs: []monitor.KeywordCount{{Keyword: "py;th%on 100%3B", Count: 3}, {Keyword: "", Count: 0}}})),
		monitor.PointOf(at, makeSnapshot(at, "h", reading{cpu: 1, mem: 2, procErr: true, cpuErr: true})),
		{At: at, CPU: 1e-300, Load1: nan, Mem: 100, MemAvail: nan, Disk: nan, RunQueue: 0.1 + 0.2, SwapPages: nan,
			PressureCPU: nan, PressureMem: nan, PressureIO: nan, NetBytes: 1.5e12, FDUsed: nan, Matched: 0,
			Keywords: []monitor.KeywordPoint{}, MemTotal: math.MaxUint64},
	} {
		text := pointText(p)
		got, err := parsePointText(at, text)
		if err != nil {
			t.Fatalf("parse %q: %v", text, err)
		}
		if !samePoint(got, p) {
			t.Errorf("%q:\n got %+v\nwant %+v", text, got, p)
		}
	}
	for _, bad := range []string{"", "2;1", "1;x", "1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;0;0;extra", "1;1;1"} {
		if _, err := parsePointText(at, bad); !errors.Is(err, errPointText) {
			t.Errorf("parse %q: %v, want an error", bad, err)
		}
	}
}

// TestPointReaderReusesOnlyTheSame: a pointReader reading a server's texts
// one after the other reads each as parsePointText reads it alone, whatever
// fields repeat, move (a keyword more or less shifts the file systems) or
// turn into names, empty fields or errors between texts.
func TestPointReaderReusesOnlyTheSame(t *testing.T) {
	at := mustTime(t, "2024-05-01T10:00:00Z")
	kw := func(k string, n float64) monitor.KeywordPoint {
		return monitor.KeywordPoint{Keyword: k, Count: n, RSSBytes: n * 1e8, CPUPercent: 3, FDs: 7}
	}
	fs := []monitor.FilesystemUsage{{Path: "/", UsedPercent: 40}, {Path: "3", UsedPercent: 3}}
	base := monitor.Point{At: at, CPU: 50, Load1: 1.5, CPUs: 2, Mem: 60, MemAvail: 40, MemTotal: 1 << 34, Disk: 40,
		RunQueue: 0.5, SwapPages: 0, PressureCPU: 0, PressureMem: 0, PressureIO: 0, NetBytes: 1e6, FDUsed: 3,
		Matched: 3, Keywords: []monitor.KeywordPoint{kw("python", 3)}, Filesystems: fs}
	texts := []string{pointText(base)}
	p := base
	p.CPU, p.Keywords = 51, []monitor.KeywordPoint{kw("python", 3), kw("3", 3)} // a name where a number was
	texts = append(texts, pointText(p))
	p.Keywords, p.Disk, p.Load1 = nil, math.NaN(), 3 // fields move back
	texts = append(texts, pointText(p))
	texts = append(texts, "1;x;y", pointText(base)) // a bad text between two good ones
	p = base
	p.Matched, p.Keywords = -1, nil
	texts = append(texts, pointText(p), pointText(p), pointText(base))
	var r pointReader
	for i, text := range texts {
		want, wantErr := parsePointText(at, text)
		got, err := r.parse(at, text)
		if (err == nil) != (wantErr == nil) || !samePoint(got, want) {
			t.Errorf("text %d %q:\n got %+v, %v\nwant %+v, %v", i, text, got, err, want, wantErr)
		}
	}
}

// TestPeakText: peak texts sort as $max must compare peaks (the highest
// value, then the earliest), read back what was written, and a rollup of
// the hour of the upgrade, with an old peak document beside a peak text,
// keeps the greater.
func TestPeakText(t *testing.T) {
	at := mustTime(t, "2024-05-01T10:00:00Z")
	mk := func(v float64, min int) *peakDoc {
		a := at.Add(time.Duration(min) * time.Minute)
		return &peakDoc{Value: v, Order: -a.UnixMilli(), At: docTime(a), ProcsKnown: true, MatchedTotal: 3,
			Procs: []procDoc{{Keyword: "py;th%on", Count: 2}, {Keyword: "node", Count: 1}}}
	}
	ordered := []*peakDoc{mk(-1e9, 0), mk(-2.5, 3), mk(-0.0, 9), mk(0, 5), mk(1e-300, 1), mk(42, 30), mk(42, 20), mk(42, 0), mk(1e300, 59)}
	for i := 1; i < len(ordered); i++ {
		if a, b := peakText(ordered[i-1]), peakText(ordered[i]); a >= b {
			t.Errorf("peak %v at %s sorts at or after %v at %s:\n%s\n%s", ordered[i-1].Value, time.Time(ordered[i-1].At).Format("15:04"),
				ordered[i].Value, time.Time(ordered[i].At).Format("15:04"), a, b)
		}
	}
	seen := []*peakDoc{
		{Value: 7, Order: -at.UnixMilli(), At: docTime(at)},
		{Value: 8, Order: -at.UnixMilli(), At: docTime(at), SampleMS: 1000},
		{Value: 9, Order: -at.UnixMilli(), At: docTime(at), SampleMS: 250, Watched: true, ProcsKnown: true, MatchedTotal: 2,
			Procs: []procDoc{{Keyword: "s1w|", Count: 2}}},
	}
	for _, p := range append(ordered, seen...) {
		got, err := parsePeakText(peakText(p))
		want := metricDoc{Peak: p}.metric().Peak
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("peak %q read as %+v, %v; want %+v", peakText(p), got, err, want)
		}
	}
	old, text := mk(50, 10), mk(50, 5)
	if got := (metricDoc{Peak: old, PK: peakText(text)}).metric().Peak; !got.At.Equal(time.Time(text.At)) {
		t.Errorf("old peak at 10:10 beside a text at 10:05 of the same value: got %s, want the earlier", got.At)
	}
	if got := (metricDoc{Peak: mk(60, 50), PK: peakText(text)}).metric().Peak; got.Value != 60 {
		t.Errorf("old peak 60 beside a text of 50: got %v", got.Value)
	}
	for _, bad := range []string{"", "12|3", strings.Repeat("Z", 32) + "|1|-", strings.Repeat("0", 32) + "|x", strings.Repeat("0", 32) + "|1|2;a", strings.Repeat("0", 32) + "|sx|1", strings.Repeat("0", 32) + "|s-5w|1"} {
		if _, err := parsePeakText(bad); !errors.Is(err, errPeakText) {
			t.Errorf("parse %q: %v, want an error", bad, err)
		}
	}
}

// TestDecodeBucket: the buckets' own reader agrees with encoding/json,
// and hands anything unusual to it.
func TestDecodeBucket(t *testing.T) {
	for _, doc := range []string{
		`{"_id":"web1|2024-05-01T10:10:00.000Z","server":"web1","start":1714558200000,"pts":{"0000000":"1;2;3","0060000":"1;;"}}`,
		` { "_id" : "a" , "server" : "a" , "start" : -5 , "pts" : { } } `,
		`{"_id":"a","server":"a\"b","start":1,"pts":{"0000000":"x\\y"}}`,
		`{"_id":"a","server":"a","start":1,"pts":{"0000000":"x"},"extra":true}`,
		`{"_id":"a","server":"a","start":1.5e3,"pts":{}}`,
	} {
		var got, want pointBucket
		err := decodeBucket([]byte(doc), &got)
		werr := decodeStored([]byte(doc), &want)
		gotPts, wantPts := got.sorted(), want.sorted()
		got.Points, got.entries, want.Points = nil, nil, nil
		if (err == nil) != (werr == nil) || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotPts, wantPts) {
			t.Errorf("%s:\n got %+v %v, %v\nwant %+v %v, %v", doc, got, gotPts, err, want, wantPts, werr)
		}
	}
}

// TestDecodeRollup: rollups decode as encoding/json decodes them, errors
// included: a rollup as written today (testdata/rollup.json), one written
// before peaks were kept as text, escapes, unknown and null fields, and
// broken ones.
func TestDecodeRollup(t *testing.T) {
	today, err := os.ReadFile(filepath.Join("testdata", "rollup.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{
		string(today),
		`{"_id":"web1|hour|2024-05-01T10:00:00.000Z","server":"web1","period":"hour","start":1714557600000,"count":3,"failed":1,` +
			`"cpu":{"peak":{"value":42.5,"order":-1714557900000,"at":1714557900000,"procs_known":true,"matched_total":3,` +
			`"procs":[{"keyword":"python","count":3}]},"sum":80,"n":3},"matched":{"min":1,"max":3,"sum":6,"n":3},` +
			`"keywords":{"python":{"sum":6,"n":3}}}`,
		`{"_id":"a","server":"w\u00e9b \"1\"","period":"day","start":0,"fs":{"/var%2Elib":{"pk":"x","sum":1e300,"n":1}},"keywords":{"py%25":{"sum":-1,"n":0}}}`,
		`{"_id":"a","server":"a","start":1,"extra":{"deep":[1,{"x":null}]},"cpu":null,"keywords":null,"fs":{}}`,
		`{"_id":"a","server":"a","start":1,"count":1.5}`,
		`{"_id":"a","server":"a","start":1,"cpu":{"sum":"x"}}`,
		`{"_id":"a","server":"a","start":1,"cpu":{"sum":1}`,
		`[]`,
	} {
		var got, want rollupDoc
		err := decodeRollup([]byte(doc), &got)
		werr := decodeStored([]byte(doc), &want)
		if (err == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%.80s:\n got %+v, %v\nwant %+v, %v", doc, got, err, want, werr)
		}
		if err != nil && err.Error() != werr.Error() {
			t.Errorf("%.80s: error %q, want encoding/json's %q", doc, err, werr)
		}
	}
}

// TestLatestDirect: the embedded store reads a server's newest snapshot and
// failure from its file as the driver reads them, names with quotes and
// separators included, and says "not found" alike for a server it does not
// know, one without a failure, and a newest snapshot pruned away.
func TestLatestDirect(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	if s.direct == nil {
		t.Fatal("the embedded store reads through FerretDB: its layout check failed")
	}
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	odd := `web1"x|" \ <&>` // its _id falls in web1's range
	writeAll(t, s, []monitor.Result{
		snapResult("web1", t0, reading{cpu: 10, mem: 20, disk: 30}),
		failResult("web1", t0.Add(time.Minute), monitor.KindTimeout, "probe timed out"),
		snapResult("web1", t0.Add(2*time.Minute), reading{cpu: 11, mem: 21, disk: 31}),
		snapResult(odd, t0.Add(time.Minute), reading{cpu: 12, mem: 22, disk: 32}),
		snapResult("web1x", t0.Add(3*time.Minute), reading{cpu: 13, mem: 23, disk: 33}),
	})
	if _, err := s.snapshots.DeleteOne(ctx, bson.D{{Key: "_id", Value: resultID("web1x", t0.Add(3*time.Minute))}}); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		latest, failure string
	}
	read := func() map[string]answer {
		out := map[string]answer{}
		for _, server := range []string{"web1", odd, "web1x", "web", "nowhere"} {
			var a answer
			if r, err := s.Latest(ctx, server); err != nil {
				a.latest = fmt.Sprintf("error, not found %v", errors.Is(err, monitor.ErrNotFound))
			} else {
				a.latest = fmt.Sprintf("%s cpu %v", r.At.Format(time.TimeOnly), r.Snapshot.CPU.Percent)
			}
			if r, err := s.LastFailure(ctx, server); err != nil {
				a.failure = fmt.Sprintf("error, not found %v", errors.Is(err, monitor.ErrNotFound))
			} else {
				a.failure = fmt.Sprintf("%s %s %s", r.At.Format(time.TimeOnly), r.Kind, r.Error())
			}
			// Newest is both, from one read of the server's document.
			latest, failure, err := s.Newest(ctx, server)
			if err != nil {
				t.Fatalf("Newest(%q): %v", server, err)
			}
			b := answer{"error, not found true", "error, not found true"}
			if latest != nil {
				b.latest = fmt.Sprintf("%s cpu %v", latest.At.Format(time.TimeOnly), latest.Snapshot.CPU.Percent)
			}
			if failure != nil {
				b.failure = fmt.Sprintf("%s %s %s", failure.At.Format(time.TimeOnly), failure.Kind, failure.Error())
			}
			if b != a {
				t.Errorf("Newest(%q) = %v; Latest and LastFailure say %v", server, b, a)
			}
			out[server] = a
		}
		return out
	}
	direct := read()
	scan := s.direct
	s.direct = nil
	viaDriver := read()
	s.direct = scan
	if !maps.Equal(direct, viaDriver) {
		t.Errorf("direct reads:\n %v\nthrough the driver:\n %v", direct, viaDriver)
	}
	want := answer{"10:02:00 cpu 11", "10:01:00 timeout probe timed out"}
	if direct["web1"] != want || direct[odd].latest != "10:01:00 cpu 12" || direct["web1x"].latest != "error, not found true" ||
		direct["nowhere"].latest != "error, not found true" || direct[odd].failure != "error, not found true" {
		t.Errorf("direct reads %v; want web1 %v, %q's snapshot, web1x's pruned, nothing of others", direct, want, odd)
	}
}
