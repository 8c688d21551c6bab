package store

import (
	"math"
	"time"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// Peaks of watch mode. A snapshot of a watching probe covers the whole
// interval since the previous tick and carries its maxima
// (snapshot.Interval): for CPU, memory, disk and load1 the rollup's peak
// candidate is then the interval's maximum at its time, not the snapshot's
// own reading (the interval's mean for CPU), with the matched processes
// counted at the CPU and memory maxima; for disk and load1, whose maxima
// have no counts of their own, those at the end of the interval. Sums and
// means still take the snapshot's own readings.

// peaks returns the rollup's four peaks, to restore those a snapshot's own
// readings replaced (see watchedPeaks).
func (a *rollupAgg) peaks() [4]*peakDoc {
	return [4]*peakDoc{a.cpu.peak, a.mem.peak, a.disk.peak, a.load1.peak}
}

// watchedPeaks makes the interval maxima of r's snapshot, when it has an
// interval, its peak candidates in place of its own readings; before holds
// the peaks as they were before r was added.
func (a *rollupAgg) watchedPeaks(r monitor.Result, before [4]*peakDoc) {
	snap := r.Snapshot
	iv := snap.Interval
	if iv == nil {
		return
	}
	end := endCounts(snap)
	for i, m := range []struct {
		agg   *metricAgg
		stat  *snapshot.Stat
		ok    bool // the snapshot's section was read, so its reading counted
		procs *snapshot.MatchedAt
	}{
		{&a.cpu, iv.CPU, snap.CPU.Error == "", iv.MatchedAtCPUMax},
		{&a.mem, iv.Memory, snap.Memory.Error == "", iv.MatchedAtMemoryMax},
		{&a.disk, iv.Disk, snap.Disk.Error == "", end},
		{&a.load1, iv.Load1, snap.CPU.Error == "", end},
	} {
		if !m.ok || m.stat == nil || !finite(m.stat.Max) {
			continue
		}
		m.agg.peak = before[i]
		// The probe's clock, moved onto the collector's by the skew noted.
		at := m.stat.MaxAt.Add(-r.ClockSkew).UTC().Truncate(time.Millisecond)
		p := &peakDoc{Value: m.stat.Max, Order: -at.UnixMilli(), At: docTime(at), SampleMS: secondsMS(iv.ResolutionSeconds), Watched: true}
		if m.procs != nil {
			p.ProcsKnown = true
			p.MatchedTotal = m.procs.MatchedTotal
			p.Procs = make([]procDoc, 0, len(m.procs.Keywords))
			for _, k := range m.procs.Keywords {
				p.Procs = append(p.Procs, procDoc{Keyword: k.Keyword, Count: k.Count})
			}
		}
		m.agg.offer(p)
	}
}

// endCounts returns the snapshot's own matched counts, or nil when it could
// not count processes.
func endCounts(snap *snapshot.Snapshot) *snapshot.MatchedAt {
	if snap.Processes.Error != "" {
		return nil
	}
	m := &snapshot.MatchedAt{MatchedTotal: snap.Processes.MatchedTotal, Keywords: make([]snapshot.KeywordCount, 0, len(snap.Processes.Matched))}
	for _, k := range snap.Processes.Matched {
		m.Keywords = append(m.Keywords, snapshot.KeywordCount{Keyword: k.Keyword, Count: k.Count})
	}
	return m
}

// offer makes p the peak when it is higher than the peak so far, or as
// high and earlier.
func (m *metricAgg) offer(p *peakDoc) {
	if m.peak != nil && (p.Value < m.peak.Value || p.Value == m.peak.Value && !time.Time(p.At).Before(time.Time(m.peak.At))) {
		return
	}
	m.peak = p
}

// secondsMS turns seconds into whole milliseconds; 0 for what is not a
// positive finite number.
func secondsMS(s float64) int64 {
	if !(s > 0) || math.IsInf(s, 0) {
		return 0
	}
	return int64(math.Round(s * 1000))
}
