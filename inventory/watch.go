package inventory

import (
	"fmt"
	"time"
)

// Watch mode: `collector run` keeps one probe per server running for the
// whole session, sampling every resolution; see Server.Resolution.
const (
	// DefaultResolution is how often a watching probe samples when neither
	// [schedule] nor the server sets resolution.
	DefaultResolution = time.Second
	// MinResolution is the shortest resolution the probe takes.
	MinResolution = 100 * time.Millisecond
	// SilenceMargin is added to twice the longest gap between a server's
	// ticks to make the probe's -silence (see WatchSilence).
	SilenceMargin = 30 * time.Second
)

// tickGapsOver is how many ticks TickGaps looks at.
const tickGapsOver = 32

// TickGaps returns the shortest and the longest time between two
// consecutive ticks of the schedule spec (as CronParser reads it, in loc)
// among the next few after from. ok is false when spec does not parse or
// does not tick twice.
func TickGaps(spec string, from time.Time, loc *time.Location) (shortest, longest time.Duration, ok bool) {
	sched, err := CronParser.Parse(spec)
	if err != nil {
		return 0, 0, false
	}
	if loc == nil {
		loc = time.Local
	}
	prev := sched.Next(from.In(loc))
	for range tickGapsOver {
		if prev.IsZero() {
			break
		}
		next := sched.Next(prev)
		if next.IsZero() {
			break
		}
		gap := next.Sub(prev)
		if !ok || gap < shortest {
			shortest = gap
		}
		longest = max(longest, gap)
		ok = true
		prev = next
	}
	return shortest, longest, ok
}

// WatchSilence is the -silence a watching probe of s is started with at
// now: twice the longest gap between s's ticks plus SilenceMargin, so that
// a probe outlives a tick that is late or skipped, and no probe outlives a
// collector gone silent by more than that. ok is false when the schedule
// does not tick twice.
func (inv *Inventory) WatchSilence(s Server, now time.Time) (time.Duration, bool) {
	_, longest, ok := TickGaps(s.Schedule, now, inv.Schedule.Location)
	if !ok {
		return 0, false
	}
	return 2*longest + SilenceMargin, true
}

// resolutionReference is the time the schedule's gaps are checked from
// when a file is parsed, so that a check does not depend on the day.
var resolutionReference = time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC)

// checkResolution reports a resolution the probe would refuse, at p.
func (c *checker) checkResolution(p place, key string, r time.Duration) bool {
	switch {
	case r < 0:
		c.report(p, key, fmt.Sprintf("resolution %s is negative", r), `use e.g. "1s", or "0s" to probe once per tick instead of watching`)
	case r > 0 && r < MinResolution:
		c.report(p, key, fmt.Sprintf("resolution %s is below %s", r, MinResolution), fmt.Sprintf(`use %s or more, e.g. "1s", or "0s" to probe once per tick instead of watching`, MinResolution))
	default:
		return true
	}
	return false
}

// checkResolutionFits reports, at p's key, a resolution that is not
// shorter than the shortest gap between two ticks of spec: every interval
// must hold a sample.
func (c *checker) checkResolutionFits(p place, key string, r time.Duration, spec string, loc *time.Location) {
	if r <= 0 {
		return
	}
	shortest, _, ok := TickGaps(spec, resolutionReference, loc)
	if ok && r >= shortest {
		c.report(p, key, fmt.Sprintf("resolution %s is not shorter than the %s between ticks of schedule %q", r, shortest, spec),
			`make resolution shorter than the schedule's interval, e.g. "1s", or "0s" to probe once per tick instead of watching`)
	}
}

// buildResolution sets s.Resolution from the server's key rs or sched, and
// checks it against s's schedule when the server sets either.
func (c *checker) buildResolution(s *Server, p place, rs rawServer, sched Schedule) {
	s.Resolution = sched.Resolution
	key := "schedule"
	if rs.Resolution != nil {
		s.Resolution, key = time.Duration(*rs.Resolution), "resolution"
		if !c.checkResolution(p, key, s.Resolution) {
			return
		}
	}
	if rs.Resolution != nil || rs.Schedule != nil {
		c.checkResolutionFits(p, key, s.Resolution, s.Schedule, sched.Location)
	}
}
