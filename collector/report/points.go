package report

import (
	"math"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// A Point is one reading of a server for the charts and the fit: usage in
// percent and the matched-process count at that moment (the keyword's count
// when the report has a keyword, else all matched processes).
type Point struct {
	At   time.Time
	CPU  float64 // busy percent
	Mem  float64 // memory used percent
	Disk float64 // disk used percent; 0 when the disk section failed
	// Procs is the matched-process count; a mean for a rollup's point.
	Procs float64
}

// PointsFromRollups returns one point per hourly rollup: the hour's means of
// CPU, memory, disk and matched processes, at the middle of the hour (the
// means cover the whole hour). Procs is the mean of the keyword's count, or
// of the matched total when keyword is "". Rollups without CPU, memory or
// process readings are skipped, and so are those without counts for keyword
// (the probe did not look for it then).
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
		p := Point{
			At:    r.Start.Add(30 * time.Minute),
			CPU:   r.CPU.Mean(),
			Mem:   r.Mem.Mean(),
			Disk:  r.Disk.Mean(),
			Procs: procs,
		}
		if finitePoint(p) {
			pts = append(pts, p)
		}
	}
	return pts
}

// PointsFromResults returns one point per raw snapshot, at the result's At.
// Procs is the keyword's count, or the matched total when keyword is "". A
// failed result (no snapshot) is skipped, and so is a snapshot whose CPU,
// memory or process section failed, or one that has no count for keyword
// (the probe did not look for it then).
func PointsFromResults(results []monitor.Result, keyword string) []Point {
	pts := make([]Point, 0, len(results))
	for _, r := range results {
		s := r.Snapshot
		if s == nil || s.CPU.Error != "" || s.Memory.Error != "" || s.Processes.Error != "" {
			continue
		}
		procs := s.Processes.MatchedTotal
		if keyword != "" {
			n, ok := keywordCount(s.Processes.Matched, keyword)
			if !ok {
				continue
			}
			procs = n
		}
		p := Point{At: r.At, CPU: s.CPU.Percent, Mem: s.Memory.UsedPercent, Procs: float64(procs)}
		if s.Disk.Error == "" {
			p.Disk = s.Disk.UsedPercent
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
