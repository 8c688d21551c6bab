package report

import (
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

func TestSeries(t *testing.T) {
	minute := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	t.Run("downsampled, spikes kept", func(t *testing.T) {
		const n = 10000 // a week of minutes, about
		pts := make([]Point, n)
		for i := range pts {
			pts[i] = Point{Point: monitor.Point{At: minute(i), Mem: 50 + float64(i%7)}}
		}
		pts[1234].Mem, pts[8765].Mem = 99, 1
		segs := series(pts, minute(0), minute(n-1), func(p *Point) float64 { return p.Mem })
		if len(segs) != 1 {
			t.Fatalf("%d segments, want 1", len(segs))
		}
		got := segs[0]
		if len(got) > maxDrawPoints+2 {
			t.Errorf("%d points drawn, want at most about %d", len(got), maxDrawPoints)
		}
		if !slices.ContainsFunc(got, func(p xy) bool { return p.v == 99 }) || !slices.ContainsFunc(got, func(p xy) bool { return p.v == 1 }) {
			t.Error("the spike or the dip was thinned away")
		}
		if !slices.IsSortedFunc(got, func(a, b xy) int { return a.t.Compare(b.t) }) {
			t.Error("points out of time order")
		}
	})
	t.Run("broken at gaps", func(t *testing.T) {
		pts := []Point{{Point: monitor.Point{At: minute(0)}}, {Point: monitor.Point{At: minute(60)}}, {Point: monitor.Point{At: minute(180)}}, {Point: monitor.Point{At: minute(301)}}, {Point: monitor.Point{At: minute(302)}}}
		segs := series(pts, minute(0), minute(302), func(p *Point) float64 { return p.Mem })
		var lens []int
		for _, s := range segs {
			lens = append(lens, len(s))
		}
		// 60 → 180 is two hours (not longer); 180 → 301 is longer.
		if want := []int{3, 2}; !slices.Equal(lens, want) {
			t.Errorf("segment lengths = %v, want %v", lens, want)
		}
	})
	t.Run("clipped to the range", func(t *testing.T) {
		pts := []Point{{Point: monitor.Point{At: minute(-5)}}, {Point: monitor.Point{At: minute(5)}}, {Point: monitor.Point{At: minute(500)}}}
		if segs := series(pts, minute(0), minute(60), func(p *Point) float64 { return p.Mem }); len(segs) != 1 || len(segs[0]) != 1 {
			t.Errorf("segments = %v, want the one point inside", segs)
		}
	})
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		top   float64
		whole bool
		want  []float64
	}{
		{20, true, []float64{0, 5, 10, 15, 20}},
		{21, true, []float64{0, 5, 10, 15, 20, 25}},
		{7, true, []float64{0, 2, 4, 6, 8}},
		{0, true, []float64{0, 1}},
		{0.3, false, []float64{0, 0.1, 0.2, 0.3}},
		{0.3, true, []float64{0, 1}},
		{1234, true, []float64{0, 500, 1000, 1500}},
	} {
		if got := niceTicks(c.top, c.whole); !slices.Equal(got, c.want) {
			t.Errorf("niceTicks(%v, %v) = %v, want %v", c.top, c.whole, got, c.want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	from := time.Date(2026, 3, 2, 7, 30, 0, 0, berlin)
	for _, c := range []struct {
		name   string
		to     time.Time
		first  string
		layout string
		n      int
	}{
		{"a day: every three hours", from.Add(24 * time.Hour), "2026-03-02 09:00", "Jan 2 15:04", 8},
		{"a week: local midnights", from.Add(7 * 24 * time.Hour), "2026-03-03 00:00", "Jan 2", 7},
		{"an hour: every ten minutes", from.Add(time.Hour), "2026-03-02 07:30", "15:04", 7},
		{"two and a half minutes: every thirty seconds", from.Add(150 * time.Second), "2026-03-02 07:30", "15:04:05", 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			ticks, layout := timeTicks(from, c.to, berlin)
			if len(ticks) == 0 {
				t.Fatalf("no ticks; want %d from %s", c.n, c.first)
			}
			if len(ticks) != c.n || layout != c.layout || ticks[0].Format("2006-01-02 15:04") != c.first {
				t.Errorf("%d ticks from %v, layout %q; want %d from %s, %q", len(ticks), ticks[0], layout, c.n, c.first, c.layout)
			}
			for _, tk := range ticks {
				if tk.Before(from) || tk.After(c.to) || tk.Location() != berlin {
					t.Errorf("tick %v outside the range or zone", tk)
				}
			}
		})
	}
}

// TestTimeTicksEverySpan holds every span a chart may have, from seconds
// (a demo's few rounds) to a year, to between 3 and 8 ticks on whole steps
// of the local clock, in order and within the span.
func TestTimeTicksEverySpan(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	from := time.Date(2026, 3, 2, 7, 31, 17, 0, berlin)
	for _, span := range []time.Duration{
		12 * time.Second, 45 * time.Second, 150 * time.Second, 7 * time.Minute, 20 * time.Minute,
		time.Hour, 90 * time.Minute, 5 * time.Hour, 13 * time.Hour, 48 * time.Hour,
		9 * 24 * time.Hour, 30 * 24 * time.Hour, 100 * 24 * time.Hour,
	} {
		to := from.Add(span)
		ticks, layout := timeTicks(from, to, berlin)
		if len(ticks) < 3 || len(ticks) > 8 {
			t.Errorf("%v: %d ticks, want 3 to 8: %v", span, len(ticks), ticks)
			continue
		}
		step := ticks[1].Sub(ticks[0])
		for i, tk := range ticks {
			if tk.Before(from) || tk.After(to) {
				t.Errorf("%v: tick %v outside the span", span, tk)
			}
			if i > 0 && tk.Sub(ticks[i-1]) != step && step < 24*time.Hour {
				t.Errorf("%v: ticks %v and %v are not %v apart", span, ticks[i-1], tk, step)
			}
			if step < 24*time.Hour && tk.Sub(tk.Truncate(step)) != 0 && step <= time.Hour {
				t.Errorf("%v: tick %v is not on a whole %v", span, tk, step)
			}
		}
		if label := ticks[0].Format(layout); step < time.Minute && len(label) != len("15:04:05") {
			t.Errorf("%v: a step of %v labelled %q, without its seconds", span, step, label)
		}
	}
}

// seriesBefore is series as it was before it thinned in one pass: the
// reference TestSeriesThinsAsBefore holds it to.
func seriesBefore(pts []Point, from, to time.Time, val func(*Point) float64) [][]xy {
	var segs [][]xy
	var seg []xy
	var last time.Time
	inRange := 0
	for i := range pts {
		p := &pts[i]
		if p.At.Before(from) || p.At.After(to) {
			continue
		}
		inRange++
		if seg != nil && p.At.Sub(last) > GapLonger {
			segs = append(segs, seg)
			seg = nil
		}
		seg = append(seg, xy{p.At, val(p)})
		last = p.At
	}
	if seg != nil {
		segs = append(segs, seg)
	}
	if inRange <= maxDrawPoints {
		return segs
	}
	width := max(to.Sub(from)/(maxDrawPoints/2), 1)
	for i, seg := range segs {
		var out []xy
		for j := 0; j < len(seg); {
			b := seg[j].t.Sub(from) / width
			lo, hi := j, j
			k := j + 1
			for ; k < len(seg) && seg[k].t.Sub(from)/width == b; k++ {
				if seg[k].v < seg[lo].v {
					lo = k
				}
				if seg[k].v > seg[hi].v {
					hi = k
				}
			}
			switch {
			case lo == hi:
				out = append(out, seg[lo])
			case lo < hi:
				out = append(out, seg[lo], seg[hi])
			default:
				out = append(out, seg[hi], seg[lo])
			}
			j = k
		}
		segs[i] = out
	}
	return segs
}

// TestSeriesThinsAsBefore: series draws exactly what it drew before it
// thinned in one pass, over ranges with gaps, repeated values, NaNs, points
// outside the range, a few points and many.
func TestSeriesThinsAsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for c := range 200 {
		n := rng.IntN(3000)
		pts := make([]Point, 0, n)
		at := t0.Add(-time.Duration(rng.IntN(120)) * time.Minute)
		for range n {
			at = at.Add(time.Duration(1+rng.IntN(90)) * time.Second)
			if rng.IntN(500) == 0 {
				at = at.Add(time.Duration(rng.IntN(300)) * time.Minute) // a gap, or not
			}
			v := float64(rng.IntN(8))
			if rng.IntN(50) == 0 {
				v = math.NaN()
			}
			pts = append(pts, Point{Point: monitor.Point{At: at, Mem: v}})
		}
		from, to := t0, t0.Add(time.Duration(1+rng.IntN(72))*time.Hour)
		val := func(p *Point) float64 { return p.Mem }
		got, want := series(pts, from, to, val), seriesBefore(pts, from, to, val)
		same := len(got) == len(want)
		for i := 0; same && i < len(got); i++ {
			same = slices.EqualFunc(got[i], want[i], func(a, b xy) bool {
				return a.t.Equal(b.t) && (a.v == b.v || math.IsNaN(a.v) && math.IsNaN(b.v))
			})
		}
		if !same {
			t.Fatalf("case %d (%d points, %s to %s): got %d segments %v\nwant %d %v", c, n, from, to, len(got), got, len(want), want)
		}
	}
}

// TestThresholdLabelsClearOfLines draws thresholds close together (the
// defaults, 95 and 90 %, are 12 units apart) and holds each threshold's
// label clear of every threshold line, its own included: a label struck
// through by the other threshold's line is hard to read.
func TestThresholdLabelsClearOfLines(t *testing.T) {
	line := regexp.MustCompile(`<line class="threshold" x1="[^"]*" x2="[^"]*" y1="([^"]*)"`)
	label := regexp.MustCompile(`<text class="ax th-t" x="[^"]*" y="([^"]*)"[^>]*>([^<]*)</text>`)
	rs := linearRollups("s", 48)
	for _, th := range []Thresholds{{CPU: 95, Mem: 90}, {CPU: 90, Mem: 95}, {CPU: 80, Mem: 85}, {CPU: 50, Mem: 90}, {CPU: 97, Mem: 95}} {
		r := Build(Input{
			From: t0, To: t0.Add(48 * time.Hour), Generated: t0.Add(48 * time.Hour), Keyword: "python",
			Thresholds: th, Servers: []ServerInput{{Name: "s", Rollups: rs, Points: PointsFromRollups(rs, "python")}},
		})
		svg := r.timeSeriesSVG(&r.Servers[0])
		var lines []float64
		for _, m := range line.FindAllStringSubmatch(svg, -1) {
			y, _ := strconv.ParseFloat(m[1], 64)
			lines = append(lines, y)
		}
		labels := label.FindAllStringSubmatch(svg, -1)
		if len(lines) != 2 || len(labels) != 2 {
			t.Fatalf("%+v: %d threshold lines and %d labels, want 2 of each", th, len(lines), len(labels))
		}
		for _, m := range labels {
			base, _ := strconv.ParseFloat(m[1], 64)
			top, bottom := base-10, base+2 // the text's box: 12 units, as thresholdPlaces gives it
			for _, y := range lines {
				if y > top && y < bottom {
					t.Errorf("%+v: the line at y=%v runs through the label %q (y %v to %v)", th, y, m[2], top, bottom)
				}
			}
		}
	}
}
