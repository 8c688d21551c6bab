package report

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// FuzzBuild builds reports from random readings (counts that ramp, stay,
// jump or vanish; figures that are missing, pinned, or noisy), as raw
// points or hourly rollups, with days for the disk forecast, of one server
// or a fleet, and holds the capacity's answer to what any reader of it
// relies on: no panic, a JSON and an HTML that print, a range around the
// answer, never more room than the count's ceiling leaves, and a fleet
// that lists only servers with room where more fit.
func FuzzBuild(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 42, 1000} {
		f.Add(seed, uint8(40), uint8(0))
		f.Add(seed, uint8(200), uint8(4|8|16))
	}
	f.Fuzz(func(t *testing.T, seed uint64, n uint8, mode uint8) {
		rng := rand.New(rand.NewPCG(seed, uint64(mode)))
		pts := make([]Point, 0, int(n))
		procs := rng.IntN(20)
		for i := range int(n) {
			switch rng.IntN(6) {
			case 0:
				procs++
			case 1:
				if procs > 0 {
					procs--
				}
			case 2:
				procs = rng.IntN(40)
			}
			fig := func(lo, hi float64) float64 {
				switch rng.IntN(12) {
				case 0:
					return math.NaN()
				case 1:
					return hi
				case 2:
					return lo
				}
				return lo + rng.Float64()*(hi-lo)
			}
			// CPU, memory, disk and the count are always known: points
			// without them are skipped where points are made
			// (PointsFromStored, PointsFromRollups).
			known := func(lo, hi float64) float64 {
				if v := fig(lo, hi); !math.IsNaN(v) {
					return v
				}
				return lo
			}
			c := float64(procs)
			k := monitor.KeywordPoint{Keyword: "python", Count: c, RSSBytes: c * fig(0, 4e9), CPUPercent: c * fig(0, 100), FDs: c * fig(0, 1000)}
			if mode&1 != 0 && rng.IntN(4) == 0 {
				k.RSSBytes, k.CPUPercent, k.FDs = math.NaN(), math.NaN(), math.NaN()
			}
			p := Point{Procs: c, Point: monitor.Point{
				At: t0.Add(time.Duration(i) * time.Minute), CPU: known(0, 100), Load1: fig(0, 64), CPUs: 1 + rng.IntN(8),
				Mem: known(0, 100), MemAvail: fig(0, 100), MemTotal: uint64(rng.IntN(64)) << 30, Disk: known(0, 100),
				RunQueue: fig(0, 10), SwapPages: fig(0, 1000), PressureCPU: fig(0, 100), PressureMem: fig(0, 100),
				PressureIO: fig(0, 100), NetBytes: fig(0, 1e9), FDUsed: fig(0, 100), Matched: procs,
				Keywords:    []monitor.KeywordPoint{k},
				Filesystems: []monitor.FilesystemUsage{{Path: "/", UsedPercent: known(0, 100)}},
			}}
			if mode&2 != 0 && rng.IntN(5) == 0 {
				p.Keywords, p.Matched = nil, -1
			}
			pts = append(pts, p)
		}
		si := ServerInput{Name: "s", Points: pts, Attempts: int(n)}
		to := t0.Add(time.Duration(n+1) * time.Minute)
		if mode&4 != 0 {
			// The same readings as hourly rollups (six an hour), and the
			// days before as daily ones, for the peaks and the forecast.
			for h := 0; h*6 < len(pts); h++ {
				var rds []reading
				for _, p := range pts[h*6 : min(h*6+6, len(pts))] {
					rds = append(rds, reading{cpu: p.CPU, mem: p.Mem, disk: p.Disk, load: p.Load1, procs: int(p.Procs), unknown: p.Matched < 0})
				}
				si.Rollups = append(si.Rollups, hourRollup("s", t0.Add(time.Duration(h)*time.Hour), rds...))
			}
			for d := range rng.IntN(ForecastDays + 1) {
				day := hourRollup("s", t0.AddDate(0, 0, d-ForecastDays), reading{cpu: 1, mem: 1, disk: 100 * rng.Float64(), procs: 1})
				day.Period = monitor.Day
				si.Days = append(si.Days, day)
			}
			if mode&8 != 0 {
				si.Points = PointsFromRollups(si.Rollups, "python")
				to = t0.Add(time.Duration(len(si.Rollups)) * time.Hour)
			}
		}
		servers := []ServerInput{si}
		if mode&16 != 0 {
			other := si
			other.Name = "t"
			servers = append(servers, other, ServerInput{Name: "empty"})
		}
		r := Build(Input{From: t0, To: to, Generated: to, Keyword: "python", Servers: servers})
		if err := r.WriteJSON(io.Discard); err != nil {
			var paths []string
			nonFinite(reflect.ValueOf(r), "r", &paths)
			t.Fatalf("JSON: %v %v", err, paths)
		}
		if err := r.WriteHTML(io.Discard); err != nil {
			t.Fatalf("HTML: %v", err)
		}
		for _, srv := range r.Servers {
			for _, c := range srv.Capacity {
				checkCapacity(t, c)
			}
		}
		for _, f := range r.Fleet {
			more := 0
			for _, b := range f.Best {
				if b.More <= 0 {
					t.Errorf("fleet %s: %s with no room listed where more fit", f.Keyword, b.Server)
				}
				more += b.More
			}
			if more != f.More && len(f.Best) < MaxPlacements {
				t.Errorf("fleet %s: room %d, the places listed sum to %d", f.Keyword, f.More, more)
			}
		}
	})
}

// checkCapacity holds one capacity to its invariants.
func checkCapacity(t *testing.T, c Capacity) {
	t.Helper()
	if c.Headline == "" {
		t.Errorf("no headline: %+v", c)
	}
	if !c.Known {
		return
	}
	if c.More < 0 || c.Low > c.More || c.More > c.High {
		t.Errorf("%s: more %d, range %d–%d", c.Headline, c.More, c.Low, c.High)
	}
	if c.More != max(c.Total-c.Now, 0) {
		t.Errorf("%s: more %d, total %d, now %d", c.Headline, c.More, c.Total, c.Now)
	}
	for _, res := range c.Resources {
		if res.Ceiling != nil && *res.Ceiling < c.Total {
			t.Errorf("%s: total %d above %s's ceiling %d", c.Headline, c.Total, res.Name, *res.Ceiling)
		}
		if res.Saturation != nil && res.Saturation.Count < c.Total {
			t.Errorf("%s: total %d above %s's saturation at %d", c.Headline, c.Total, res.Name, res.Saturation.Count)
		}
	}
}

// nonFinite appends to out the path of every NaN or infinite number in v:
// JSON has neither, so one fails the whole report.
func nonFinite(v reflect.Value, path string, out *[]string) {
	switch v.Kind() {
	case reflect.Float64, reflect.Float32:
		if math.IsNaN(v.Float()) || math.IsInf(v.Float(), 0) {
			*out = append(*out, path)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			nonFinite(v.Elem(), path, out)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				nonFinite(v.Field(i), path+"."+v.Type().Field(i).Name, out)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			nonFinite(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			nonFinite(v.MapIndex(k), fmt.Sprintf("%s[%v]", path, k), out)
		}
	}
}
