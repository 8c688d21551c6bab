package report

import (
	"fmt"
	"strconv"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// Sampling says how a peak was seen: as the highest of the samples a
// watching probe took over the whole interval between two probes
// (`collector run`'s watch mode), or as one reading of a one-shot probe
// among the probes of its hour.
type Sampling struct {
	// Watched is set for the highest of a watching probe's samples.
	Watched bool `json:"watched"`
	// SampleSeconds is what each reading was measured over: the watch
	// resolution, or the one-shot probe's sample window; 0 when unknown
	// (data stored before it was kept).
	SampleSeconds float64 `json:"sample_seconds"`
	// Probes is how many snapshots the peak's hour (or period) holds: one
	// reading each, for a one-shot peak.
	Probes int64 `json:"probes"`
}

// sampling returns how p, the peak of rollup ru, was seen.
func sampling(p monitor.Peak, ru monitor.Rollup) *Sampling {
	return &Sampling{Watched: p.Watched, SampleSeconds: p.Sample.Seconds(), Probes: ru.Count}
}

// String says it in a few words: "max of 1 s samples", "1 s sample, 1 of
// 60 that hour".
func (s *Sampling) String() string {
	if s == nil {
		return ""
	}
	sample := strconv.FormatFloat(s.SampleSeconds, 'f', -1, 64) + " s"
	switch {
	case s.Watched && s.SampleSeconds > 0:
		return "max of " + sample + " samples"
	case s.Watched:
		return "max of the samples"
	case s.SampleSeconds > 0:
		return fmt.Sprintf("%s sample, 1 of %d that hour", sample, s.Probes)
	}
	return fmt.Sprintf("1 reading of %d that hour", s.Probes)
}

// Explain says it in a sentence, for a tooltip.
func (s *Sampling) Explain() string {
	if s == nil {
		return ""
	}
	if s.Watched {
		return fmt.Sprintf("Watch mode: the probe sampled every %s over the whole interval between two probes; this is the highest sample, none missed.",
			(time.Duration(s.SampleSeconds * float64(time.Second))).String())
	}
	return "One-shot probe: one reading per probe, taken over its sample window; what happened between probes was not seen."
}
