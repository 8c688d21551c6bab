package report

import (
	"math"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// A Point is one reading of a server for the charts, the fits and the
// saturation tests: a snapshot's monitor.Point, or an hour's means, with
// Procs, the matched-process count the charts draw (the keyword's count
// when the report has a keyword, else all matched processes). Figures
// that the reading lacks are NaN (see monitor.Point).
type Point struct {
	monitor.Point
	// Procs is the matched-process count; a mean for a rollup's point.
	Procs float64
}

// PointsFromRollups returns one point per hourly rollup: the hour's means
// of every figure, at the middle of the hour (the means cover the whole
// hour). Each keyword's RSSBytes and CPUPercent are the group's means, its
// FDs the group's mean descriptors times the count's mean (NaN when the
// hour had no reading of them). Procs is the mean of the keyword's count,
// or of the matched total when keyword is "". Rollups without CPU, memory
// or process readings are skipped, and so are those without counts for
// keyword (the probe did not look for it then).
func PointsFromRollups(rs []monitor.Rollup, keyword string) []Point {
	pts := make([]Point, 0, len(rs))
	for _, r := range rs {
		if r.CPU.N == 0 || r.Mem.N == 0 || r.Matched.N == 0 {
			continue
		}
		procs := r.Matched.Mean()
		if keyword != "" {
			k, ok := r.Keyword(keyword)
			if !ok || k.N == 0 {
				continue
			}
			procs = k.Mean()
		}
		p := Point{Procs: procs, Point: monitor.Point{
			At:          r.Start.Add(30 * time.Minute),
			CPU:         r.CPU.Mean(),
			Load1:       meanOrNaN(r.Load1),
			Mem:         r.Mem.Mean(),
			MemAvail:    100 - meanOrNaN(r.Unavailable),
			Disk:        r.Disk.Mean(),
			RunQueue:    meanOrNaN(r.RunQueue),
			SwapPages:   meanOrNaN(r.SwapPages),
			PressureCPU: meanOrNaN(r.PressureCPU),
			PressureMem: meanOrNaN(r.PressureMem),
			PressureIO:  meanOrNaN(r.PressureIO),
			NetBytes:    meanOrNaN(r.NetBytes),
			FDUsed:      meanOrNaN(r.FDUsed),
			Matched:     int(math.Round(r.Matched.Mean())),
		}}
		for _, k := range r.Keywords {
			kp := monitor.KeywordPoint{Keyword: k.Keyword, Count: k.Mean(), RSSBytes: math.NaN(), CPUPercent: math.NaN(), FDs: math.NaN()}
			if k.RSSN > 0 {
				kp.RSSBytes, kp.CPUPercent = k.RSSBytes/float64(k.RSSN), k.CPUPercent/float64(k.RSSN)
			}
			if k.FDN > 0 && k.FDCount > 0 {
				kp.FDs = float64(k.FDs) / float64(k.FDCount) * kp.Count
			}
			p.Keywords = append(p.Keywords, kp)
		}
		for _, f := range r.Filesystems {
			if f.N > 0 {
				p.Filesystems = append(p.Filesystems, monitor.FilesystemUsage{Path: f.Path, UsedPercent: f.Mean()})
			}
		}
		if finitePoint(p) {
			pts = append(pts, p)
		}
	}
	return pts
}

func meanOrNaN(m monitor.Metric) float64 {
	if m.N == 0 {
		return math.NaN()
	}
	return m.Mean()
}

// PointsFromResults returns one point per raw snapshot, at the result's At.
// A failed result (no snapshot) is skipped; the rest is PointsFromStored's.
func PointsFromResults(results []monitor.Result, keyword string) []Point {
	mps := make([]monitor.Point, 0, len(results))
	for _, r := range results {
		if r.Snapshot != nil {
			mps = append(mps, monitor.PointOf(r.At, r.Snapshot))
		}
	}
	return PointsFromStored(mps, keyword)
}

// PointsFromStored returns one point per snapshot's point, as a store
// keeps them. Procs is the keyword's count, or the matched total when
// keyword is "". A point without CPU, memory or process figures is skipped,
// and so is one that has no count for keyword (the probe did not look for
// it then).
func PointsFromStored(mps []monitor.Point, keyword string) []Point {
	pts := make([]Point, 0, len(mps))
	for _, mp := range mps {
		if !monitor.Known(mp.CPU) || !monitor.Known(mp.Mem) || mp.Matched < 0 {
			continue
		}
		procs := float64(mp.Matched)
		if keyword != "" {
			k, ok := mp.Keyword(keyword)
			if !ok {
				continue
			}
			procs = k.Count
		}
		p := Point{Point: mp, Procs: procs}
		if !monitor.Known(p.Disk) {
			p.Disk = 0
		}
		if finitePoint(p) {
			pts = append(pts, p)
		}
	}
	return pts
}

func finitePoint(p Point) bool {
	return finite(p.CPU) && finite(p.Mem) && finite(p.Disk) && finite(p.Procs)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
