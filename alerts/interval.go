package alerts

import (
	"fmt"
	"math"
	"strconv"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// Watch mode: a snapshot of a watching probe (`collector run`) covers the
// whole interval since the previous tick. The rules see every interval:
//   - memory, disk and load judge the interval's maximum (Interval.Memory,
//     Disk, Load1), so that a spike between ticks is not missed;
//   - CPU judges the snapshot's own busy percent, which is the interval's
//     mean: the rule's `for` counts intervals busy as a whole, as it counted
//     snapshots busy over their sample window; a burst of a few seconds in
//     an otherwise idle minute is a peak for the report, not a busy server.
//   - process rules judge the count at the end of the interval, as they
//     judge a one-shot snapshot's.

// intervalMax returns the interval's maximum of a figure and a note for the
// alert's summary, or own and "" when the snapshot has no such maximum
// (one-shot probes).
func intervalMax(own float64, iv *snapshot.Interval, stat func(*snapshot.Interval) *snapshot.Stat) (float64, string) {
	if iv == nil {
		return own, ""
	}
	st := stat(iv)
	if st == nil || !finite(st.Max) {
		return own, ""
	}
	return st.Max, fmt.Sprintf("highest of the %s samples since the last tick", secondsText(iv.ResolutionSeconds))
}

// secondsText prints a resolution: "1 s", "0.5 s".
func secondsText(s float64) string {
	return strconv.FormatFloat(s, 'f', -1, 64) + " s"
}

// noted puts a note in parentheses after a summary's detail.
func noted(detail, note string) string {
	switch {
	case note == "":
		return detail
	case detail == "":
		return " (" + note + ")"
	}
	return detail[:len(detail)-1] + "; " + note + ")"
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
