package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// watched returns a snapshot of a watching probe at at: its own readings
// from r (CPU the interval's mean), and the interval's maxima.
func watched(at time.Time, r reading, iv snapshot.Interval) monitor.Result {
	res := snapResult("web1", at, r)
	res.Snapshot.SampleSeconds = 60
	iv.Start, iv.End, iv.ResolutionSeconds, iv.Samples = at.Add(-time.Minute), at, 1, 60
	res.Snapshot.Interval = &iv
	return res
}

func stat(max float64, at time.Time) *snapshot.Stat {
	return &snapshot.Stat{Max: max, Mean: max / 2, MaxAt: at}
}

func matchedAt(python int) *snapshot.MatchedAt {
	return &snapshot.MatchedAt{Keywords: []snapshot.KeywordCount{{Keyword: "python", Count: python}}, MatchedTotal: python}
}

// TestRollupWatchedPeaks: a watching probe's interval maxima are the
// rollup's peaks, at their own times, with the processes counted then and
// the resolution behind them; sums keep the snapshots' own readings.
func TestRollupWatchedPeaks(t *testing.T) {
	h := mustTime(t, "2024-05-01T10:00:00Z")
	procs := []monitor.KeywordCount{{Keyword: "python", Count: 3}}
	oneShot := snapResult("web1", h.Add(time.Minute), reading{cpu: 20, mem: 50, disk: 60, load1: 1, procs: procs})
	oneShot.Snapshot.SampleSeconds = 1
	burst := h.Add(2*time.Minute + 17*time.Second)
	results := []monitor.Result{
		oneShot,
		// A burst between two ticks: the snapshot's own CPU is the mean.
		watched(h.Add(3*time.Minute), reading{cpu: 25, mem: 51, disk: 60, load1: 1.2, procs: procs}, snapshot.Interval{
			CPU: stat(97.5, burst), Memory: stat(58, burst.Add(time.Second)), Disk: stat(60.5, burst.Add(-time.Second)), Load1: stat(2.5, burst.Add(2*time.Second)),
			MatchedAtCPUMax: matchedAt(7), MatchedAtMemoryMax: matchedAt(6),
		}),
		// An interval without a CPU maximum (no samples): its own reading
		// stays its candidate, and is lower.
		watched(h.Add(4*time.Minute), reading{cpu: 30, mem: 52, disk: 60, load1: 1, procs: procs}, snapshot.Interval{}),
	}
	// A probe clock 30 s ahead, noted: the peak's time is the collector's.
	skewed := watched(h.Add(5*time.Minute), reading{cpu: 10, mem: 50, disk: 60, load1: 1, procs: procs}, snapshot.Interval{
		Memory: stat(70, h.Add(4*time.Minute+50*time.Second)), MatchedAtMemoryMax: matchedAt(9),
	})
	skewed.ClockSkew = 30 * time.Second
	results = append(results, skewed)

	s, _ := openTest(t, Config{})
	writeAll(t, s, results)
	rs := allRollups(t, s, h, h.Add(time.Hour))
	var hour monitor.Rollup
	for _, r := range rs {
		if r.Period == monitor.Hour {
			hour = r
		}
	}
	wantPeak := func(v float64, at time.Time, python int, watched bool, sample time.Duration) monitor.Peak {
		return monitor.Peak{Value: v, At: at, ProcsKnown: true, MatchedTotal: python,
			Procs: []monitor.KeywordCount{{Keyword: "python", Count: python}}, Watched: watched, Sample: sample}
	}
	for _, tt := range []struct {
		name string
		got  monitor.Metric
		peak monitor.Peak
		sum  float64
	}{
		{"cpu", hour.CPU, wantPeak(97.5, burst, 7, true, time.Second), 20 + 25 + 30 + 10},
		{"mem", hour.Mem, wantPeak(70, h.Add(4*time.Minute+20*time.Second), 9, true, time.Second), 50 + 51 + 52 + 50},
		{"disk", hour.Disk, wantPeak(60.5, burst.Add(-time.Second), 3, true, time.Second), 240},
		{"load1", hour.Load1, wantPeak(2.5, burst.Add(2*time.Second), 3, true, time.Second), 1 + 1.2 + 1 + 1},
	} {
		if !reflect.DeepEqual(tt.got.Peak, tt.peak) || tt.got.N != 4 || tt.got.Sum != tt.sum {
			t.Errorf("%s: peak %+v, sum %v over %d\nwant %+v, sum %v over 4", tt.name, tt.got.Peak, tt.got.Sum, tt.got.N, tt.peak, tt.sum)
		}
	}

	// Without watch mode: the reading and its sample window.
	s2, _ := openTest(t, Config{})
	writeAll(t, s2, results[:1])
	for _, r := range allRollups(t, s2, h, h.Add(time.Hour)) {
		if p := r.CPU.Peak; p.Value != 20 || p.Watched || p.Sample != time.Second || !p.At.Equal(h.Add(time.Minute)) {
			t.Errorf("one-shot %s peak: %+v", r.Period, p)
		}
	}
}
