package report

import (
	"bytes"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// TestLinearGolden checks every figure on data with a known exact relation:
// memory = 10 + 2.5·procs and CPU = 5 + 1.5·procs, procs 4..20.
func TestLinearGolden(t *testing.T) {
	const hours = 48
	const memTotal = 16 << 30
	rs := linearRollups("crawl", hours)
	_, s := buildOne(ServerInput{Name: "crawl", Rollups: rs, Points: PointsFromRollups(rs, ""), Attempts: hours, MemTotalBytes: memTotal}, hours, "")

	// procs is 20 first at hour 10 (5·10 mod 17 = 16), again at 27 and 44.
	peakAt := t0.Add(10 * time.Hour)
	for _, c := range []struct {
		name  string
		p     *Peak
		value float64
		at    time.Time
		procs int
	}{
		{"cpu", s.Peaks.CPU, 35, peakAt, 20},
		{"mem", s.Peaks.Mem, 60, peakAt, 20},
		{"load1", s.Peaks.Load1, 5, peakAt, 20},
		// disk is 30 + hour mod 24: 53 at hours 23 and 47, the earlier wins.
		{"disk", s.Peaks.Disk, 53, t0.Add(23 * time.Hour), linearProcs(23)},
	} {
		t.Run("peak "+c.name, func(t *testing.T) {
			if c.p == nil {
				t.Fatal("no peak")
			}
			wantNear(t, "value", c.p.Value, c.value)
			if !c.p.At.Equal(c.at) {
				t.Errorf("at = %v, want %v", c.p.At, c.at)
			}
			wantProcs(t, c.name, c.p.Procs, c.procs)
		})
	}

	var sumProcs float64
	for i := range hours {
		sumProcs += float64(linearProcs(i))
	}
	meanProcs := sumProcs / hours
	wantNear(t, "mean mem", *s.Means.Mem, round6(10+2.5*meanProcs))
	wantNear(t, "mean cpu", *s.Means.CPU, round6(5+1.5*meanProcs))
	if s.Matched == nil || s.Matched.Min != 4 || s.Matched.Max != 20 || s.Matched.N != hours {
		t.Errorf("matched = %+v, want 4..20 over %d", s.Matched, hours)
	}
	wantNear(t, "worst", s.Worst, 60)

	for _, c := range []struct {
		name                string
		e                   Estimate
		slope, intercept    float64
		headroom, threshold int
	}{
		// (90 − 60) / 2.5 = 12; (90 − 35) / 1.5 = 36.7 → 36.
		{"mem", s.Mem, 2.5, 10, 12, 90},
		{"cpu", s.CPU, 1.5, 5, 36, 90},
	} {
		t.Run("fit "+c.name, func(t *testing.T) {
			e := c.e
			if e.Status != StatusOK {
				t.Fatalf("status = %s, want ok", e.Status)
			}
			if e.N != hours || e.DistinctProcs != 17 {
				t.Errorf("n = %d, distinct = %d, want %d, 17", e.N, e.DistinctProcs, hours)
			}
			if e.Slope != c.slope || e.Intercept != c.intercept || e.R2 != 1 {
				t.Errorf("fit = %v + %v·procs, R² %v; want %v + %v·procs, R² 1", e.Intercept, e.Slope, e.R2, c.intercept, c.slope)
			}
			if e.Headroom != c.headroom || e.Threshold != float64(c.threshold) {
				t.Errorf("headroom = %d to %v, want %d to %d", e.Headroom, e.Threshold, c.headroom, c.threshold)
			}
		})
	}
	if want := uint64(math.Round(0.025 * memTotal)); s.Mem.PerProcBytes != want {
		t.Errorf("memory per process = %d bytes, want %d", s.Mem.PerProcBytes, want)
	}
	if s.CPU.PerProcBytes != 0 {
		t.Errorf("CPU per process bytes = %d, want 0", s.CPU.PerProcBytes)
	}
	// The memory peak of 60 % came with 20 processes: (90 − 60) / 2.5 =
	// 12 more, 32 in all; the latest hour ran linearProcs(47) = 18.
	if len(s.Capacity) != 1 {
		t.Fatalf("capacity for %d keywords, want python alone", len(s.Capacity))
	}
	c := s.Capacity[0]
	if !c.Known || c.Keyword != "python" || c.Total != 32 || c.Limit != "memory" || c.Now != 18 || c.More != 14 || c.Saturated {
		t.Errorf("capacity = %+v, want 32 in all, limited by memory, 18 now, 14 more", c)
	}
	if c.Headline != "+14 python, limited by memory" {
		t.Errorf("headline = %q", c.Headline)
	}
	h := s.Health
	if h.Attempts != hours || h.Snapshots != hours || h.SuccessRate == nil || *h.SuccessRate != 100 || h.GapCount != 0 || len(h.Failures) != 0 {
		t.Errorf("health = %+v, want %d of %d, no gaps or failures", h, hours, hours)
	}
	if s.NoData || s.Failing {
		t.Errorf("no data = %v, failing = %v; want neither", s.NoData, s.Failing)
	}
}

func TestEstimates(t *testing.T) {
	linear := linearRollups("s", 48)
	// mem = 10 + 0.1·procs ± 5, the ± alternating at each count so that the
	// noise is orthogonal to procs: slope 0.1 exactly and
	// R² = 0.1²·Sxx / (0.1²·Sxx + 34·25) with Sxx = 2·Σ(p − 12)² = 816.
	noisy := make([]monitor.Rollup, 34)
	for i := range noisy {
		p := 4 + i/2
		noise := 5.0
		if i%2 == 1 {
			noise = -5
		}
		noisy[i] = hourRollup("s", t0.Add(time.Duration(i)*time.Hour), reading{
			cpu: 5 + 1.5*float64(p), mem: 10 + 0.1*float64(p) + noise, disk: 30, load: 1, procs: p})
	}
	twoCounts := mapRollups(linear[:20], func(i int, r *monitor.Rollup) {
		p := 4 + 5*(i%2)
		*r = hourRollup("s", r.Start, reading{cpu: 5 + 1.5*float64(p), mem: 10 + 2.5*float64(p), procs: p})
	})
	falling := mapRollups(linear, func(i int, r *monitor.Rollup) {
		p := linearProcs(i)
		*r = hourRollup("s", r.Start, reading{cpu: 5 + 1.5*float64(p), mem: 80 - 2*float64(p), procs: p})
	})
	flat := mapRollups(linear, func(i int, r *monitor.Rollup) {
		p := linearProcs(i)
		*r = hourRollup("s", r.Start, reading{cpu: 5 + 1.5*float64(p), mem: 50, procs: p})
	})

	for _, c := range []struct {
		name       string
		rollups    []monitor.Rollup
		thresholds Thresholds
		mem, cpu   Status
		known      bool
		total      int
		binding    string
		check      func(t *testing.T, s Server)
	}{
		{name: "exact", rollups: linear, mem: StatusOK, cpu: StatusOK, known: true, total: 32, binding: "memory"},
		{name: "thin: 8 points", rollups: linear[:8], mem: StatusThin, cpu: StatusThin},
		{name: "thin: 2 process counts", rollups: twoCounts, mem: StatusThin, cpu: StatusThin,
			check: func(t *testing.T, s Server) {
				if s.Mem.N != 20 || s.Mem.DistinctProcs != 2 {
					t.Errorf("n = %d, distinct = %d, want 20, 2", s.Mem.N, s.Mem.DistinctProcs)
				}
			}},
		{name: "poor memory fit: CPU binds", rollups: noisy, mem: StatusPoorFit, cpu: StatusOK, known: true,
			// CPU peak 5 + 1.5·20 = 35: (90 − 35) / 1.5 → 36.
			total: 56, binding: "cpu",
			check: func(t *testing.T, s Server) {
				wantNear(t, "slope", s.Mem.Slope, 0.1)
				wantNear(t, "intercept", s.Mem.Intercept, 10)
				wantNear(t, "R²", s.Mem.R2, round6(0.01*816/(0.01*816+34*25)))
				if s.Mem.Headroom != 0 || s.Mem.From != nil {
					t.Errorf("poor fit has headroom %d from %v", s.Mem.Headroom, s.Mem.From)
				}
			}},
		{name: "negative slope", rollups: falling, mem: StatusNotPositive, cpu: StatusOK, known: true, total: 56, binding: "cpu",
			check: func(t *testing.T, s Server) { wantNear(t, "slope", s.Mem.Slope, -2) }},
		{name: "flat", rollups: flat, mem: StatusFlat, cpu: StatusOK, known: true, total: 56, binding: "cpu",
			check: func(t *testing.T, s Server) { wantNear(t, "slope", s.Mem.Slope, 0) }},
		{name: "no data", rollups: nil, mem: StatusNoData, cpu: StatusNoData},
		// (70 − 60) / 2.5 = 4; (50 − 35) / 1.5 = 10.
		{name: "own thresholds", rollups: linear, thresholds: Thresholds{Mem: 70, CPU: 50}, mem: StatusOK, cpu: StatusOK, known: true, total: 24, binding: "memory"},
		// (90 − 60) / 2.5 = 12 against (44 − 35) / 1.5 = 6.
		{name: "CPU binds", rollups: linear, thresholds: Thresholds{CPU: 44}, mem: StatusOK, cpu: StatusOK, known: true, total: 26, binding: "cpu"},
		{name: "peak over threshold", rollups: linear, thresholds: Thresholds{Mem: 50}, mem: StatusOK, cpu: StatusOK, known: true, total: 20, binding: "memory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Build(Input{From: t0, To: t0.Add(48 * time.Hour), Thresholds: c.thresholds,
				Servers: []ServerInput{{Name: "s", Rollups: c.rollups, Points: PointsFromRollups(c.rollups, "")}}})
			s := r.Servers[0]
			if s.Mem.Status != c.mem || s.CPU.Status != c.cpu {
				t.Errorf("status mem %s, cpu %s; want %s, %s (mem %+v)", s.Mem.Status, s.CPU.Status, c.mem, c.cpu, s.Mem)
			}
			var got Capacity
			if len(s.Capacity) > 0 {
				got = s.Capacity[0]
			}
			if got.Known != c.known || c.known && (got.Total != c.total || got.Limit != c.binding) {
				t.Errorf("capacity = %+v, want known %v, %d in all, %q binds", got, c.known, c.total, c.binding)
			}
			if len(s.Capacity) > 0 && !c.known && !strings.HasPrefix(got.Headline, "no estimate") {
				t.Errorf("headline = %q, want it to say there is no estimate", got.Headline)
			}
			if c.known && !strings.Contains(got.Headline, "limited by "+map[string]string{"memory": "memory", "cpu": "CPU"}[c.binding]) &&
				!strings.Contains(got.Headline, "reaches its") {
				t.Errorf("headline = %q, want it to name the limit %s", got.Headline, c.binding)
			}
			_ = r
			if c.check != nil {
				c.check(t, s)
			}
		})
	}
}

func TestPeakProcs(t *testing.T) {
	kw := []monitor.KeywordCount{{Keyword: "python", Count: 5}, {Keyword: "scrapy", Count: 3}}
	// The memory peak (70) has 7 matched processes: 5 python, 3 scrapy.
	known := []monitor.Rollup{hourRollup("s", t0,
		reading{cpu: 10, mem: 40, procs: 2, kw: []monitor.KeywordCount{{Keyword: "python", Count: 1}, {Keyword: "scrapy", Count: 1}}},
		reading{cpu: 90, mem: 70, procs: 7, kw: kw},
		reading{cpu: 20, mem: 70, procs: 9, kw: kw}, // equal memory, later: not the peak
	)}
	unknown := []monitor.Rollup{hourRollup("s", t0, reading{cpu: 10, mem: 40, procs: 2}, reading{cpu: 90, mem: 70, unknown: true})}
	for _, c := range []struct {
		name    string
		rollups []monitor.Rollup
		keyword string
		want    int // -1: unknown
	}{
		{"all matched", known, "", 7},
		{"keyword", known, "scrapy", 3},
		{"other keyword", known, "python", 5},
		{"keyword not counted then", known, "node", -1},
		{"process section failed", unknown, "", -1},
		{"process section failed, keyword", unknown, "python", -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, s := buildOne(ServerInput{Name: "s", Rollups: c.rollups}, 1, c.keyword)
			p := s.Peaks.Mem
			if p == nil {
				t.Fatal("no memory peak")
			}
			if want := t0.Add(10 * time.Minute); !p.At.Equal(want) || p.Value != 70 {
				t.Errorf("peak %v at %v, want 70 at %v", p.Value, p.At, want)
			}
			if c.want < 0 {
				if p.Procs != nil {
					t.Errorf("procs = %d, want unknown", *p.Procs)
				}
				return
			}
			wantProcs(t, "memory peak", p.Procs, c.want)
		})
	}
}

func TestMeansWeighted(t *testing.T) {
	rs := []monitor.Rollup{
		hourRollup("s", t0, reading{mem: 10, cpu: 1, procs: 1}, reading{mem: 20, cpu: 2, procs: 3}),
		hourRollup("s", t0.Add(time.Hour), reading{mem: 60, cpu: 9, procs: 8}),
	}
	_, s := buildOne(ServerInput{Name: "s", Rollups: rs}, 2, "")
	// By reading, not by hour: (10 + 20 + 60) / 3, not (15 + 60) / 2.
	wantNear(t, "mean mem", *s.Means.Mem, 30)
	wantNear(t, "mean cpu", *s.Means.CPU, 4)
	if m := s.Matched; m.Min != 1 || m.Max != 8 || m.N != 3 || !near(m.Mean, 4) {
		t.Errorf("matched = %+v, want 1..8, mean 4 over 3", m)
	}
}

func TestGaps(t *testing.T) {
	// present returns 24 hourly rollups from t0 without the hours listed;
	// hours in failed have only failed attempts.
	present := func(missing, failed []int) []monitor.Rollup {
		var rs []monitor.Rollup
		for h := range 24 {
			if slices.Contains(missing, h) {
				continue
			}
			r := hourRollup("s", t0.Add(time.Duration(h)*time.Hour), reading{mem: 1, procs: 1})
			if slices.Contains(failed, h) {
				r = monitor.Rollup{Server: "s", Period: monitor.Hour, Start: r.Start, Failed: 3}
			}
			rs = append(rs, r)
		}
		return rs
	}
	hour := func(h float64) time.Time { return t0.Add(time.Duration(h * float64(time.Hour))) }
	for _, c := range []struct {
		name     string
		rollups  []monitor.Rollup
		from, to time.Time
		want     []Gap
	}{
		{"none", present(nil, nil), hour(0), hour(24), nil},
		{"three hours", present([]int{5, 6, 7}, nil), hour(0), hour(24), []Gap{{hour(5), hour(8), 3}}},
		{"two hours are not a gap", present([]int{5, 6}, nil), hour(0), hour(24), nil},
		{"failed attempts only", present([]int{5}, []int{6, 7}), hour(0), hour(24), []Gap{{hour(5), hour(8), 3}}},
		{"clipped at the start", present([]int{0, 1, 2}, nil), hour(0.5), hour(24), []Gap{{hour(0.5), hour(3), 2.5}}},
		{"clipped at the end", present([]int{21, 22, 23}, nil), hour(0), hour(23.5), []Gap{{hour(21), hour(23.5), 2.5}}},
		{"open end", present(nil, nil), hour(0), hour(28), []Gap{{hour(24), hour(28), 4}}},
		{"no data at all", nil, hour(0), hour(24), []Gap{{hour(0), hour(24), 24}}},
		{"empty range", present(nil, nil), hour(3), hour(3), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := gaps(c.rollups, c.from, c.to, time.UTC)
			if !slices.EqualFunc(got, c.want, func(a, b Gap) bool { return a.From.Equal(b.From) && a.To.Equal(b.To) && a.Hours == b.Hours }) {
				t.Errorf("gaps = %v, want %v", got, c.want)
			}
		})
	}

	t.Run("largest listed", func(t *testing.T) {
		// Seven gaps of 3..9 hours, smallest first, 1 hour apart.
		var rs []monitor.Rollup
		h := 0
		for g := 3; g <= 9; g++ {
			rs = append(rs, hourRollup("s", t0.Add(time.Duration(h)*time.Hour), reading{mem: 1}))
			h += 1 + g
		}
		rs = append(rs, hourRollup("s", t0.Add(time.Duration(h)*time.Hour), reading{mem: 1}))
		_, s := buildOne(ServerInput{Name: "s", Rollups: rs}, h+1, "")
		hs := s.Health
		if hs.GapCount != 7 || hs.GapHours != 42 || len(hs.Gaps) != MaxGapsListed {
			t.Fatalf("gaps: %d listed of %d, %v h; want %d of 7, 42 h", len(hs.Gaps), hs.GapCount, hs.GapHours, MaxGapsListed)
		}
		for i, g := range hs.Gaps {
			if want := float64(9 - i); g.Hours != want {
				t.Errorf("gap %d = %v h, want %v", i, g.Hours, want)
			}
		}
	})
}

func TestHealth(t *testing.T) {
	for _, c := range []struct {
		name     string
		in       ServerInput
		noData   bool
		failing  bool
		success  float64 // -1: none
		failures []FailureCount
	}{
		{"healthy", ServerInput{Rollups: linearRollups("s", 20), Attempts: 20, Failures: map[string]int{}}, false, false, 100, nil},
		{"some failures", ServerInput{Rollups: linearRollups("s", 16), Attempts: 20, Failures: map[string]int{"timeout": 1, "unreachable": 3}},
			false, false, 80, []FailureCount{{"unreachable", 3}, {"timeout", 1}}},
		{"failing now", ServerInput{Rollups: linearRollups("s", 16), Attempts: 20, Failures: map[string]int{"auth": 4}, LastError: "ssh: unable to authenticate"},
			false, true, 80, []FailureCount{{"auth", 4}}},
		{"no data, failing", ServerInput{Attempts: 12, Failures: map[string]int{"unreachable": 12}, LastError: "dial tcp: connection refused"},
			true, true, 0, []FailureCount{{"unreachable", 12}}},
		{"no data, no attempts", ServerInput{}, true, false, -1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.in.Name = "s"
			c.in.Points = PointsFromRollups(c.in.Rollups, "")
			_, s := buildOne(c.in, 20, "")
			if s.NoData != c.noData || s.Failing != c.failing {
				t.Errorf("no data %v, failing %v; want %v, %v", s.NoData, s.Failing, c.noData, c.failing)
			}
			h := s.Health
			switch {
			case c.success < 0 && h.SuccessRate != nil:
				t.Errorf("success rate = %v, want none", *h.SuccessRate)
			case c.success >= 0 && (h.SuccessRate == nil || *h.SuccessRate != c.success):
				t.Errorf("success rate = %v, want %v", h.SuccessRate, c.success)
			}
			if !slices.Equal(h.Failures, c.failures) && len(h.Failures)+len(c.failures) > 0 {
				t.Errorf("failures = %v, want %v", h.Failures, c.failures)
			}
			if h.LastError != c.in.LastError {
				t.Errorf("last error = %q, want %q", h.LastError, c.in.LastError)
			}
			if c.noData && (s.Peaks.Mem != nil || len(s.Capacity) != 0 || s.Mem.Status != StatusNoData || s.Means.Mem != nil || s.Matched != nil) {
				t.Errorf("a server without data has figures: %+v", s)
			}
		})
	}
}

func TestFleetOrder(t *testing.T) {
	one := func(name string, cpu, mem, disk float64, lastErr string) ServerInput {
		rs := []monitor.Rollup{hourRollup(name, t0, reading{cpu: cpu, mem: mem, disk: disk, procs: 1})}
		return ServerInput{Name: name, Rollups: rs, LastError: lastErr}
	}
	in := Input{From: t0, To: t0.Add(time.Hour), Servers: []ServerInput{
		one("a", 50, 20, 10, ""),
		{Name: "dead", LastError: "refused"},
		one("b", 10, 20, 93, ""),
		one("c", 10, 70, 10, "timeout"),
		one("aa", 10, 50, 10, ""), // ties with a: by name
		{Name: "new"},
	}}
	r := Build(in)
	var got []string
	for _, s := range r.Servers {
		got = append(got, s.Name)
	}
	if want := []string{"b", "c", "a", "aa", "dead", "new"}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}

	// Added concurrently in another order, the same report.
	b := NewBuilder(in)
	var wg sync.WaitGroup
	for _, si := range slices.Backward(in.Servers) {
		wg.Go(func() { b.Add(si) })
	}
	wg.Wait()
	var want, concurrent bytes.Buffer
	if err := r.WriteJSON(&want); err != nil {
		t.Fatal(err)
	}
	if err := b.Report().WriteJSON(&concurrent); err != nil {
		t.Fatal(err)
	}
	if concurrent.String() != want.String() {
		t.Errorf("built concurrently:\n%s\nwant\n%s", &concurrent, &want)
	}
}

func TestThresholdDefaults(t *testing.T) {
	got := Thresholds{CPU: 80, Disk: math.NaN()}.withDefaults()
	if want := (Thresholds{CPU: 80, Mem: DefaultThreshold, Disk: DefaultThreshold}); got != want {
		t.Errorf("thresholds = %+v, want %+v", got, want)
	}
}

func TestPointsFromRollups(t *testing.T) {
	kw := func(python, scrapy int) []monitor.KeywordCount {
		return []monitor.KeywordCount{{Keyword: "python", Count: python}, {Keyword: "scrapy", Count: scrapy}}
	}
	full := hourRollup("s", t0, reading{cpu: 10, mem: 20, disk: 30, procs: 4, kw: kw(3, 1)}, reading{cpu: 20, mem: 40, disk: 30, procs: 6, kw: kw(5, 2)})
	noProcs := hourRollup("s", t0.Add(time.Hour), reading{cpu: 10, mem: 20, unknown: true})
	failedOnly := monitor.Rollup{Server: "s", Period: monitor.Hour, Start: t0.Add(2 * time.Hour), Failed: 2}
	pythonOnly := hourRollup("s", t0.Add(3*time.Hour), reading{cpu: 30, mem: 50, disk: 30, procs: 2, kw: kw(2, 0)[:1]})
	rs := []monitor.Rollup{full, noProcs, failedOnly, pythonOnly}
	for _, c := range []struct {
		keyword string
		want    []briefPoint
	}{
		{"", []briefPoint{{At: t0.Add(30 * time.Minute), CPU: 15, Mem: 30, Disk: 30, Procs: 5}, {At: t0.Add(3*time.Hour + 30*time.Minute), CPU: 30, Mem: 50, Disk: 30, Procs: 2}}},
		{"python", []briefPoint{{At: t0.Add(30 * time.Minute), CPU: 15, Mem: 30, Disk: 30, Procs: 4}, {At: t0.Add(3*time.Hour + 30*time.Minute), CPU: 30, Mem: 50, Disk: 30, Procs: 2}}},
		{"scrapy", []briefPoint{{At: t0.Add(30 * time.Minute), CPU: 15, Mem: 30, Disk: 30, Procs: 1.5}}},
		{"node", []briefPoint{}},
	} {
		t.Run("keyword "+c.keyword, func(t *testing.T) {
			if got := brief(PointsFromRollups(rs, c.keyword)); !slices.Equal(got, c.want) {
				t.Errorf("points = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestPointsFromResults(t *testing.T) {
	snap := func(mod func(s *snapshot.Snapshot)) *snapshot.Snapshot {
		s := &snapshot.Snapshot{
			CPU:    snapshot.CPU{Percent: 12},
			Memory: snapshot.Memory{UsedPercent: 34},
			Disk:   snapshot.Disk{UsedPercent: 56},
			Processes: snapshot.Processes{MatchedTotal: 7, Matched: []snapshot.Match{
				{Keyword: "python", Count: 5}, {Keyword: "scrapy", Count: 3}}},
		}
		if mod != nil {
			mod(s)
		}
		return s
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	results := []monitor.Result{
		{At: at(0), Snapshot: snap(nil)},
		{At: at(1), Snapshot: snap(func(s *snapshot.Snapshot) { s.CPU.Error = "x" })},
		{At: at(2), Snapshot: snap(func(s *snapshot.Snapshot) { s.Memory.Error = "x" })},
		{At: at(3), Snapshot: snap(func(s *snapshot.Snapshot) { s.Processes.Error = "x" })},
		{At: at(4), Snapshot: snap(func(s *snapshot.Snapshot) { s.Disk.Error = "x"; s.Disk.UsedPercent = 0 })},
		{At: at(5), Snapshot: snap(func(s *snapshot.Snapshot) { s.Processes.Matched = s.Processes.Matched[:1] })},
		{At: at(6), Snapshot: snap(func(s *snapshot.Snapshot) { s.Memory.UsedPercent = math.NaN() })},
		{At: at(7)},
	}
	for _, c := range []struct {
		keyword string
		want    []briefPoint
	}{
		{"", []briefPoint{
			{At: at(0), CPU: 12, Mem: 34, Disk: 56, Procs: 7},
			{At: at(4), CPU: 12, Mem: 34, Disk: 0, Procs: 7},
			{At: at(5), CPU: 12, Mem: 34, Disk: 56, Procs: 7},
		}},
		{"scrapy", []briefPoint{
			{At: at(0), CPU: 12, Mem: 34, Disk: 56, Procs: 3},
			{At: at(4), CPU: 12, Mem: 34, Disk: 0, Procs: 3},
		}},
	} {
		t.Run("keyword "+c.keyword, func(t *testing.T) {
			if got := brief(PointsFromResults(results, c.keyword)); !slices.Equal(got, c.want) {
				t.Errorf("points = %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// briefPoint is what the charts draw of a Point.
type briefPoint struct {
	At                    time.Time
	CPU, Mem, Disk, Procs float64
}

func brief(pts []Point) []briefPoint {
	out := make([]briefPoint, len(pts))
	for i, p := range pts {
		out[i] = briefPoint{p.At, p.CPU, p.Mem, p.Disk, p.Procs}
	}
	return out
}

func TestFitLine(t *testing.T) {
	for _, c := range []struct {
		name                 string
		xs, ys               []float64
		slope, intercept, r2 float64
		ok, flat             bool
	}{
		{"exact", []float64{1, 2, 3, 4}, []float64{3, 5, 7, 9}, 2, 1, 1, true, false},
		{"falling", []float64{0, 1, 2}, []float64{10, 7, 4}, -3, 10, 1, true, false},
		// Residuals ±1 at x = 0 and 2, ∓2 at x = 1: orthogonal to 1 and x.
		{"noisy", []float64{0, 1, 2}, []float64{1, -2, 1}, 0, 0, 0, true, false},
		{"x constant", []float64{3, 3, 3}, []float64{1, 2, 3}, 0, 0, 0, false, false},
		{"y constant", []float64{1, 2, 3}, []float64{5, 5, 5}, 0, 5, 0, true, true},
		{"empty", nil, nil, 0, 0, 0, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			slope, intercept, r2, _, ok, flat := fitLine(c.xs, c.ys)
			if ok != c.ok || flat != c.flat || !near(slope, c.slope) || !near(intercept, c.intercept) || !near(r2, c.r2) {
				t.Errorf("fit = %v + %v·x, R² %v, ok %v, flat %v; want %v + %v·x, R² %v, ok %v, flat %v",
					intercept, slope, r2, ok, flat, c.intercept, c.slope, c.r2, c.ok, c.flat)
			}
		})
	}
}

// TestHealthBeyondAttemptRetention: past the raw retention the failures by
// kind are gone, but the rollups still count the failed attempts; the
// success rate comes from the rollups.
func TestHealthBeyondAttemptRetention(t *testing.T) {
	ru := hourRollup("s", t0, reading{cpu: 10, mem: 20, disk: 30, procs: 1})
	ru.Count, ru.Failed = 10, 5
	_, s := buildOne(ServerInput{Name: "s", Rollups: []monitor.Rollup{ru}, Attempts: 15}, 1, "")
	if h := s.Health; h.Attempts != 15 || h.Snapshots != 10 || h.SuccessRate == nil || math.Abs(*h.SuccessRate-200.0/3) > 1e-6 {
		t.Errorf("health = %+v (rate %v), want 10 of 15 attempts, 66.7 %%", h, h.SuccessRate)
	}
}

// TestFleetRooms totals the room per keyword and lists only servers with
// room for one more where the next ones fit best: a full server is named
// as full, never offered as a place for more.
func TestFleetRooms(t *testing.T) {
	room := func(kw string, more, low, high int, limit string) Capacity {
		return Capacity{Keyword: kw, Known: true, More: more, Low: low, High: high, Limit: limit}
	}
	servers := []Server{
		{Name: "c", Capacity: []Capacity{room("python", 5, 3, 7, "memory"), room("java", 0, 0, 0, "cpu")}},
		{Name: "a", Capacity: []Capacity{room("python", 0, 0, 2, "cpu"), room("java", 0, 0, 0, "cpu")}},
		{Name: "b", Capacity: []Capacity{room("python", 12, 9, 14, "fd"), {Keyword: "java"}}},
		{Name: "d", Capacity: []Capacity{{Keyword: "python"}}},
	}
	got := fleetRooms(servers)
	want := []FleetRoom{
		{Keyword: "java", Servers: 2, Unknown: []string{"b"}, Best: []Placement{}, Full: []string{"a", "c"}},
		{Keyword: "python", More: 17, Low: 12, High: 23, Servers: 3, Unknown: []string{"d"},
			Best: []Placement{{"b", 12, 9, 14, "fd"}, {"c", 5, 3, 7, "memory"}}, Full: []string{"a"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fleetRooms:\n got %+v\nwant %+v", got, want)
	}
}
