package report

import (
	"math"
	"testing"

	"github.com/crawlerfleet/collector/monitor"
)

// uslPoints returns readings of counts 1 to n, twice each, with the
// network throughput x(count).
func uslPoints(n int, x func(float64) float64) []kpoint {
	var kps []kpoint
	for c := 1; c <= n; c++ {
		for range 2 {
			p := &Point{Point: monitor.Point{NetBytes: x(float64(c))}, Procs: float64(c)}
			kps = append(kps, kpoint{p, monitor.KeywordPoint{Keyword: "python", Count: float64(c)}})
		}
	}
	return kps
}

// TestThroughputFallingFromTheFirst fits throughput that falls from the
// first process on (σ = 1: all contention): the formula's knee, √((1−σ)/κ),
// is 0 there, and the throughput at 0 processes is 0/0. The knee is the
// first process, with its throughput, and the text says so.
func TestThroughputFallingFromTheFirst(t *testing.T) {
	const lambda, kappa = 1e6, 0.05
	tp := throughput(uslPoints(12, func(n float64) float64 { return lambda / (1 + kappa*(n-1)) }))
	if tp == nil || tp.Status != StatusOK || tp.Knee == nil {
		t.Fatalf("throughput = %+v, want a fit with a knee", tp)
	}
	if *tp.Knee != 1 || !tp.KneeVisible || math.Abs(tp.PeakBytes-lambda) > 1 {
		t.Errorf("knee %v (visible %v) at %v bytes/s, want the first process at %v", *tp.Knee, tp.KneeVisible, tp.PeakBytes, lambda)
	}
	if want := "network throughput peaked at the first process (977 KiB/s): more processes added no bytes/s"; tp.Text != want {
		t.Errorf("text %q, want %q", tp.Text, want)
	}
}
