package alerts

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// okState is the one form of AlertOK: nothing else is kept about a rule
// that is not breaching.
func okState(server, rule string) monitor.AlertState {
	return monitor.AlertState{Server: server, Rule: rule, Status: monitor.AlertOK}
}

// Evaluate applies one result (probe attempt) of a server to the states of
// its rules. It is pure: the clock is now, and it neither reads nor writes
// a store.
//
// The result's At dates the states and alerts (a zero At counts as now).
// A result without a Snapshot is a failed attempt of its Kind (an empty
// Kind counts as monitor.KindUnreachable, as fleet classifies an untyped
// failure), with Err saying what failed and HostKeyChanged set when the
// server offered a host key other than the recorded one.
//
// prev holds the server's states by rule (missing rules are ok); rules are
// the server's effective rules (inventory.Server.Alerts). now is the
// notification clock: repeats are due when now − LastNotified ≥ repeat
// (inventory.DefaultAlertRepeat when repeat ≤ 0). silenced, when not nil,
// reports whether a rule of this server is silenced now.
//
// It returns the states of all enabled rules (rules turned off are left
// out) and the alerts to notify: firing (first or repeat) and resolved.
// Evaluate does not modify prev.
//
// The semantics, rule by rule:
//   - A threshold breaches at or above Above. It goes pending, and fires
//     after For consecutive breaching snapshots. A pending rule that reads
//     below Above goes back to ok without a notification. A firing rule
//     stays firing while it reads at or above Clear, and resolves below it.
//   - A process rule breaches while the keyword's count is below Min or
//     above Max (a zero bound is no bound), with no hysteresis.
//   - A snapshot section with an error, or a load reading without a
//     logical CPU count, leaves that section's rules as they were.
//   - A failed attempt counts toward "down" only; every other rule keeps its
//     state. "down" fires after After consecutive failures, or at once when
//     the host key changed; a changed host key while "down" already fires
//     for another reason notifies at once too. A successful attempt resets
//     the streak and resolves a firing "down". An unknown (not changed)
//     host key is an ordinary failure.
//   - A firing rule is notified when it fires and again every repeat, but
//     only on a result that evaluated it (a repeat carries a fresh
//     reading). A resolve is notified only when the firing was.
//   - A silenced rule notifies nothing, firing, repeat or resolved, but its
//     state advances. When the silence ends, the next evaluation notifies a
//     firing rule that was never notified, or whose repeat fell due during
//     the silence.
//   - A rule that is turned off (Above 0, a process rule without bounds or
//     removed from the list) is dropped; when it was firing and notified,
//     a resolved alert says so (unless silenced).
//   - AlertResolved lasts until the next evaluation of the rule, which
//     treats it like AlertOK.
func Evaluate(rules inventory.AlertRules, prev map[string]monitor.AlertState, r monitor.Result, now time.Time, repeat time.Duration, silenced func(rule string) bool) (next map[string]monitor.AlertState, notify []Alert) {
	return EvaluateForecast(rules, prev, r, nil, now, repeat, silenced)
}

// EvaluateForecast is Evaluate with the disk forecasts of the server at the
// result, by mount point (see monitor.ForecastFull): the "disk_full" rule
// breaches while a file system is forecast full within its horizon, and
// fires after one such reading. With forecasts nil the rule keeps its
// state.
func EvaluateForecast(rules inventory.AlertRules, prev map[string]monitor.AlertState, r monitor.Result, forecasts map[string]monitor.DiskForecast,
	now time.Time, repeat time.Duration, silenced func(rule string) bool) (next map[string]monitor.AlertState, notify []Alert) {
	if repeat <= 0 {
		repeat = inventory.DefaultAlertRepeat
	}
	if silenced == nil {
		silenced = func(string) bool { return false }
	}
	e := &evaluator{r: r, at: r.At, now: now, repeat: repeat, silenced: silenced}
	if e.at.IsZero() {
		e.at = now
	}
	next = make(map[string]monitor.AlertState, len(prev)+5)
	get := func(rule string) monitor.AlertState {
		st, ok := prev[rule]
		if !ok || st.Status == "" {
			return okState(r.Server, rule)
		}
		st.Server, st.Rule = r.Server, rule
		return st
	}

	enabled := enabledRules(rules, forecasts)
	for _, ru := range enabled {
		st := get(ru.name)
		switch {
		case ru.name == RuleDown:
			st = e.stepDown(st, max(rules.Down.After, 1))
		case r.Failed():
			// Other rules keep their state through a failed attempt.
		default:
			if v, ok := ru.read(r.Snapshot); ok {
				st = e.step(st, ru.need, v)
			}
		}
		next[ru.name] = st
	}

	// Rules turned off since the last evaluation.
	var gone []string
	for rule := range prev {
		if _, ok := next[rule]; !ok {
			gone = append(gone, rule)
		}
	}
	sort.Strings(gone)
	for _, rule := range gone {
		if st := get(rule); st.Status == monitor.AlertFiring {
			e.resolve(st, st.Value, st.Threshold, ruleTitle(rule)+" alert turned off")
		}
	}
	return next, e.notify
}

// A verdict is what one reading means for a level rule.
type verdict struct {
	breach    bool    // at or past the threshold: counts toward For
	hold      bool    // keeps a firing alert firing (at or above Clear)
	value     float64 // the reading
	threshold float64 // the threshold breached (or Above)
	clear     float64 // the level below which a firing alert resolves
	// describe says what the reading means after streak breaching readings.
	describe func(streak int) string
	resolved string // the summary when this reading resolves the alert
}

// A rule is one enabled rule: its name, how many breaching readings fire
// it, and how to read it from a snapshot (ok false: no reading).
type rule struct {
	name string
	need int
	read func(*snapshot.Snapshot) (verdict, bool)
}

// enabledRules lists the enabled rules of rules, "down" always included.
// forecasts are the disk forecasts for "disk_full" (nil: no reading).
func enabledRules(rules inventory.AlertRules, forecasts map[string]monitor.DiskForecast) []rule {
	var out []rule
	for _, t := range []struct {
		name string
		th   inventory.Threshold
		read func(*snapshot.Snapshot) (float64, string, bool)
	}{
		{RuleCPU, rules.CPU, readCPU},
		{RuleMemory, rules.Memory, readMemory},
		{RuleDisk, rules.Disk, readDisk},
		{RuleLoad, rules.Load, readLoad},
		{RuleSwap, rules.Swap, readSwap},
		{RuleMemoryPressure, rules.MemoryPressure, readPressure(func(p *snapshot.Pressure) *snapshot.PSI { return p.Memory })},
		{RuleCPUPressure, rules.CPUPressure, readPressure(func(p *snapshot.Pressure) *snapshot.PSI { return p.CPU })},
		{RuleFD, rules.FD, readFD},
	} {
		if !t.th.Enabled() {
			continue
		}
		th := t.th
		if th.Clear <= 0 || th.Clear > th.Above {
			th.Clear = th.Above
		}
		name, read := t.name, t.read
		out = append(out, rule{name: name, need: max(th.For, 1), read: func(s *snapshot.Snapshot) (verdict, bool) {
			v, detail, ok := read(s)
			if !ok {
				return verdict{}, false
			}
			return thresholdVerdict(name, th, v, detail), true
		}})
	}
	if rules.DiskFull.Enabled() {
		within := rules.DiskFull.Within
		out = append(out, rule{name: RuleDiskFull, need: 1, read: func(*snapshot.Snapshot) (verdict, bool) {
			if forecasts == nil {
				return verdict{}, false
			}
			return diskFullVerdict(within, forecasts), true
		}})
	}
	seen := map[string]bool{}
	for _, p := range rules.Processes {
		name := RuleProcessesPrefix + p.Keyword
		if p.Keyword == "" || (p.Min <= 0 && p.Max <= 0) || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, rule{name: name, need: max(p.For, 1), read: func(s *snapshot.Snapshot) (verdict, bool) {
			if s.Processes.Error != "" {
				return verdict{}, false
			}
			return processVerdict(p, s.Processes.Count(p.Keyword)), true
		}})
	}
	return append(out, rule{name: RuleDown})
}

func readCPU(s *snapshot.Snapshot) (float64, string, bool) {
	return s.CPU.Percent, "", s.CPU.Error == ""
}

func readMemory(s *snapshot.Snapshot) (float64, string, bool) {
	v, note := intervalMax(s.Memory.UsedPercent, s.Interval, func(iv *snapshot.Interval) *snapshot.Stat { return iv.Memory })
	return v, noted("", note), s.Memory.Error == ""
}

func readDisk(s *snapshot.Snapshot) (float64, string, bool) {
	v, note := intervalMax(s.Disk.UsedPercent, s.Interval, func(iv *snapshot.Interval) *snapshot.Stat { return iv.Disk })
	return v, noted("", note), s.Disk.Error == ""
}

func readLoad(s *snapshot.Snapshot) (float64, string, bool) {
	if s.CPU.Error != "" || s.CPU.LogicalCount <= 0 {
		return 0, "", false
	}
	load1, note := intervalMax(s.CPU.Load1, s.Interval, func(iv *snapshot.Interval) *snapshot.Stat { return iv.Load1 })
	detail := fmt.Sprintf(" (load1 %.2f on %d CPUs)", load1, s.CPU.LogicalCount)
	return load1 / float64(s.CPU.LogicalCount), noted(detail, note), true
}

func readSwap(s *snapshot.Snapshot) (float64, string, bool) {
	sw := s.Swap
	if sw == nil || sw.Error != "" {
		return 0, "", false
	}
	return sw.PagesInPerSecond + sw.PagesOutPerSecond, fmt.Sprintf(" (in %.0f, out %.0f)", sw.PagesInPerSecond, sw.PagesOutPerSecond), true
}

// readPressure reads one resource's "some" stall percent: over the sample
// window where the probe measured it, else the kernel's 10-second average.
// A host without pressure stall information gives no reading.
func readPressure(psi func(*snapshot.Pressure) *snapshot.PSI) func(*snapshot.Snapshot) (float64, string, bool) {
	return func(s *snapshot.Snapshot) (float64, string, bool) {
		if s.Pressure == nil {
			return 0, "", false
		}
		p := psi(s.Pressure)
		switch {
		case p == nil || p.Error != "":
			return 0, "", false
		case p.SomeStallPercent != nil:
			return *p.SomeStallPercent, "", true
		}
		return p.SomeAvg10, "", true
	}
}

func readFD(s *snapshot.Snapshot) (float64, string, bool) {
	f := s.FileDescriptors
	if f == nil || f.Error != "" || f.Max == 0 {
		return 0, "", false
	}
	return float64(f.Allocated) / float64(f.Max) * 100, fmt.Sprintf(" (%d of %d)", f.Allocated, f.Max), true
}

// diskFullVerdict reads the forecasts: the file system that fills soonest
// decides.
func diskFullVerdict(within time.Duration, forecasts map[string]monitor.DiskForecast) verdict {
	var path string
	var soonest *monitor.DiskForecast
	for p, f := range forecasts {
		if soonest == nil || f.FullIn < soonest.FullIn || f.FullIn == soonest.FullIn && p < path {
			f := f
			path, soonest = p, &f
		}
	}
	h := within.Hours()
	v := verdict{threshold: h, clear: h}
	if soonest == nil {
		v.value = -1
		v.describe = func(int) string { return "disk: no file system is growing" }
		v.resolved = "disk: no file system is growing any more"
		return v
	}
	v.value = soonest.FullIn.Hours()
	v.breach = soonest.FullIn <= within
	v.hold = v.breach
	what := fmt.Sprintf("disk %s full in %s at the trend of its daily peaks (%.1f %%, %+.1f %%/day)",
		path, roundDuration(soonest.FullIn), soonest.Last.Value, soonest.PerDay)
	v.describe = func(int) string {
		if v.breach {
			return what + ", within " + roundDuration(within)
		}
		return what
	}
	v.resolved = fmt.Sprintf("disk: no file system full within %s (%s soonest: %s)", roundDuration(within), path, roundDuration(soonest.FullIn))
	return v
}

// roundDuration prints d in hours, or days and hours past two days.
func roundDuration(d time.Duration) string {
	h := int(d.Round(time.Hour).Hours())
	if h < 48 {
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dd%dh", h/24, h%24)
}

// ruleTitle is how summaries name a rule.
func ruleTitle(rule string) string {
	switch rule {
	case RuleCPU:
		return "CPU"
	case RuleLoad:
		return "load"
	case RuleSwap:
		return "swap paging"
	case RuleMemoryPressure:
		return "memory pressure"
	case RuleCPUPressure:
		return "CPU pressure"
	case RuleFD:
		return "file handles"
	case RuleDiskFull:
		return "disk forecast"
	}
	if kw, ok := strings.CutPrefix(rule, RuleProcessesPrefix); ok {
		return kw + " processes"
	}
	return rule
}

// reading formats a reading: "93.2 %", "2.40 per CPU" or "300 pages/s".
func reading(rule string, v float64) string {
	switch rule {
	case RuleLoad:
		return fmt.Sprintf("%.2f per CPU", v)
	case RuleSwap:
		return fmt.Sprintf("%.0f pages/s", v)
	}
	return fmt.Sprintf("%.1f %%", v)
}

// level formats a threshold: "90 %", "2" or "256 pages/s".
func level(rule string, v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	switch rule {
	case RuleLoad:
		return s
	case RuleSwap:
		return s + " pages/s"
	}
	return s + " %"
}

func forSnapshots(streak int) string {
	if streak <= 1 {
		return ""
	}
	return fmt.Sprintf(" for %d snapshots", streak)
}

func thresholdVerdict(name string, th inventory.Threshold, v float64, detail string) verdict {
	title := ruleTitle(name)
	return verdict{
		breach:    v >= th.Above,
		hold:      v >= th.Clear,
		value:     v,
		threshold: th.Above,
		clear:     th.Clear,
		describe: func(streak int) string {
			if v >= th.Above {
				return fmt.Sprintf("%s %s ≥ %s%s%s", title, reading(name, v), level(name, th.Above), detail, forSnapshots(streak))
			}
			if v >= th.Clear {
				return fmt.Sprintf("%s %s, not yet below %s (fired at %s)%s", title, reading(name, v), level(name, th.Clear), level(name, th.Above), detail)
			}
			return fmt.Sprintf("%s %s < %s%s", title, reading(name, v), level(name, th.Above), detail)
		},
		resolved: fmt.Sprintf("%s back to %s (below %s)%s", title, reading(name, v), level(name, th.Clear), detail),
	}
}

func processVerdict(p inventory.ProcessRule, n int) verdict {
	title := ruleTitle(RuleProcessesPrefix + p.Keyword)
	v := verdict{value: float64(n)}
	var what string
	switch {
	case p.Min > 0 && n < p.Min:
		v.breach, v.threshold = true, float64(p.Min)
		what = fmt.Sprintf("%s %d < min %d", title, n, p.Min)
	case p.Max > 0 && n > p.Max:
		v.breach, v.threshold = true, float64(p.Max)
		what = fmt.Sprintf("%s %d > max %d", title, n, p.Max)
	default:
		v.threshold = float64(max(p.Min, p.Max))
		what = fmt.Sprintf("%s %d", title, n)
	}
	v.hold = v.breach
	v.clear = v.threshold
	v.describe = func(streak int) string { return what + forSnapshots(streak) }
	var bounds []string
	if p.Min > 0 {
		bounds = append(bounds, fmt.Sprintf("min %d", p.Min))
	}
	if p.Max > 0 {
		bounds = append(bounds, fmt.Sprintf("max %d", p.Max))
	}
	v.resolved = fmt.Sprintf("%s back to %d (%s)", title, n, strings.Join(bounds, ", "))
	return v
}

// evaluator carries one Evaluate call.
type evaluator struct {
	r        monitor.Result
	at       time.Time // the result's time
	now      time.Time // the notification clock
	repeat   time.Duration
	silenced func(rule string) bool
	notify   []Alert
}

// step moves a level rule (threshold or processes) by one reading.
func (e *evaluator) step(st monitor.AlertState, need int, v verdict) monitor.AlertState {
	if st.Status == monitor.AlertFiring {
		if !v.hold {
			return e.resolve(st, v.value, v.clear, v.resolved)
		}
		st.Streak++
		st.Value, st.Threshold, st.Summary = v.value, v.threshold, v.describe(st.Streak)
		e.maybeNotify(&st)
		return st
	}
	if !v.breach {
		return okState(st.Server, st.Rule)
	}
	if st.Status != monitor.AlertPending {
		st = monitor.AlertState{Server: st.Server, Rule: st.Rule, Status: monitor.AlertPending, Since: e.at}
	}
	st.Streak++
	st.Value, st.Threshold, st.Summary = v.value, v.threshold, v.describe(st.Streak)
	if st.Streak >= need {
		st.Status, st.Since, st.LastNotified = monitor.AlertFiring, e.at, time.Time{}
		e.maybeNotify(&st)
	}
	return st
}

// stepDown moves "down" by one attempt.
func (e *evaluator) stepDown(st monitor.AlertState, after int) monitor.AlertState {
	if !e.r.Failed() {
		if st.Status == monitor.AlertFiring {
			return e.resolve(st, 0, float64(after), fmt.Sprintf("up again after %s", attempts(st.Streak)))
		}
		return okState(st.Server, st.Rule)
	}
	kind := e.r.Kind
	if kind == monitor.KindOK {
		kind = monitor.KindUnreachable
	}
	changed := e.r.HostKeyChanged
	if st.Status != monitor.AlertPending && st.Status != monitor.AlertFiring {
		st = monitor.AlertState{Server: st.Server, Rule: st.Rule, Status: monitor.AlertPending, Since: e.at}
	}
	st.Streak++
	st.Kind = kind
	st.Value, st.Threshold = float64(st.Streak), float64(after)
	what := attempts(st.Streak)
	if changed {
		what = "host key changed"
	}
	st.Summary = "down: " + what + " (" + string(kind)
	if msg := cleanText(e.r.Error(), 300); msg != "" {
		st.Summary += ": " + msg
	}
	st.Summary += ")"

	switch {
	case st.Status == monitor.AlertFiring:
		if changed && !st.HostKeyChanged {
			st.HostKeyChanged = true
			st.LastNotified = time.Time{} // a changed key is news: notify now
		}
	case changed || st.Streak >= after:
		st.Status, st.Since, st.LastNotified, st.HostKeyChanged = monitor.AlertFiring, e.at, time.Time{}, changed
	default:
		return st
	}
	e.maybeNotify(&st)
	return st
}

func attempts(n int) string {
	if n == 1 {
		return "1 failed attempt"
	}
	return fmt.Sprintf("%d failed attempts", n)
}

// maybeNotify notifies a firing state when it was never notified or its
// repeat is due, unless the rule is silenced.
func (e *evaluator) maybeNotify(st *monitor.AlertState) {
	if e.silenced(st.Rule) {
		return
	}
	if !st.LastNotified.IsZero() && e.now.Sub(st.LastNotified) < e.repeat {
		return
	}
	st.LastNotified = e.now
	e.notify = append(e.notify, e.alert(*st, time.Time{}))
}

// resolve ends a firing state; the resolved alert goes out when the firing
// one did and the rule is not silenced.
func (e *evaluator) resolve(st monitor.AlertState, value, threshold float64, summary string) monitor.AlertState {
	notified := !st.LastNotified.IsZero()
	startsAt := st.Since
	st.Status, st.Streak, st.Since = monitor.AlertResolved, 0, e.at
	st.Value, st.Threshold, st.Summary = value, threshold, summary
	st.HostKeyChanged = false
	if st.Rule != RuleDown {
		st.Kind = ""
	}
	if notified && !e.silenced(st.Rule) {
		a := e.alert(st, e.at)
		a.StartsAt = startsAt
		e.notify = append(e.notify, a)
	}
	return st
}

func (e *evaluator) alert(st monitor.AlertState, endsAt time.Time) Alert {
	state := monitor.AlertFiring
	if !endsAt.IsZero() {
		state = monitor.AlertResolved
	}
	var kind monitor.Kind
	if st.Rule == RuleDown {
		kind = st.Kind
	}
	return Alert{
		Server:    st.Server,
		Rule:      st.Rule,
		State:     state,
		Value:     st.Value,
		Threshold: st.Threshold,
		Summary:   st.Summary,
		Kind:      kind,
		StartsAt:  st.Since,
		EndsAt:    endsAt,
		Labels:    Labels(st.Server, st.Rule),
	}
}

// cleanText returns s on one line, without control characters, cut to at
// most n runes: error text comes from remote hosts.
func cleanText(s string, n int) string {
	var b strings.Builder
	space := false
	count := 0
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
			count++
		}
		space = false
		if count >= n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}
