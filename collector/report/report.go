// Package report turns the stored figures of a fleet into a peak report:
// per server, the resource peaks with the matched processes running at them,
// the per-process cost and capacity they imply, and collection health,
// written as one self-contained HTML file or as JSON.
//
// The figures are pure functions of the domain types the command reads from
// the store (monitor.Rollup, monitor.Result): it adds each server's
// ServerInput to a Builder (Build does it for a whole Input at once). The
// package reads nothing itself.
package report

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// The rules behind the figures.
const (
	// DefaultThreshold is the alert threshold, in percent, used for any
	// threshold left at zero.
	DefaultThreshold = 90.0
	// MinPoints and MinDistinctProcs are the least data a fit must have
	// before the report estimates anything from it.
	MinPoints        = 10
	MinDistinctProcs = 3
	// MinR2 is the least R² of a fit the report estimates from.
	MinR2 = 0.5
	// GapLonger is the length a period without snapshots must exceed to be
	// listed as a gap.
	GapLonger = 2 * time.Hour
	// MaxGapsListed is how many of the largest gaps a server lists.
	MaxGapsListed = 5
)

// Input is what the command reads from the store for one report.
type Input struct {
	From, To  time.Time // the range; the report shows times in From's location
	Generated time.Time // when the report was made, printed in it
	// Keyword selects the processes counted at the peaks: "" counts all
	// matched processes, else only that keyword's.
	Keyword    string
	Thresholds Thresholds
	// HourlyPoints says the servers' Points are hourly means
	// (PointsFromRollups), not single snapshots; the captions say which.
	HourlyPoints bool
	Servers      []ServerInput
}

// Thresholds are alert thresholds in percent; a zero field means
// DefaultThreshold. CPU and Mem bound the capacity estimate; all three mark
// peaks over them.
type Thresholds struct {
	CPU  float64 `json:"cpu"`
	Mem  float64 `json:"mem"`
	Disk float64 `json:"disk"`
}

func (t Thresholds) withDefaults() Thresholds {
	for _, v := range []*float64{&t.CPU, &t.Mem, &t.Disk} {
		if *v <= 0 || !finite(*v) {
			*v = DefaultThreshold
		}
	}
	return t
}

// ServerInput is one server's data over the range.
type ServerInput struct {
	Name, Description string
	Tags              []string
	// Rollups are the hourly rollups in [From, To), sorted by Start; empty
	// when the server has no data.
	Rollups []monitor.Rollup
	// Points is the series for the charts and the fit (see PointsFromRollups
	// and PointsFromResults).
	Points []Point
	// Attempts counts probe attempts in the range, snapshots and failures.
	Attempts int
	// Failures counts failed attempts by kind ("unreachable", "auth", ...).
	// It comes from the raw attempts, kept for a shorter time than rollups:
	// on long ranges it may cover less than Attempts does.
	Failures map[string]int
	// LastError is the last failure's message when the server is failing
	// now, else "".
	LastError string
	// MemTotalBytes is the server's memory size, 0 when unknown; it turns
	// the per-process memory cost into bytes.
	MemTotalBytes uint64
	// Days are the server's daily rollups over the weeks before To, sorted
	// by Start, for the disk forecast (ForecastDays of them at most).
	Days []monitor.Rollup
}

// A Report holds every figure of a report. WriteHTML and WriteJSON print it.
type Report struct {
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Generated  time.Time  `json:"generated"`
	TimeZone   string     `json:"time_zone"` // the location times are shown in
	Keyword    string     `json:"keyword"`   // "" means all matched processes
	Thresholds Thresholds `json:"thresholds"`
	// HourlyPoints is set when the charts and fits use hourly means, not
	// single snapshots.
	HourlyPoints bool `json:"hourly_points"`
	// Servers are worst first: by Worst descending, servers without data
	// last, then by name.
	Servers []Server `json:"servers"`
	// Fleet totals the room for more processes per keyword.
	Fleet []FleetRoom `json:"fleet"`

	loc *time.Location
}

// Server holds one server's figures.
type Server struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	// NoData is set when the range holds no snapshot of the server.
	NoData bool `json:"no_data"`
	// Failing is set when the server's latest attempt failed.
	Failing bool `json:"failing"`
	// Worst is the highest of the CPU, memory and disk peaks, in percent:
	// the fleet's sort key.
	Worst float64 `json:"worst_percent"`
	Peaks Peaks   `json:"peaks"`
	Means Means   `json:"means"`
	// Matched is the range of all matched processes (every keyword) over
	// the snapshots, as the rollups keep it; nil without process readings.
	Matched *MatchedRange `json:"matched"`
	// Mem and CPU fit memory and CPU percent against Procs over the points.
	Mem Estimate `json:"mem_fit"`
	CPU Estimate `json:"cpu_fit"`
	// Capacity answers, per keyword, how many more processes fit.
	Capacity []Capacity `json:"capacity"`
	// Disks forecasts when each file system fills.
	Disks  []DiskForecast `json:"disks"`
	Health Health         `json:"health"`

	// points are sorted by time; the figures and the charts are made from
	// them, and they are dropped once the charts are drawn (see
	// Builder.Add), so that a report holds no more than a few servers'
	// points at a time.
	points  []Point
	allGaps []Gap  // every gap, in time order, for the charts
	charts  charts // drawn by Builder.Add
}

// charts are a server's charts, drawn as SVG.
type charts struct {
	timeSeries, scatterMem, scatterCPU string
}

// Peaks are a server's highest readings over the range; nil for a metric
// without readings.
type Peaks struct {
	CPU   *Peak `json:"cpu"`
	Mem   *Peak `json:"mem"`
	Disk  *Peak `json:"disk"`
	Load1 *Peak `json:"load1"`
}

// A Peak is the highest reading of a metric, the earliest of equal ones.
type Peak struct {
	Value float64   `json:"value"`
	At    time.Time `json:"at"`
	// Procs is the matched-process count at that snapshot: the keyword's
	// when the report has one, else all matched processes. Nil when unknown
	// (the process section failed, or the probe was not counting the
	// keyword then).
	Procs *int `json:"procs"`
	// Sampling says how the peak was seen: the highest sample of a
	// watching probe, or one reading of a one-shot probe.
	Sampling *Sampling `json:"sampling"`
}

// Means are a metric's means over all readings in the range (each hour
// weighted by its readings); nil without readings.
type Means struct {
	CPU   *float64 `json:"cpu"`
	Mem   *float64 `json:"mem"`
	Disk  *float64 `json:"disk"`
	Load1 *float64 `json:"load1"`
}

// MatchedRange sums up the matched-process total over the range.
type MatchedRange struct {
	Min  int     `json:"min"`
	Max  int     `json:"max"`
	Mean float64 `json:"mean"`
	N    int64   `json:"n"` // snapshots with a process count
}

// Status says whether a fit is good enough to estimate from, or why not.
type Status string

// The statuses of an Estimate, in the order they are checked.
const (
	StatusOK          Status = "ok"
	StatusNoData      Status = "no_data"      // no points
	StatusThin        Status = "thin"         // fewer than MinPoints points or MinDistinctProcs process counts
	StatusFlat        Status = "flat"         // usage never changes: nothing to fit
	StatusPoorFit     Status = "poor_fit"     // R² below MinR2
	StatusNotPositive Status = "not_positive" // usage does not rise with the process count
)

// An Estimate is the least-squares line of one resource's usage (percent)
// against the process count over a server's points, and what follows from
// it when Status is ok.
type Estimate struct {
	N             int `json:"n"`              // points
	DistinctProcs int `json:"distinct_procs"` // distinct process counts among them
	// Fitted is set when the line exists (the process count varies); Slope
	// (percent per process), Intercept (percent at zero processes) and R²
	// are zero otherwise. R² is 0 when the usage does not vary. SlopeSE is
	// the slope's standard error (0 with fewer than 3 points).
	Fitted    bool    `json:"fitted"`
	Slope     float64 `json:"slope"`
	SlopeSE   float64 `json:"slope_se"`
	Intercept float64 `json:"intercept"`
	R2        float64 `json:"r2"`
	Status    Status  `json:"status"`
	// The rest is set only when Status is ok.
	//
	// PerProcBytes is Slope as bytes of memory, when the memory size is
	// known (memory only).
	PerProcBytes uint64 `json:"per_process_bytes,omitempty"`
	// Headroom is how many more processes fit from the peak before the
	// threshold: floor((Threshold − Peak.Value) / Slope), at least 0.
	Headroom  int     `json:"headroom,omitempty"`
	Threshold float64 `json:"threshold,omitempty"`
	From      *Peak   `json:"from,omitempty"` // the peak the headroom starts at
}

// Health sums up collection over the range.
type Health struct {
	Attempts  int `json:"attempts"`
	Snapshots int `json:"snapshots"` // attempts that stored a snapshot, from the rollups
	// SuccessRate is Snapshots/Attempts in percent; nil without attempts.
	SuccessRate *float64       `json:"success_percent"`
	Failures    []FailureCount `json:"failures"` // by kind, most frequent first
	// Gaps are the largest periods longer than GapLonger without a snapshot,
	// largest first, at most MaxGapsListed; GapCount and GapHours cover all.
	Gaps      []Gap   `json:"gaps"`
	GapCount  int     `json:"gap_count"`
	GapHours  float64 `json:"gap_hours"`
	LastError string  `json:"last_error"`
}

// FailureCount is the number of failed attempts of one kind.
type FailureCount struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// A Gap is a period without snapshots, in whole hours clipped to the range.
type Gap struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Hours float64   `json:"hours"`
}

// FleetRoom is the room for more processes of one keyword over the fleet.
type FleetRoom struct {
	Keyword string `json:"keyword"`
	// More sums the room of the servers with an estimate, Low and High its
	// range; Servers counts them.
	More    int `json:"more"`
	Low     int `json:"low"`
	High    int `json:"high"`
	Servers int `json:"servers"`
	// Unknown names the servers that counted the keyword but have no
	// estimate.
	Unknown []string `json:"unknown"`
	// Best lists where the next processes fit best: the servers with room
	// for at least one more, the most room first (ties: the widest low
	// end, then by name), at most MaxPlacements.
	Best []Placement `json:"best"`
	// Full names the servers with an estimate and no room for one more,
	// by name.
	Full []string `json:"full"`
}

// MaxPlacements is the most servers a FleetRoom lists.
const MaxPlacements = 10

// A Placement is one server's room for more processes of a keyword.
type Placement struct {
	Server string `json:"server"`
	More   int    `json:"more"`
	Low    int    `json:"low"`
	High   int    `json:"high"`
	Limit  string `json:"limit"`
}

// fleetRooms totals the servers' capacities per keyword.
func fleetRooms(servers []Server) []FleetRoom {
	by := map[string]*FleetRoom{}
	var keys []string
	for _, s := range servers {
		for _, c := range s.Capacity {
			f := by[c.Keyword]
			if f == nil {
				f = &FleetRoom{Keyword: c.Keyword, Unknown: []string{}, Best: []Placement{}, Full: []string{}}
				by[c.Keyword] = f
				keys = append(keys, c.Keyword)
			}
			if !c.Known {
				f.Unknown = append(f.Unknown, s.Name)
				continue
			}
			f.More, f.Low, f.High = f.More+c.More, f.Low+c.Low, f.High+c.High
			f.Servers++
			if c.More == 0 {
				f.Full = append(f.Full, s.Name)
				continue
			}
			f.Best = append(f.Best, Placement{Server: s.Name, More: c.More, Low: c.Low, High: c.High, Limit: c.Limit})
		}
	}
	slices.Sort(keys)
	out := make([]FleetRoom, 0, len(keys))
	for _, k := range keys {
		f := by[k]
		slices.SortFunc(f.Best, func(a, b Placement) int {
			if c := cmp.Compare(b.More, a.More); c != 0 {
				return c
			}
			if c := cmp.Compare(b.Low, a.Low); c != 0 {
				return c
			}
			return cmp.Compare(a.Server, b.Server)
		})
		f.Best = f.Best[:min(len(f.Best), MaxPlacements)]
		slices.Sort(f.Unknown)
		slices.Sort(f.Full)
		out = append(out, *f)
	}
	return out
}

// Build computes every figure of the report. It does not modify in.
func Build(in Input) *Report {
	b := NewBuilder(in)
	for _, si := range in.Servers {
		b.Add(si)
	}
	return b.Report()
}

// A Builder computes a report one server at a time, so that a caller can
// read the servers one by one and drop each one's rollups once added. Its
// methods are safe for concurrent use; the order of Add calls does not
// change the report.
type Builder struct {
	mu sync.Mutex
	r  *Report
}

// NewBuilder starts a report over in's range and settings; in.Servers is
// ignored: add the servers with Add.
func NewBuilder(in Input) *Builder {
	loc := in.From.Location()
	return &Builder{r: &Report{
		From:         in.From,
		To:           in.To.In(loc),
		Generated:    in.Generated.In(loc),
		TimeZone:     loc.String(),
		Keyword:      in.Keyword,
		HourlyPoints: in.HourlyPoints,
		Thresholds:   in.Thresholds.withDefaults(),
		Servers:      make([]Server, 0, len(in.Servers)),
		loc:          loc,
	}}
}

// Add computes the figures of one server. It does not keep si or modify it.
func (b *Builder) Add(si ServerInput) {
	s := b.r.server(si) // reads only fields that never change after NewBuilder
	s.charts = b.r.drawCharts(&s)
	s.points = nil
	b.mu.Lock()
	b.r.Servers = append(b.r.Servers, s)
	b.mu.Unlock()
}

// Report returns the report, its servers worst first. Call it once, after
// the last Add.
func (b *Builder) Report() *Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.r
	slices.SortStableFunc(r.Servers, func(a, b Server) int {
		if a.NoData != b.NoData {
			if a.NoData {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(b.Worst, a.Worst); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	r.Fleet = fleetRooms(r.Servers)
	return r
}

func (r *Report) server(si ServerInput) Server {
	s := Server{
		Name:        si.Name,
		Description: si.Description,
		Tags:        append([]string{}, si.Tags...),
		Failing:     si.LastError != "",
	}
	var snapshots int64
	for _, ru := range si.Rollups {
		snapshots += ru.Count
	}
	s.NoData = snapshots == 0

	pick := []func(monitor.Rollup) monitor.Metric{
		func(ru monitor.Rollup) monitor.Metric { return ru.CPU },
		func(ru monitor.Rollup) monitor.Metric { return ru.Mem },
		func(ru monitor.Rollup) monitor.Metric { return ru.Disk },
		func(ru monitor.Rollup) monitor.Metric { return ru.Load1 },
	}
	peaks := []**Peak{&s.Peaks.CPU, &s.Peaks.Mem, &s.Peaks.Disk, &s.Peaks.Load1}
	means := []**float64{&s.Means.CPU, &s.Means.Mem, &s.Means.Disk, &s.Means.Load1}
	for i, f := range pick {
		*peaks[i] = r.peak(si.Rollups, f)
		*means[i] = mean(si.Rollups, f)
	}
	for _, p := range []*Peak{s.Peaks.CPU, s.Peaks.Mem, s.Peaks.Disk} {
		if p != nil {
			s.Worst = max(s.Worst, p.Value)
		}
	}
	s.Matched = matchedRange(si.Rollups)

	s.points = slices.Clone(si.Points)
	for i := range s.points {
		s.points[i].At = s.points[i].At.In(r.loc)
	}
	slices.SortStableFunc(s.points, func(a, b Point) int { return a.At.Compare(b.At) })
	s.Mem = estimate(s.points, func(p Point) float64 { return p.Mem }, s.Peaks.Mem, r.Thresholds.Mem)
	s.CPU = estimate(s.points, func(p Point) float64 { return p.CPU }, s.Peaks.CPU, r.Thresholds.CPU)
	if s.Mem.Status == StatusOK && si.MemTotalBytes > 0 {
		s.Mem.PerProcBytes = uint64(math.Round(s.Mem.Slope / 100 * float64(si.MemTotalBytes)))
	}
	roundEstimate(&s.Mem)
	roundEstimate(&s.CPU)
	s.Capacity = r.analyse(&s, si)
	s.Disks = r.diskForecasts(si.Days)

	s.allGaps = gaps(si.Rollups, r.From, r.To, r.loc)
	s.Health = health(si, int(snapshots), s.allGaps)
	return s
}

// peak returns the highest reading of a metric over the rollups, the
// earliest of equal ones, with the process count at that snapshot.
func (r *Report) peak(rs []monitor.Rollup, metric func(monitor.Rollup) monitor.Metric) *Peak {
	var best *monitor.Peak
	var bestRollup monitor.Rollup
	for _, ru := range rs {
		m := metric(ru)
		if m.N == 0 || !finite(m.Peak.Value) {
			continue
		}
		if best == nil || m.Peak.Value > best.Value || m.Peak.Value == best.Value && m.Peak.At.Before(best.At) {
			p := m.Peak
			best, bestRollup = &p, ru
		}
	}
	if best == nil {
		return nil
	}
	p := &Peak{Value: best.Value, At: best.At.In(r.loc), Sampling: sampling(*best, bestRollup)}
	if best.ProcsKnown {
		n := best.MatchedTotal
		ok := true
		if r.Keyword != "" {
			n, ok = peakKeywordCount(best.Procs, r.Keyword)
		}
		if ok {
			p.Procs = &n
		}
	}
	return p
}

func peakKeywordCount(ks []monitor.KeywordCount, keyword string) (int, bool) {
	for _, k := range ks {
		if k.Keyword == keyword {
			return k.Count, true
		}
	}
	return 0, false
}

func keywordCount(ms []snapshot.Match, keyword string) (int, bool) {
	for _, m := range ms {
		if m.Keyword == keyword {
			return m.Count, true
		}
	}
	return 0, false
}

// mean returns a metric's mean over all readings of the rollups, nil without
// readings.
func mean(rs []monitor.Rollup, metric func(monitor.Rollup) monitor.Metric) *float64 {
	var sum float64
	var n int64
	for _, ru := range rs {
		m := metric(ru)
		if m.N == 0 || !finite(m.Sum) {
			continue
		}
		sum += m.Sum
		n += m.N
	}
	if n == 0 {
		return nil
	}
	v := round6(sum / float64(n))
	return &v
}

func matchedRange(rs []monitor.Rollup) *MatchedRange {
	var m *MatchedRange
	var sum int64
	for _, ru := range rs {
		if ru.Matched.N == 0 {
			continue
		}
		if m == nil {
			m = &MatchedRange{Min: ru.Matched.Min, Max: ru.Matched.Max}
		}
		m.Min = min(m.Min, ru.Matched.Min)
		m.Max = max(m.Max, ru.Matched.Max)
		m.N += ru.Matched.N
		sum += ru.Matched.Sum
	}
	if m != nil {
		m.Mean = round6(float64(sum) / float64(m.N))
	}
	return m
}

// estimate fits usage against the process count over pts and, when the fit
// is good enough, the headroom from peak to threshold.
func estimate(pts []Point, usage func(Point) float64, peak *Peak, threshold float64) Estimate {
	xs := make([]float64, len(pts))
	ys := make([]float64, len(pts))
	for i, p := range pts {
		xs[i], ys[i] = p.Procs, usage(p)
	}
	return fitEstimate(xs, ys, peak, threshold)
}

// fitEstimate fits ys against the process counts xs and, when the fit is
// good enough and peak is not nil, the headroom from peak to threshold.
func fitEstimate(xs, ys []float64, peak *Peak, threshold float64) Estimate {
	e := Estimate{N: len(xs)}
	distinct := make(map[float64]bool)
	for _, x := range xs {
		distinct[math.Round(x*1e6)] = true
	}
	e.DistinctProcs = len(distinct)
	var flat bool
	e.Slope, e.Intercept, e.R2, e.SlopeSE, e.Fitted, flat = fitLine(xs, ys)
	switch {
	case e.N == 0:
		e.Status = StatusNoData
	case e.N < MinPoints || e.DistinctProcs < MinDistinctProcs:
		e.Status = StatusThin
	case flat:
		e.Status = StatusFlat
	case e.R2 < MinR2:
		e.Status = StatusPoorFit
	case e.Slope <= 0:
		e.Status = StatusNotPositive
	case peak == nil:
		// Points but no peak: the rollups and the points disagree (or the
		// caller asked for the fit alone).
		e.Status = StatusOK
		if threshold > 0 {
			e.Status = StatusNoData
		}
	default:
		e.Status = StatusOK
		e.Threshold = threshold
		e.From = peak
		e.Headroom = headroom(threshold, peak.Value, e.Slope)
	}
	return e
}

// headroom is how many whole processes fit between value and threshold at
// slope percent each.
func headroom(threshold, value, slope float64) int {
	h := (threshold - value) / slope
	switch {
	case h <= 0:
		return 0
	case h > 1e9:
		return 1e9
	}
	// The fit of exact data can miss an integer by an ulp.
	return int(math.Floor(h + 1e-9))
}

func roundEstimate(e *Estimate) {
	e.Slope, e.Intercept, e.R2, e.SlopeSE = round6(e.Slope), round6(e.Intercept), round6(e.R2), round6(e.SlopeSE)
}

// round6 rounds to six decimals, so that printed figures do not depend on
// the last bit of a float (which can differ between CPU architectures).
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// gaps returns the runs of hours in [from, to) without a snapshot that are
// longer than GapLonger, in time order. An hour counts as empty when its
// rollup is missing or has no snapshot.
func gaps(rs []monitor.Rollup, from, to time.Time, loc *time.Location) []Gap {
	if from.IsZero() || !from.Before(to) {
		return nil
	}
	have := make(map[int64]bool, len(rs))
	for _, ru := range rs {
		if ru.Count > 0 {
			have[ru.Start.Unix()] = true
		}
	}
	var out []Gap
	var start time.Time // of the current empty run; zero when none
	flush := func(end time.Time) {
		if start.IsZero() {
			return
		}
		if end.Sub(start) > GapLonger {
			out = append(out, Gap{From: start.In(loc), To: end.In(loc), Hours: round6(end.Sub(start).Hours())})
		}
		start = time.Time{}
	}
	for h := from.UTC().Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		if have[h.Unix()] {
			flush(h)
			continue
		}
		if start.IsZero() {
			start = h
			if start.Before(from) {
				start = from
			}
		}
	}
	flush(to)
	return out
}

func health(si ServerInput, snapshots int, all []Gap) Health {
	h := Health{Attempts: si.Attempts, LastError: si.LastError, Failures: []FailureCount{}, Gaps: []Gap{}}
	for kind, n := range si.Failures {
		if n <= 0 {
			continue
		}
		h.Failures = append(h.Failures, FailureCount{Kind: kind, Count: n})
	}
	slices.SortFunc(h.Failures, func(a, b FailureCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Kind, b.Kind)
	})
	h.Snapshots = snapshots
	if si.Attempts > 0 {
		rate := round6(float64(h.Snapshots) / float64(si.Attempts) * 100)
		h.SuccessRate = &rate
	}
	h.GapCount = len(all)
	for _, g := range all {
		h.GapHours += g.Hours
	}
	h.GapHours = round6(h.GapHours)
	largest := slices.Clone(all)
	slices.SortStableFunc(largest, func(a, b Gap) int { return cmp.Compare(b.Hours, a.Hours) })
	h.Gaps = append(h.Gaps, largest[:min(len(largest), MaxGapsListed)]...)
	return h
}
