package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/crawlerfleet/collector/monitor"
)

// Saturation criteria. A reading (a snapshot, or an hour's means on long
// ranges) is saturated for a resource when:
//
//   - CPU: busy ≥ CPUBusySaturated and either the run queue ≥
//     RunQueueSaturated per CPU or CPU pressure ("some") ≥
//     CPUPressureSaturated (version-1 snapshots, without either, use load1
//     per CPU for the run queue);
//   - memory: available ≤ MemAvailSaturated, or swap paging ≥
//     SwapPagesSaturated, or memory pressure ≥ MemPressureSaturated;
//   - file descriptors: file handles in use ≥ FDSaturated of the limit;
//   - a file system: its latest reading at or above the disk threshold.
//
// A process count is saturated for CPU, memory or descriptors when at
// least SaturatedShare of the readings at that count are, and at least two
// of them (or its only reading); the smallest saturated count is the
// resource's ceiling, whatever the fits say.
const (
	// CPUBusySaturated is the busy percent of all CPUs from which a CPU
	// can be saturated.
	CPUBusySaturated = 95.0
	// RunQueueSaturated is the runnable tasks per logical CPU (the probe
	// left out) that, with the CPUs busy, means tasks wait for a CPU.
	RunQueueSaturated = 1.0
	// CPUPressureSaturated is the percent of time some task waited for a
	// CPU that, with the CPUs busy, means saturation.
	CPUPressureSaturated = 20.0
	// MemAvailSaturated is the percent of memory available to new
	// processes at or below which memory is saturated.
	MemAvailSaturated = 5.0
	// SwapPagesSaturated is the pages swapped in and out per second (1 MiB/s
	// of 4 KiB pages) from which memory is saturated: the working set no
	// longer fits.
	SwapPagesSaturated = 256.0
	// MemPressureSaturated is the percent of time some task stalled on
	// memory (reclaim, swap-in, refaults) from which memory is saturated.
	MemPressureSaturated = 10.0
	// FDSaturated is the percent of the system's file handle limit in use
	// from which file descriptors are saturated.
	FDSaturated = 90.0
	// SaturatedShare is the least share of a count's readings that must be
	// saturated for the count to be.
	SaturatedShare = 0.5
	// NegligibleCost is the cost per process, in percent of a resource,
	// below which the resource does not limit the count.
	NegligibleCost = 0.01
	// MaxCapacityKeywords is the most keywords a server gets a capacity
	// for (the keywords with the most processes).
	MaxCapacityKeywords = 5
	// MinThroughputCounts is the fewest distinct process counts a
	// throughput fit is made from.
	MinThroughputCounts = 5
)

// A Capacity answers "how many more processes of a keyword fit on this
// server?": each resource's ceiling, and the smallest of them.
type Capacity struct {
	Keyword string `json:"keyword"`
	// Headline says it in one line: "+14 python (11–17), limited by
	// memory", "none: CPU saturated at 15 python (...)", or "no estimate:
	// ...".
	Headline string `json:"headline"`
	// Known is set when some resource gives a ceiling; More, Low, High,
	// Total and Limit only then.
	Known bool `json:"known"`
	// Now is the keyword's count at the latest reading, MaxSeen the most
	// ever counted in the range.
	Now     int `json:"now"`
	MaxSeen int `json:"max_seen"`
	// More is Total − Now, at least 0; Low and High its range (from each
	// resource's pessimistic and optimistic cost).
	More int `json:"more"`
	Low  int `json:"low"`
	High int `json:"high"`
	// Total is the ceiling: the smallest of the resources' ceilings.
	Total int `json:"total"`
	// Limit names the resource whose ceiling is Total ("cpu", "memory",
	// "fd", "disk /path", "network"); Saturated is set when that ceiling is
	// a saturation seen in the data rather than a projection.
	Limit     string `json:"limit,omitempty"`
	Saturated bool   `json:"saturated"`
	// Resources holds every resource looked at, CPU and memory first.
	Resources  []Resource  `json:"resources"`
	Throughput *Throughput `json:"throughput"`
	// Unknown lists the CPU or memory when neither a fit nor a measured
	// cost exists for it, with why: the estimate may then be too high.
	Unknown []string `json:"unknown"`
}

// A Resource is one resource's ceiling for a keyword's processes.
type Resource struct {
	Name  string `json:"name"`  // cpu, memory, fd, disk <path>, network
	Label string `json:"label"` // as the report prints it
	// Threshold is where the projection stops, in percent.
	Threshold float64 `json:"threshold,omitempty"`
	// Peak is the resource's highest reading with the keyword's count at
	// it: the projection starts there. A file system's is its latest
	// reading instead (how full it is now decides; the disk forecast
	// projects its growth).
	Peak *Peak `json:"peak"`
	// Measured is the cost of one process as the probe measured the
	// group (its resident memory or CPU divided by its count), nil when
	// there is none (descriptors, file systems, network, or no readings).
	Measured *Measured `json:"measured"`
	// Fitted is the least-squares line of usage against the keyword's
	// count over the readings where the resource was not saturated.
	Fitted *Estimate `json:"fitted"`
	// Cost is the percent of the resource one more process takes: the
	// larger (more conservative) of the fitted slope and the measured
	// median; CostHigh and CostLow bound it (the measured 95th percentile
	// and the fit's slope ± 2 standard errors).
	Cost     float64 `json:"cost"`
	CostLow  float64 `json:"cost_low"`
	CostHigh float64 `json:"cost_high"`
	// Ceiling is the most processes the resource allows, with its range
	// (CeilingLow from CostHigh, CeilingHigh from CostLow); nil when it
	// does not limit the count (negligible cost) or is unknown (Note says
	// why).
	Ceiling     *int `json:"ceiling"`
	CeilingLow  *int `json:"ceiling_low"`
	CeilingHigh *int `json:"ceiling_high"`
	// Saturation is set when the resource was saturated at some count.
	Saturation *Saturation `json:"saturation"`
	Note       string      `json:"note,omitempty"`
}

// Measured is a per-process cost as the probe measured it, over the
// readings with at least one process of the keyword.
type Measured struct {
	Median float64 `json:"median"` // percent of the resource per process
	P95    float64 `json:"p95"`
	N      int     `json:"n"`
	// MedianBytes and P95Bytes are the memory costs in bytes.
	MedianBytes uint64 `json:"median_bytes,omitempty"`
	P95Bytes    uint64 `json:"p95_bytes,omitempty"`
}

// Saturation is where a resource was saturated.
type Saturation struct {
	Count int `json:"count"` // the smallest saturated count
	// Readings and Saturated count the readings at Count and those of
	// them that were saturated.
	Readings  int `json:"readings"`
	Saturated int `json:"saturated"`
	// Figures are the means, over the saturated readings at Count, of what
	// made them saturated; Detail prints them.
	Figures map[string]float64 `json:"figures"`
	Detail  string             `json:"detail"`
}

// analyse computes the capacity of each keyword of s (the report's keyword,
// else the keywords with the most processes).
func (r *Report) analyse(s *Server, si ServerInput) []Capacity {
	var keywords []string
	if r.Keyword != "" {
		keywords = []string{r.Keyword}
	} else {
		most := map[string]float64{}
		for _, p := range s.points {
			for _, k := range p.Keywords {
				most[k.Keyword] = math.Max(most[k.Keyword], k.Count)
			}
		}
		for k := range most {
			keywords = append(keywords, k)
		}
		slices.SortFunc(keywords, func(a, b string) int {
			if c := cmp.Compare(most[b], most[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		keywords = keywords[:min(len(keywords), MaxCapacityKeywords)]
	}
	out := make([]Capacity, 0, len(keywords))
	for _, k := range keywords {
		out = append(out, r.capacity(s, si, k))
	}
	return out
}

// kpoint is a point with one keyword's figures.
type kpoint struct {
	p *Point
	k monitor.KeywordPoint
}

func (r *Report) capacity(s *Server, si ServerInput, keyword string) Capacity {
	c := Capacity{Keyword: keyword, Resources: []Resource{}, Unknown: []string{}}
	var kps []kpoint
	for i := range s.points {
		if k, ok := s.points[i].Keyword(keyword); ok && finite(k.Count) {
			kps = append(kps, kpoint{&s.points[i], k})
		}
	}
	if len(kps) == 0 {
		c.Headline = fmt.Sprintf("no estimate: no reading counted %s processes", shorten(keyword, 40))
		return c
	}
	c.Now = int(math.Round(kps[len(kps)-1].k.Count))
	for _, kp := range kps {
		c.MaxSeen = max(c.MaxSeen, int(math.Round(kp.k.Count)))
	}

	cpu := r.resource(kps, resourceSpec{
		name: "cpu", label: "CPU", threshold: r.Thresholds.CPU,
		usage:    func(p *Point) float64 { return p.CPU },
		peak:     r.peakFor(si.Rollups, func(ru monitor.Rollup) monitor.Metric { return ru.CPU }, keyword),
		measured: cpuPerProcess,
		sat:      cpuSaturated, detail: cpuDetail,
	})
	mem := r.resource(kps, resourceSpec{
		name: "memory", label: "memory", threshold: r.Thresholds.Mem,
		usage:    func(p *Point) float64 { return p.Mem },
		peak:     r.peakFor(si.Rollups, func(ru monitor.Rollup) monitor.Metric { return ru.Mem }, keyword),
		measured: memPerProcess,
		sat:      memSaturated, detail: memDetail,
	})
	if m := mem.Measured; m != nil {
		total := float64(memTotal(kps))
		m.MedianBytes, m.P95Bytes = uint64(m.Median/100*total), uint64(m.P95/100*total)
	}
	c.Resources = append(c.Resources, cpu, mem)
	for _, res := range []Resource{cpu, mem} {
		if res.Ceiling == nil && res.Note != "" {
			c.Unknown = append(c.Unknown, res.Label+": "+res.Note)
		}
	}
	if fd := r.resource(kps, resourceSpec{
		name: "fd", label: "file descriptors", threshold: FDSaturated,
		usage:  func(p *Point) float64 { return p.FDUsed },
		peak:   r.peakFor(si.Rollups, func(ru monitor.Rollup) monitor.Metric { return ru.FDUsed }, keyword),
		sat:    func(p *Point) bool { return p.FDUsed >= FDSaturated },
		detail: fdDetail,
	}); fd.Peak != nil || fd.Saturation != nil {
		c.Resources = append(c.Resources, fd)
	}
	c.Resources = append(c.Resources, r.filesystems(kps, c.Now)...)
	c.Throughput = throughput(kps)
	if t := c.Throughput; t != nil && t.KneeVisible {
		n := int(math.Floor(*t.Knee))
		c.Resources = append(c.Resources, Resource{Name: "network", Label: "network throughput",
			Ceiling: &n, CeilingLow: &n, CeilingHigh: &n, Note: t.Text})
	}

	var bind *Resource
	low, high := math.MaxInt, math.MaxInt
	for i := range c.Resources {
		res := &c.Resources[i]
		if res.Ceiling == nil {
			continue
		}
		if bind == nil || *res.Ceiling < *bind.Ceiling || *res.Ceiling == *bind.Ceiling && res.Saturation != nil && bind.Saturation == nil {
			bind = res
		}
		low, high = min(low, *res.CeilingLow), min(high, *res.CeilingHigh)
	}
	if bind == nil {
		var why []string
		for _, res := range []Resource{cpu, mem} {
			note := res.Note
			if note == "" {
				note = "its cost per process is negligible"
			}
			why = append(why, res.Label+": "+note)
		}
		c.Headline = "no estimate: " + strings.Join(why, "; ")
		return c
	}
	c.Known, c.Total, c.Limit, c.Saturated = true, *bind.Ceiling, bind.Name, bind.Saturation != nil
	c.More = max(c.Total-c.Now, 0)
	c.Low, c.High = max(low-c.Now, 0), max(high-c.Now, 0)
	c.Low, c.High = min(c.Low, c.More), max(c.High, c.More)
	c.Headline = headline(c, bind)
	return c
}

func headline(c Capacity, bind *Resource) string {
	kw := shorten(c.Keyword, 40)
	if sat := bind.Saturation; sat != nil && strings.HasPrefix(bind.Name, "disk ") {
		what := fmt.Sprintf("%s is %s %% full, at or over its %s %% threshold", bind.Label, num(sat.Figures["used_percent"]), num(bind.Threshold))
		if c.More == 0 {
			return "none: " + what
		}
		return fmt.Sprintf("+%d %s, limited by %s", c.More, kw, what)
	}
	if sat := bind.Saturation; sat != nil {
		what := fmt.Sprintf("%s saturated at %d %s", bind.Label, sat.Count, kw)
		if sat.Detail != "" {
			what += " (" + sat.Detail + ")"
		}
		if bind.Name == "network" {
			what = bind.Note
		}
		if c.More == 0 {
			return "none: " + what
		}
		return fmt.Sprintf("+%d %s, limited by %s", c.More, kw, what)
	}
	if bind.Name == "network" {
		if c.More == 0 {
			return "none: " + bind.Note
		}
		return fmt.Sprintf("+%d %s, limited by network throughput: %s", c.More, kw, bind.Note)
	}
	if c.More == 0 {
		return fmt.Sprintf("none: %s reaches its %s %% threshold at %d %s", bind.Label, num(bind.Threshold), c.Total, kw)
	}
	rng := ""
	if c.Low != c.More || c.High != c.More {
		rng = fmt.Sprintf(" (%d–%d)", c.Low, c.High)
	}
	return fmt.Sprintf("+%d %s%s, limited by %s", c.More, kw, rng, bind.Label)
}

// resourceSpec says how to read one resource.
type resourceSpec struct {
	name, label string
	threshold   float64
	usage       func(*Point) float64
	peak        *Peak
	// measured is one process's cost at a reading, in percent of the
	// resource; nil: none is measured.
	measured func(kpoint) (float64, bool)
	sat      func(*Point) bool
	detail   func([]kpoint) (map[string]float64, string)
}

func (r *Report) resource(kps []kpoint, sp resourceSpec) Resource {
	res := Resource{Name: sp.name, Label: sp.label, Threshold: sp.threshold, Peak: sp.peak}
	res.Saturation = saturation(kps, sp.sat, sp.detail)

	// The fit, over the readings where the resource was not saturated:
	// a pegged resource stops growing with the count and would flatten
	// the line.
	var xs, ys []float64
	var ref *kpoint // the highest reading, when the peak has no count
	for i, kp := range kps {
		u := sp.usage(kp.p)
		if !finite(u) {
			continue
		}
		if ref == nil || u > sp.usage(ref.p) {
			ref = &kps[i]
		}
		if sp.sat(kp.p) {
			continue
		}
		xs, ys = append(xs, kp.k.Count), append(ys, u)
	}
	if ref == nil {
		res.Note = "no readings"
		return res
	}
	fit := fitEstimate(xs, ys, nil, 0)
	roundEstimate(&fit)
	res.Fitted = &fit
	if sp.measured != nil {
		var costs []float64
		for _, kp := range kps {
			if v, ok := sp.measured(kp); ok {
				costs = append(costs, v)
			}
		}
		if len(costs) > 0 {
			slices.Sort(costs)
			res.Measured = &Measured{Median: round6(quantile(costs, 0.5)), P95: round6(quantile(costs, 0.95)), N: len(costs)}
		}
	}

	// The cost: the more conservative of the two sources, and its range.
	var central, lows, highs []float64
	if fit.Status == StatusOK {
		central = append(central, fit.Slope)
		lows = append(lows, math.Max(fit.Slope-2*fit.SlopeSE, fit.Slope/2))
		highs = append(highs, fit.Slope+2*fit.SlopeSE)
	}
	if m := res.Measured; m != nil {
		central, lows, highs = append(central, m.Median), append(lows, m.Median), append(highs, m.P95)
	}
	nRef, uRef := ref.k.Count, sp.usage(ref.p)
	if p := sp.peak; p != nil && p.Procs != nil {
		nRef, uRef = float64(*p.Procs), p.Value
	}
	if len(central) > 0 {
		res.Cost = round6(slices.Max(central))
		res.CostLow = round6(math.Min(slices.Min(lows), res.Cost))
		res.CostHigh = round6(math.Max(slices.Max(highs), res.Cost))
		res.Ceiling = ceiling(nRef, uRef, sp.threshold, res.Cost)
		res.CeilingLow = ceiling(nRef, uRef, sp.threshold, res.CostHigh)
		res.CeilingHigh = ceiling(nRef, uRef, sp.threshold, res.CostLow)
		switch {
		case res.Ceiling == nil:
			res.CeilingLow, res.CeilingHigh = nil, nil
		case res.CeilingHigh == nil:
			// The optimistic cost is negligible: the range stops at the
			// central ceiling rather than at no limit.
			res.CeilingHigh = res.Ceiling
		}
	} else {
		res.Note = r.outcomeText(fit, sp.label) + " and no measured cost"
	}
	if s := res.Saturation; s != nil {
		n := s.Count
		res.Ceiling, res.CeilingLow, res.CeilingHigh = &n, &n, &n
		res.Note = ""
	}
	return res
}

// ceiling is the count at which usage reaches threshold, at cost a process
// from nRef processes using uRef; nil when the cost is negligible.
func ceiling(nRef, uRef, threshold, cost float64) *int {
	if !(cost >= NegligibleCost) {
		return nil
	}
	n := nRef + math.Max(threshold-uRef, 0)/cost
	if n > 1e6 {
		return nil
	}
	v := int(math.Floor(n + 1e-9))
	return &v
}

// saturation returns the smallest count at which the resource was
// saturated, or nil.
func saturation(kps []kpoint, sat func(*Point) bool, detail func([]kpoint) (map[string]float64, string)) *Saturation {
	type tally struct {
		all int
		sat []kpoint
	}
	by := map[int]*tally{}
	for _, kp := range kps {
		n := int(math.Round(kp.k.Count))
		t := by[n]
		if t == nil {
			t = &tally{}
			by[n] = t
		}
		t.all++
		if sat(kp.p) {
			t.sat = append(t.sat, kp)
		}
	}
	var best *Saturation
	for n, t := range by {
		if len(t.sat) == 0 || float64(len(t.sat)) < SaturatedShare*float64(t.all) || len(t.sat) < min(2, t.all) {
			continue
		}
		if best != nil && n >= best.Count {
			continue
		}
		best = &Saturation{Count: n, Readings: t.all, Saturated: len(t.sat)}
		best.Figures, best.Detail = detail(t.sat)
	}
	return best
}

// cpuSaturated tests a reading against the CPU criteria.
func cpuSaturated(p *Point) bool {
	if !(p.CPU >= CPUBusySaturated) {
		return false
	}
	return runQueue(p) >= RunQueueSaturated || p.PressureCPU >= CPUPressureSaturated
}

// runQueue is the run queue per CPU, or for a reading without one (and
// without pressure: schema version 1) load1 per CPU.
func runQueue(p *Point) float64 {
	if monitor.Known(p.RunQueue) || monitor.Known(p.PressureCPU) || p.CPUs <= 0 {
		return p.RunQueue
	}
	return p.Load1 / float64(p.CPUs)
}

func memSaturated(p *Point) bool {
	return p.MemAvail <= MemAvailSaturated || p.SwapPages >= SwapPagesSaturated || p.PressureMem >= MemPressureSaturated
}

// meanOf is the mean of f over kps' known readings, NaN without any.
func meanOf(kps []kpoint, f func(*Point) float64) float64 {
	var sum float64
	n := 0
	for _, kp := range kps {
		if v := f(kp.p); finite(v) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// figures gathers the known means of named figures into a map and a text.
func figures(kps []kpoint, parts ...figure) (map[string]float64, string) {
	m := map[string]float64{}
	var text []string
	for _, f := range parts {
		v := meanOf(kps, f.read)
		if !finite(v) {
			continue
		}
		m[f.name] = round6(v)
		text = append(text, fmt.Sprintf(f.format, v))
	}
	return m, strings.Join(text, ", ")
}

type figure struct {
	name, format string
	read         func(*Point) float64
}

func cpuDetail(kps []kpoint) (map[string]float64, string) {
	return figures(kps,
		figure{"busy_percent", "busy %.0f %%", func(p *Point) float64 { return p.CPU }},
		figure{"run_queue_per_cpu", "run queue %.1f per CPU", runQueue},
		figure{"cpu_pressure_percent", "CPU pressure %.0f %%", func(p *Point) float64 { return p.PressureCPU }})
}

func memDetail(kps []kpoint) (map[string]float64, string) {
	return figures(kps,
		figure{"available_percent", "available %.1f %%", func(p *Point) float64 { return p.MemAvail }},
		figure{"swap_pages_per_second", "swapping %.0f pages/s", func(p *Point) float64 { return p.SwapPages }},
		figure{"memory_pressure_percent", "memory pressure %.0f %%", func(p *Point) float64 { return p.PressureMem }})
}

func fdDetail(kps []kpoint) (map[string]float64, string) {
	return figures(kps, figure{"fd_used_percent", "file handles %.0f %% of the limit", func(p *Point) float64 { return p.FDUsed }})
}

// cpuPerProcess is one process's CPU at a reading, in percent of all CPUs.
func cpuPerProcess(kp kpoint) (float64, bool) {
	if kp.k.Count <= 0 || kp.p.CPUs <= 0 || !finite(kp.k.CPUPercent) {
		return 0, false
	}
	return kp.k.CPUPercent / kp.k.Count / float64(kp.p.CPUs), true
}

// memPerProcess is one process's resident memory at a reading, in percent
// of the memory size.
func memPerProcess(kp kpoint) (float64, bool) {
	if kp.k.Count <= 0 || kp.p.MemTotal == 0 || !finite(kp.k.RSSBytes) {
		return 0, false
	}
	return kp.k.RSSBytes / kp.k.Count / float64(kp.p.MemTotal) * 100, true
}

// memTotal is the memory size at the latest reading that has it.
func memTotal(kps []kpoint) uint64 {
	for i := len(kps) - 1; i >= 0; i-- {
		if t := kps[i].p.MemTotal; t > 0 {
			return t
		}
	}
	return 0
}

// quantile returns the q-quantile of sorted values, interpolated.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 1 {
		return sorted[0]
	}
	pos := q * float64(len(sorted)-1)
	i := int(math.Floor(pos))
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

// filesystems are the file systems of the latest reading: one at or above
// the disk threshold stops any more processes (its ceiling is the count
// now); the others do not limit the count.
func (r *Report) filesystems(kps []kpoint, now int) []Resource {
	var out []Resource
	last := kps[len(kps)-1].p
	fs := last.Filesystems
	if len(fs) == 0 && finite(last.Disk) {
		fs = []monitor.FilesystemUsage{{Path: "/", UsedPercent: last.Disk}}
	}
	for _, f := range fs {
		n := now
		res := Resource{Name: "disk " + f.Path, Label: "disk " + f.Path, Threshold: r.Thresholds.Disk,
			Peak: &Peak{Value: round6(f.UsedPercent), At: last.At.In(r.loc), Procs: &n}}
		if f.UsedPercent >= r.Thresholds.Disk {
			n := now
			res.Ceiling, res.CeilingLow, res.CeilingHigh = &n, &n, &n
			res.Saturation = &Saturation{Count: now, Readings: 1, Saturated: 1,
				Figures: map[string]float64{"used_percent": round6(f.UsedPercent)},
				Detail:  fmt.Sprintf("%s %.0f %% full", f.Path, f.UsedPercent)}
		}
		out = append(out, res)
	}
	return out
}

// peakFor returns the highest reading of a metric over the rollups, the
// earliest of equal ones, with keyword's count at that snapshot.
func (r *Report) peakFor(rs []monitor.Rollup, metric func(monitor.Rollup) monitor.Metric, keyword string) *Peak {
	var best *monitor.Peak
	for _, ru := range rs {
		m := metric(ru)
		if m.N == 0 || !finite(m.Peak.Value) {
			continue
		}
		if best == nil || m.Peak.Value > best.Value || m.Peak.Value == best.Value && m.Peak.At.Before(best.At) {
			p := m.Peak
			best = &p
		}
	}
	if best == nil {
		return nil
	}
	p := &Peak{Value: round6(best.Value), At: best.At.In(r.loc)}
	if best.ProcsKnown {
		if n, ok := peakKeywordCount(best.Procs, keyword); ok {
			p.Procs = &n
		}
	}
	return p
}
