package monitor

import (
	"math"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// A Point is what a report needs of one snapshot: the figures its charts,
// fits and saturation tests read, a few hundred bytes where the snapshot is
// a few KiB. Stores keep it beside each snapshot (so that a report over
// days of raw snapshots reads points, not snapshots), and a report makes
// one per hourly rollup from the hour's means (see the report package).
//
// A figure that the snapshot did not have (its section failed, or the probe
// was of schema version 1) is NaN; Known says so.
type Point struct {
	At time.Time
	// CPU is the busy percent of all CPUs; Load1 the 1-minute load; CPUs
	// the logical CPU count (0 unknown).
	CPU, Load1 float64
	CPUs       int
	// Mem is the memory used percent (snapshot.Memory.UsedPercent),
	// MemAvail the percent of memory available to new processes, MemTotal
	// the memory size in bytes (0 unknown).
	Mem, MemAvail float64
	MemTotal      uint64
	// Disk is the used percent of the root file system.
	Disk float64
	// RunQueue is the runnable tasks per logical CPU at the end of the
	// sample window, the probe itself left out.
	RunQueue float64
	// SwapPages is the pages swapped in and out per second.
	SwapPages float64
	// PressureCPU, PressureMem and PressureIO are the share of time some
	// task stalled on the resource, percent: over the sample window where
	// the probe measured it, else the kernel's 10-second average.
	PressureCPU, PressureMem, PressureIO float64
	// NetBytes is the bytes received and sent per second over all
	// non-loopback interfaces.
	NetBytes float64
	// FDUsed is the system's file handles in use, percent of its limit.
	FDUsed float64
	// Matched is the distinct matched processes; -1 when the process
	// section failed (Keywords is then empty).
	Matched  int
	Keywords []KeywordPoint
	// Filesystems is the used percent of every local file system.
	Filesystems []FilesystemUsage
}

// A KeywordPoint is what one keyword matched at a point: the count and the
// group's resident memory and CPU, summed over its processes (a point made
// from a rollup holds the hour's means).
type KeywordPoint struct {
	Keyword string
	Count   float64
	// RSSBytes is the matched processes' resident memory, summed.
	RSSBytes float64
	// CPUPercent is the matched processes' CPU, summed, in percent of one
	// CPU.
	CPUPercent float64
	// FDs is their open file descriptors, summed; NaN when unknown (schema
	// version 1, or some of them could not be read).
	FDs float64
}

// FilesystemUsage is the used percent of one mounted file system.
type FilesystemUsage struct {
	Path        string
	UsedPercent float64
}

// Known reports whether v is a figure rather than the NaN of an unknown one.
func Known(v float64) bool { return !math.IsNaN(v) }

// Keyword returns what keyword matched at p, and whether p counted it.
func (p Point) Keyword(keyword string) (KeywordPoint, bool) {
	for _, k := range p.Keywords {
		if k.Keyword == keyword {
			return k, true
		}
	}
	return KeywordPoint{}, false
}

// PointOf returns the point of a snapshot taken at at.
func PointOf(at time.Time, s *snapshot.Snapshot) Point {
	nan := math.NaN()
	p := Point{At: at, CPU: nan, Load1: nan, Mem: nan, MemAvail: nan, Disk: nan, RunQueue: nan, SwapPages: nan,
		PressureCPU: nan, PressureMem: nan, PressureIO: nan, NetBytes: nan, FDUsed: nan, Matched: -1}
	if s.CPU.Error == "" {
		p.CPU, p.Load1, p.CPUs = s.CPU.Percent, s.CPU.Load1, s.CPU.LogicalCount
	}
	if m := s.Memory; m.Error == "" {
		p.Mem, p.MemTotal = m.UsedPercent, m.Total
		if m.Total > 0 {
			p.MemAvail = m.FreePercent()
		}
	}
	if s.Disk.Error == "" {
		p.Disk = s.Disk.UsedPercent
	}
	if q := s.RunQueue; q != nil && q.Error == "" && p.CPUs > 0 {
		// procs_running counts the probe, which was running as it read it.
		p.RunQueue = float64(max(q.Running-1, 0)) / float64(p.CPUs)
	}
	if sw := s.Swap; sw != nil && sw.Error == "" {
		p.SwapPages = sw.PagesInPerSecond + sw.PagesOutPerSecond
	}
	if pr := s.Pressure; pr != nil {
		p.PressureCPU, p.PressureMem, p.PressureIO = stall(pr.CPU), stall(pr.Memory), stall(pr.IO)
	}
	if n := s.Network; n != nil && n.Error == "" {
		p.NetBytes = n.RxBytesPerSecond + n.TxBytesPerSecond
	}
	if f := s.FileDescriptors; f != nil && f.Error == "" && f.Max > 0 {
		p.FDUsed = float64(f.Allocated) / float64(f.Max) * 100
	}
	if pr := s.Processes; pr.Error == "" {
		p.Matched = pr.MatchedTotal
		p.Keywords = make([]KeywordPoint, 0, len(pr.Matched))
		for _, m := range pr.Matched {
			k := KeywordPoint{Keyword: m.Keyword, Count: float64(m.Count), RSSBytes: float64(m.RSSBytes), CPUPercent: m.CPUPercent, FDs: nan}
			if s.Version >= 2 && m.FDsUnreadable == 0 {
				k.FDs = float64(m.FDs)
			}
			p.Keywords = append(p.Keywords, k)
		}
	}
	if fs := s.Filesystems; fs != nil {
		for _, m := range fs.Mounts {
			if m.Error == "" {
				p.Filesystems = append(p.Filesystems, FilesystemUsage{Path: m.Path, UsedPercent: m.UsedPercent})
			}
		}
	}
	return p
}

// stall is a resource's "some" stall percent: over the sample window when
// measured, else the 10-second average; NaN without a reading.
func stall(p *snapshot.PSI) float64 {
	switch {
	case p == nil || p.Error != "":
		return math.NaN()
	case p.SomeStallPercent != nil:
		return *p.SomeStallPercent
	}
	return p.SomeAvg10
}
