package store

import (
	"math"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// FuzzPointText writes points of any figures and names (separators, escapes,
// NaN, infinities, huge and negative numbers) as texts and reads them back,
// alone and after another text as a server's points are read: what comes
// back is what was written, an infinity read as unknown.
func FuzzPointText(f *testing.F) {
	f.Add(50.0, 1.5, 60.0, int64(1<<34), 3, "python", 3.0, 1e8, "/", 40.0, 2, true)
	f.Add(math.NaN(), math.Inf(1), -0.0, int64(0), -1, "a;b%3B%", math.NaN(), math.Inf(-1), "x;%25", 1e308, 0, false)
	f.Fuzz(func(t *testing.T, cpu, load, mem float64, memTotal int64, matched int, kw string, count, rss float64, path string, used float64, cpus int, two bool) {
		at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		p := monitor.Point{At: at, CPU: cpu, Load1: load, CPUs: cpus, Mem: mem, MemAvail: 100 - mem, MemTotal: uint64(memTotal),
			Disk: used, RunQueue: load / 2, SwapPages: rss, PressureCPU: cpu, PressureMem: mem, PressureIO: count, NetBytes: rss, FDUsed: used,
			Matched: max(matched, -1), Filesystems: []monitor.FilesystemUsage{{Path: path, UsedPercent: used}}}
		if p.Matched >= 0 {
			p.Keywords = []monitor.KeywordPoint{{Keyword: kw, Count: count, RSSBytes: rss, CPUPercent: cpu, FDs: count}}
			if two {
				p.Keywords = append(p.Keywords, monitor.KeywordPoint{Keyword: path, Count: used, RSSBytes: mem, CPUPercent: load, FDs: math.NaN()})
			}
		}
		want := withoutInfinities(p)
		text := pointText(p)
		got, err := parsePointText(at, text)
		if err != nil || !samePoint(got, want) {
			t.Fatalf("%q read back as %+v, %v; want %+v", text, got, err, want)
		}
		// After another point, as a reader of a server's points reads it.
		var r pointReader
		q := p
		q.CPU, q.Keywords, q.Filesystems = 1, nil, []monitor.FilesystemUsage{{Path: kw, UsedPercent: count}}
		if _, err := r.parse(at, pointText(q)); err != nil {
			t.Fatalf("%q: %v", pointText(q), err)
		}
		got, err = r.parse(at, text)
		if err != nil || !samePoint(got, want) {
			t.Fatalf("%q after %q read back as %+v, %v; want %+v", text, pointText(q), got, err, want)
		}
	})
}

// FuzzPointTextGarbage reads any text as a point: an error or a point, never
// a panic.
func FuzzPointTextGarbage(f *testing.F) {
	f.Add("1;50;1.5;2;60;40;17179869184;40;0.5;0;0;0;0;1000000;3;3;1;python;3;100000000;3;7;1;/;40")
	f.Add("1;;;;;;;;;;;;;;;;0;0")
	f.Add("1;x;y")
	f.Fuzz(func(t *testing.T, text string) {
		at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		parsePointText(at, text)
		var r pointReader
		r.parse(at, text)
		r.parse(at, text+";1")
		r.parse(at, text)
	})
}

// withoutInfinities is p as a point text keeps it: an infinite figure is
// unknown.
func withoutInfinities(p monitor.Point) monitor.Point {
	fix := func(v *float64) {
		if math.IsInf(*v, 0) {
			*v = math.NaN()
		}
	}
	for _, v := range []*float64{&p.CPU, &p.Load1, &p.Mem, &p.MemAvail, &p.Disk, &p.RunQueue, &p.SwapPages, &p.PressureCPU,
		&p.PressureMem, &p.PressureIO, &p.NetBytes, &p.FDUsed} {
		fix(v)
	}
	p.Keywords = append([]monitor.KeywordPoint(nil), p.Keywords...)
	for i := range p.Keywords {
		k := &p.Keywords[i]
		fix(&k.Count)
		fix(&k.RSSBytes)
		fix(&k.CPUPercent)
		fix(&k.FDs)
	}
	p.Filesystems = append([]monitor.FilesystemUsage(nil), p.Filesystems...)
	for i := range p.Filesystems {
		fix(&p.Filesystems[i].UsedPercent)
	}
	return p
}
