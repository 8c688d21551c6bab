package httpapi

import (
	"math"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// Sampling says how the figures of a server's latest snapshot were seen.
type Sampling struct {
	// Watched is set for a snapshot of a watching probe (`collector run`'s
	// watch mode): it covers the IntervalSeconds since the previous one,
	// sampled every ResolutionSeconds; cpu_percent is the interval's mean
	// and the maxima below its highest samples.
	Watched           bool    `json:"watched"`
	ResolutionSeconds float64 `json:"resolution_seconds,omitempty"`
	IntervalSeconds   float64 `json:"interval_seconds,omitempty"`
	// SampleSeconds is the window cpu_percent is measured over: the
	// one-shot probe's sample, or the interval; 0 when unknown or averaged
	// since boot.
	SampleSeconds float64  `json:"sample_seconds"`
	CPUMax        *float64 `json:"cpu_max_percent,omitempty"`
	MemoryMax     *float64 `json:"memory_max_percent,omitempty"`
	DiskMax       *float64 `json:"disk_max_percent,omitempty"`
}

// samplingOf returns how snap was seen.
func samplingOf(snap *snapshot.Snapshot) *Sampling {
	s := &Sampling{SampleSeconds: snap.SampleSeconds}
	iv := snap.Interval
	if iv == nil {
		return s
	}
	s.Watched, s.ResolutionSeconds = true, iv.ResolutionSeconds
	s.IntervalSeconds = math.Round(iv.End.Sub(iv.Start).Seconds()*100) / 100
	max := func(st *snapshot.Stat, sectionErr string) *float64 {
		if st == nil || sectionErr != "" {
			return nil
		}
		v := st.Max
		return &v
	}
	s.CPUMax = max(iv.CPU, snap.CPU.Error)
	s.MemoryMax = max(iv.Memory, snap.Memory.Error)
	s.DiskMax = max(iv.Disk, snap.Disk.Error)
	return s
}
