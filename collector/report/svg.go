package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxDrawPoints bounds the points drawn per series; the figures use all.
const maxDrawPoints = 600

// The SVG charts are written here rather than by the template: they are
// mostly numbers. Every string that reaches them goes through esc.

// esc escapes s for SVG text and attribute values.
func esc(s string) string { return html.EscapeString(s) }

// num prints a coordinate or an axis value briefly: at most one decimal.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// frame is a chart's plot area in SVG units.
type frame struct{ x, y, w, h float64 }

func (f frame) right() float64  { return f.x + f.w }
func (f frame) bottom() float64 { return f.y + f.h }

// xy is one drawn value at a time.
type xy struct {
	t time.Time
	v float64
}

// series returns the values of pts within [from, to] as line segments: a
// segment ends where two points are more than GapLonger apart. With more than
// maxDrawPoints points it keeps the lowest and highest value of each of
// maxDrawPoints/2 time buckets, so spikes survive the thinning.
func series(pts []Point, from, to time.Time, val func(*Point) float64) [][]xy {
	inRange := 0
	for i := range pts {
		if at := pts[i].At; !at.Before(from) && !at.After(to) {
			inRange++
		}
	}
	// Thinned, a group is the points of one time bucket within a segment;
	// unthinned, each point is a group of its own.
	width := time.Duration(0)
	if inRange > maxDrawPoints {
		width = max(to.Sub(from)/(maxDrawPoints/2), 1)
	}
	var segs [][]xy
	var seg []xy
	var lo, hi xy    // the group's lowest and highest value, the first of equals
	var loI, hiI int // their places in pts
	var bucket time.Duration
	n := 0 // points in the group
	flush := func() {
		switch {
		case n == 0:
		case loI == hiI:
			seg = append(seg, lo)
		case loI < hiI:
			seg = append(seg, lo, hi)
		default:
			seg = append(seg, hi, lo)
		}
		n = 0
	}
	var last time.Time
	for i := range pts {
		p := &pts[i]
		if p.At.Before(from) || p.At.After(to) {
			continue
		}
		v := xy{p.At, val(p)}
		if (seg != nil || n > 0) && p.At.Sub(last) > GapLonger {
			flush()
			segs = append(segs, seg)
			seg = nil
		}
		last = p.At
		if width == 0 {
			seg = append(seg, v)
			continue
		}
		if b := p.At.Sub(from) / width; n == 0 || b != bucket {
			flush()
			bucket, lo, hi, loI, hiI, n = b, v, v, i, i, 1
			continue
		}
		n++
		if v.v < lo.v {
			lo, loI = v, i
		}
		if v.v > hi.v {
			hi, hiI = v, i
		}
	}
	flush()
	if seg != nil {
		segs = append(segs, seg)
	}
	return segs
}

// linePath draws segments as one path; a lone point becomes a dot (the
// stroke has round caps).
func linePath(segs [][]xy, x func(time.Time) float64, y func(float64) float64) string {
	var b strings.Builder
	for _, seg := range segs {
		for i, p := range seg {
			if i == 0 {
				b.WriteString("M")
			} else {
				b.WriteString("L")
			}
			b.WriteString(num(x(p.t)) + " " + num(y(p.v)))
		}
		if len(seg) == 1 {
			b.WriteString("h0")
		}
	}
	return b.String()
}

// areaPath fills each segment down to base.
func areaPath(segs [][]xy, x func(time.Time) float64, y func(float64) float64, base float64) string {
	var b strings.Builder
	for _, seg := range segs {
		if len(seg) < 2 {
			continue
		}
		b.WriteString("M" + num(x(seg[0].t)) + " " + num(base))
		for _, p := range seg {
			b.WriteString("L" + num(x(p.t)) + " " + num(y(p.v)))
		}
		b.WriteString("L" + num(x(seg[len(seg)-1].t)) + " " + num(base) + "Z")
	}
	return b.String()
}

// niceTicks returns axis ticks from 0 to at least top, at a step of 1, 2 or
// 5 times a power of ten, at most five intervals. Counts get whole steps.
func niceTicks(top float64, whole bool) []float64 {
	if !(top > 0) || !finite(top) {
		top = 1
	}
	raw := top / 5
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step := pow * 10
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			step = m * pow
			break
		}
	}
	if whole && step < 1 {
		step = 1
	}
	n := int(math.Ceil(top/step - 1e-9))
	ticks := make([]float64, n+1)
	for i := range ticks {
		ticks[i] = round6(float64(i) * step)
	}
	return ticks
}

// timeTicks returns tick times within [from, to] in loc at a calendar step
// that gives at most eight ticks, and the layout to print them with: steps
// of seconds, minutes and hours on whole steps of the local clock (the
// hour's start, or the day's for hours), then of days from local midnight.
func timeTicks(from, to time.Time, loc *time.Location) ([]time.Time, string) {
	span := to.Sub(from)
	if from.IsZero() || span <= 0 {
		return nil, ""
	}
	const most = 8
	var ticks []time.Time
	f := from.In(loc)
	for _, step := range []time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	} {
		if span/step > most {
			continue
		}
		// The first tick: the local hour's start for steps within the
		// hour, the hour itself for steps of hours, then on by step.
		t := time.Date(f.Year(), f.Month(), f.Day(), f.Hour(), 0, 0, 0, loc)
		if step < time.Hour {
			if n := (from.Sub(t) + step - 1) / step; n > 0 {
				t = t.Add(n * step)
			}
		} else {
			h := int(step / time.Hour)
			for t.Before(from) || t.Hour()%h != 0 {
				t = t.Add(time.Hour)
			}
		}
		for ; !t.After(to); t = t.Add(step) {
			ticks = append(ticks, t)
		}
		switch {
		case step < time.Minute:
			return ticks, "15:04:05"
		case step < time.Hour:
			return ticks, "15:04"
		}
		return ticks, "Jan 2 15:04"
	}
	days := []int{1, 2, 7, 14, 28, 56, 91, 182, 364}
	for _, d := range days {
		if span/(time.Duration(d)*24*time.Hour) > most && d != days[len(days)-1] {
			continue
		}
		t := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, loc)
		if t.Before(from) {
			t = t.AddDate(0, 0, 1)
		}
		for ; !t.After(to); t = t.AddDate(0, 0, d) {
			ticks = append(ticks, t)
		}
		break
	}
	return ticks, "Jan 2"
}

// procsNoun names the counted processes: `"python" processes` or
// "matched processes".
func procsNoun(keyword string) string {
	if keyword == "" {
		return "matched processes"
	}
	return "“" + shorten(keyword, 40) + "” processes"
}

// shorten cuts s to at most n runes, marking the cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// textWidth guesses the width of s at the charts' 11px font.
func textWidth(s string) float64 { return float64(utf8.RuneCountInString(s)) * 6.2 }

// dataSpan returns the part of [from, to] that s's points and peaks cover,
// so that a chart spans the data actually present; [from, to] itself when
// there is none (or one instant).
func dataSpan(s *Server, from, to time.Time) (time.Time, time.Time) {
	var lo, hi time.Time
	see := func(t time.Time) {
		if t.Before(from) || t.After(to) {
			return
		}
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if hi.IsZero() || t.After(hi) {
			hi = t
		}
	}
	for i := range s.points {
		p := &s.points[i]
		see(p.At)
	}
	for _, p := range []*Peak{s.Peaks.CPU, s.Peaks.Mem} {
		if p != nil {
			see(p.At)
		}
	}
	if lo.IsZero() || !hi.After(lo) {
		return from, to
	}
	// A margin of 2 % on each side keeps the first and last marks off the axes.
	pad := hi.Sub(lo) / 50
	lo, hi = lo.Add(-pad), hi.Add(pad)
	if lo.Before(from) {
		lo = from
	}
	if hi.After(to) {
		hi = to
	}
	return lo, hi
}

// timeSeriesSVG draws CPU and memory percent (left axis, 0–100) and the
// process count (right axis) over the span of the data in the range, with
// the peaks, thresholds and gaps marked.
func (r *Report) timeSeriesSVG(s *Server) string {
	const width, height = 960.0, 300.0
	f := frame{x: 44, y: 30, w: width - 44 - 44, h: height - 30 - 28}
	from, to := dataSpan(s, r.From, r.To)
	span := to.Sub(from).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 {
		return f.x + math.Min(math.Max(t.Sub(from).Seconds()/span, 0), 1)*f.w
	}
	yPct := func(v float64) float64 { return f.y + (1-math.Min(math.Max(v, 0), 100)/100)*f.h }
	top := 0.0
	for i := range s.points {
		p := &s.points[i]
		top = math.Max(top, p.Procs)
	}
	for _, p := range []*Peak{s.Peaks.CPU, s.Peaks.Mem} {
		if p != nil && p.Procs != nil {
			top = math.Max(top, float64(*p.Procs))
		}
	}
	pticks := niceTicks(top, true)
	ptop := pticks[len(pticks)-1]
	yProcs := func(v float64) float64 { return f.y + (1-v/ptop)*f.h }
	noun := procsNoun(r.Keyword)

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart ts" viewBox="0 0 %s %s" role="img" aria-label="%s">`,
		num(width), num(height), esc("CPU, memory and "+noun+" of "+s.Name+" over time"))
	for _, g := range s.allGaps {
		if !g.To.After(from) || !g.From.Before(to) {
			continue // outside the span drawn
		}
		fmt.Fprintf(&b, `<rect class="gap" x="%s" y="%s" width="%s" height="%s"><title>%s</title></rect>`,
			num(x(g.From)), num(f.y), num(math.Max(x(g.To)-x(g.From), 1)), num(f.h),
			esc("no snapshots "+g.From.Format("Jan 2 15:04")+" – "+g.To.Format("Jan 2 15:04")))
	}
	for _, v := range []float64{0, 25, 50, 75, 100} {
		fmt.Fprintf(&b, `<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>`, num(f.x), num(f.right()), num(yPct(v)), num(yPct(v)))
		fmt.Fprintf(&b, `<text class="ax" x="%s" y="%s" text-anchor="end">%s %%</text>`, num(f.x-6), num(yPct(v)+4), num(v))
	}
	for _, v := range pticks {
		fmt.Fprintf(&b, `<text class="ax procs-t" x="%s" y="%s">%s</text>`, num(f.right()+6), num(yProcs(v)+4), num(v))
	}
	ticks, layout := timeTicks(from, to, r.loc)
	for _, t := range ticks {
		fmt.Fprintf(&b, `<line class="tick" x1="%s" x2="%s" y1="%s" y2="%s"/>`, num(x(t)), num(x(t)), num(f.bottom()), num(f.bottom()+4))
		fmt.Fprintf(&b, `<text class="ax" x="%s" y="%s" text-anchor="middle">%s</text>`, num(x(t)), num(f.bottom()+17), esc(t.Format(layout)))
	}
	procs := series(s.points, from, to, func(p *Point) float64 { return p.Procs })
	fmt.Fprintf(&b, `<path class="area procs" d="%s"/>`, areaPath(procs, x, yProcs, f.bottom()))
	fmt.Fprintf(&b, `<path class="line procs" d="%s"/>`, linePath(procs, x, yProcs))
	fmt.Fprintf(&b, `<path class="line mem" d="%s"/>`, linePath(series(s.points, from, to, func(p *Point) float64 { return p.Mem }), x, yPct))
	fmt.Fprintf(&b, `<path class="line cpu" d="%s"/>`, linePath(series(s.points, from, to, func(p *Point) float64 { return p.CPU }), x, yPct))
	thresholds := []struct {
		v     float64
		label string
	}{{r.Thresholds.Mem, "memory threshold"}, {r.Thresholds.CPU, "CPU threshold"}}
	if r.Thresholds.Mem == r.Thresholds.CPU {
		thresholds = thresholds[:1]
		thresholds[0].label = "threshold"
	}
	// Threshold labels: each above its line at the left, or elsewhere
	// along it (right, middle, then under it) when that would overlap a
	// label already placed or another threshold's line; the label boxes
	// are kept so that the peak labels avoid them too.
	var taken, lines []box
	for _, th := range thresholds {
		y := yPct(th.v)
		fmt.Fprintf(&b, `<line class="threshold" x1="%s" x2="%s" y1="%s" y2="%s"/>`, num(f.x), num(f.right()), num(y), num(y))
		lines = append(lines, box{f.x, y - 1, f.w, 2})
	}
	for _, th := range thresholds {
		text := fmt.Sprintf("%s %s %%", th.label, num(th.v))
		w := textWidth(text)
		lb := labelAbove(thresholdPlaces(f, yPct(th.v), w), append(lines[:len(lines):len(lines)], taken...))
		taken = append(taken, lb)
		fmt.Fprintf(&b, `<text class="ax th-t" x="%s" y="%s">%s</text>`, num(lb.x), num(lb.y+lb.h-2), esc(text))
	}
	// Peaks: markers first, so that no label covers the other marker; each
	// label goes to the first free place around its marker, on a white
	// backing so the lines do not run through it.
	type peakMark struct {
		p           *Peak
		class, what string
		px, py      float64
	}
	var marks []peakMark
	for _, pk := range []peakMark{{p: s.Peaks.Mem, class: "mem", what: "memory"}, {p: s.Peaks.CPU, class: "cpu", what: "CPU"}} {
		if pk.p == nil {
			continue
		}
		pk.px, pk.py = x(pk.p.At), yPct(pk.p.Value)
		marks = append(marks, pk)
		taken = append(taken, box{pk.px - 6, pk.py - 6, 12, 12})
	}
	for _, pk := range marks {
		label := fmt.Sprintf("%s peak %s %% · %s procs", pk.what, strconv.FormatFloat(pk.p.Value, 'f', 1, 64), procsText(pk.p.Procs))
		w, h := textWidth(label)*1.08, 15.0
		place := placeLabel(pk.px, pk.py, w, h, f, taken)
		taken = append(taken, place)
		fmt.Fprintf(&b, `<rect class="pk-bg" x="%s" y="%s" width="%s" height="%s" rx="3"/>`, num(place.x), num(place.y), num(place.w), num(place.h))
		fmt.Fprintf(&b, `<text class="pk-t %s" x="%s" y="%s">%s</text>`, pk.class, num(place.x+4), num(place.y+11), esc(label))
	}
	for _, pk := range marks {
		fmt.Fprintf(&b, `<circle class="peak %s" cx="%s" cy="%s" r="4.5"><title>%s</title></circle>`, pk.class, num(pk.px), num(pk.py),
			esc(pk.what+" peak at "+pk.p.At.Format("2006-01-02 15:04")))
	}
	// Legend, left to right along the top.
	lx := f.x
	for _, it := range []struct{ class, text string }{
		{"cpu", "CPU %"}, {"mem", "memory %"}, {"procs", noun + " (right axis)"},
	} {
		fmt.Fprintf(&b, `<line class="line %s" x1="%s" x2="%s" y1="12" y2="12"/>`, it.class, num(lx), num(lx+18))
		fmt.Fprintf(&b, `<text class="lg" x="%s" y="16">%s</text>`, num(lx+24), esc(it.text))
		lx += 24 + textWidth(it.text) + 18
	}
	if len(s.allGaps) > 0 {
		fmt.Fprintf(&b, `<rect class="gap" x="%s" y="6" width="14" height="12"/><text class="lg" x="%s" y="16">no snapshots</text>`, num(lx), num(lx+20))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// scatterSVG draws one resource's usage against the process count with the
// fitted line and, when there is an estimate, the projection from the peak
// to the threshold.
func (r *Report) scatterSVG(s *Server, e Estimate, usage func(*Point) float64, class, what string) string {
	const width, height = 460.0, 300.0
	f := frame{x: 44, y: 26, w: width - 44 - 16, h: height - 26 - 40}
	dataTop := 0.0
	for i := range s.points {
		p := &s.points[i]
		dataTop = math.Max(dataTop, p.Procs)
	}
	top := dataTop
	var projTo float64 // process count where the projection meets the threshold
	if e.Status == StatusOK && e.From != nil && e.From.Procs != nil {
		p0 := float64(*e.From.Procs)
		projTo = p0 + math.Max(e.Threshold-e.From.Value, 0)/e.Slope
		// The axis reaches the projection's end, so that the line meets
		// the threshold it projects to (up to a sane bound).
		projTo = math.Min(projTo, 1e5)
		top = math.Max(math.Max(top, projTo), p0)
	}
	xticks := niceTicks(top*1.02, true)
	xtop := xticks[len(xticks)-1]
	x := func(v float64) float64 { return f.x + math.Min(math.Max(v/xtop, 0), 1)*f.w }
	y := func(v float64) float64 { return f.y + (1-math.Min(math.Max(v, 0), 100)/100)*f.h }
	noun := procsNoun(r.Keyword)

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart sc" viewBox="0 0 %s %s" role="img" aria-label="%s">`,
		num(width), num(height), esc(what+" % against "+noun+" on "+s.Name))
	for _, v := range []float64{0, 25, 50, 75, 100} {
		fmt.Fprintf(&b, `<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>`, num(f.x), num(f.right()), num(y(v)), num(y(v)))
		fmt.Fprintf(&b, `<text class="ax" x="%s" y="%s" text-anchor="end">%s %%</text>`, num(f.x-6), num(y(v)+4), num(v))
	}
	for _, v := range xticks {
		fmt.Fprintf(&b, `<line class="tick" x1="%s" x2="%s" y1="%s" y2="%s"/>`, num(x(v)), num(x(v)), num(f.bottom()), num(f.bottom()+4))
		fmt.Fprintf(&b, `<text class="ax" x="%s" y="%s" text-anchor="middle">%s</text>`, num(x(v)), num(f.bottom()+17), num(v))
	}
	fmt.Fprintf(&b, `<text class="ax" x="%s" y="%s" text-anchor="middle">%s</text>`, num(f.x+f.w/2), num(height-4), esc(noun))
	fmt.Fprintf(&b, `<text class="lg" x="%s" y="14">%s</text>`, num(f.x), esc(what+" %"+sampleNote(e)))

	// Dots, one per distinct pixel, at most maxDrawPoints.
	seen := make(map[[2]int]bool)
	var dots []string
	for i := range s.points {
		p := &s.points[i]
		px, py := x(p.Procs), y(usage(p))
		k := [2]int{int(math.Round(px * 2)), int(math.Round(py * 2))}
		if seen[k] {
			continue
		}
		seen[k] = true
		dots = append(dots, "M"+num(px)+" "+num(py)+"h0")
	}
	if len(dots) > maxDrawPoints {
		kept := make([]string, 0, maxDrawPoints)
		for i := range maxDrawPoints {
			kept = append(kept, dots[i*len(dots)/maxDrawPoints])
		}
		dots = kept
	}
	fmt.Fprintf(&b, `<path class="dots %s" d="%s"/>`, class, strings.Join(dots, ""))

	th := r.Thresholds.Mem
	if class == "cpu" {
		th = r.Thresholds.CPU
	}
	fmt.Fprintf(&b, `<line class="threshold" x1="%s" x2="%s" y1="%s" y2="%s"/>`, num(f.x), num(f.right()), num(y(th)), num(y(th)))
	// The threshold label sits at the right end, over the line, or under it
	// when the projection's end point would sit in it.
	thY := y(th) - 3
	if projTo > 0 && x(projTo) > f.right()-textWidth("threshold 100 %")-8 {
		thY = y(th) + 12
	}
	fmt.Fprintf(&b, `<text class="ax th-t" x="%s" y="%s" text-anchor="end">threshold %s %%</text>`, num(f.right()-2), num(thY), num(th))
	if e.Fitted {
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range s.points {
			p := &s.points[i]
			lo, hi = math.Min(lo, p.Procs), math.Max(hi, p.Procs)
		}
		if x0, x1, ok := clipLine(e.Intercept, e.Slope, lo, hi); ok {
			fmt.Fprintf(&b, `<line class="fit %s" x1="%s" y1="%s" x2="%s" y2="%s"/>`, class,
				num(x(x0)), num(y(e.Intercept+e.Slope*x0)), num(x(x1)), num(y(e.Intercept+e.Slope*x1)))
		}
	}
	if projTo > 0 {
		p0, v0 := float64(*e.From.Procs), e.From.Value
		p1 := math.Min(projTo, xtop)
		fmt.Fprintf(&b, `<line class="proj" x1="%s" y1="%s" x2="%s" y2="%s"/>`,
			num(x(p0)), num(y(v0)), num(x(p1)), num(y(v0+(p1-p0)*e.Slope)))
		fmt.Fprintf(&b, `<circle class="peak %s" cx="%s" cy="%s" r="4.5"><title>%s</title></circle>`, class, num(x(p0)), num(y(v0)),
			esc(fmt.Sprintf("%s peak %.1f %% with %d processes", what, v0, *e.From.Procs)))
		if projTo <= xtop {
			fmt.Fprintf(&b, `<circle class="cap" cx="%s" cy="%s" r="3.5"><title>%s</title></circle>`, num(x(projTo)), num(y(e.Threshold)),
				esc(fmt.Sprintf("threshold reached at about %s processes", num(projTo))))
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func sampleNote(e Estimate) string {
	if !e.Fitted {
		return ""
	}
	return fmt.Sprintf(" · fit %+.2f %%/process · R² %.2f · n %d", e.Slope, e.R2, e.N)
}

// clipLine returns the part of [lo, hi] where intercept + slope·x lies within
// 0–100.
func clipLine(intercept, slope, lo, hi float64) (float64, float64, bool) {
	if !(lo <= hi) {
		return 0, 0, false
	}
	if slope != 0 {
		a, b := (0-intercept)/slope, (100-intercept)/slope
		if a > b {
			a, b = b, a
		}
		lo, hi = math.Max(lo, a), math.Min(hi, b)
	} else if intercept < 0 || intercept > 100 {
		return 0, 0, false
	}
	return lo, hi, lo <= hi
}

// thresholdPlaces are the places for a threshold label of width w over
// (then under) the line at y: left, right, then the middle.
func thresholdPlaces(f frame, y, w float64) []box {
	const h = 12.0
	var out []box
	for _, top := range []float64{y - h - 1, y + 2} {
		for _, x := range []float64{f.x + 4, f.right() - 4 - w, f.x + (f.w-w)/2} {
			out = append(out, box{x, math.Min(math.Max(top, f.y-h), f.bottom()-h), w, h})
		}
	}
	return out
}

// labelAbove returns the first of places clear of taken, else the first.
func labelAbove(places []box, taken []box) box {
	for _, p := range places {
		clear := true
		for _, t := range taken {
			if p.overlaps(t) {
				clear = false
				break
			}
		}
		if clear {
			return p
		}
	}
	return places[0]
}

// procsText prints a process count, or "unknown".
func procsText(n *int) string {
	if n == nil {
		return "unknown"
	}
	return strconv.Itoa(*n)
}

// box is a rectangle in SVG units.
type box struct{ x, y, w, h float64 }

func (a box) overlaps(b box) bool {
	return a.x < b.x+b.w && b.x < a.x+a.w && a.y < b.y+b.h && b.y < a.y+a.h
}

// placeLabel returns the first place for a w×h label beside the point
// (px, py) that stays inside f and clear of taken: right or left of it,
// above or below, then further out.
func placeLabel(px, py, w, h float64, f frame, taken []box) box {
	var first box
	for i, off := range []float64{0, 14, 28, 42} {
		for j, c := range []box{
			{px + 8, py - h - 4 - off, w, h}, {px + 8, py + 4 + off, w, h},
			{px - 8 - w, py - h - 4 - off, w, h}, {px - 8 - w, py + 4 + off, w, h},
		} {
			c.x = math.Min(math.Max(c.x, f.x), f.right()-c.w)
			c.y = math.Min(math.Max(c.y, f.y), f.bottom()-c.h)
			if i == 0 && j == 0 {
				first = c
			}
			clear := true
			for _, t := range taken {
				if c.overlaps(t) {
					clear = false
					break
				}
			}
			if clear {
				return c
			}
		}
	}
	return first
}
