package report

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// Throughput is the Universal Scalability Law fitted to a server's network
// throughput (bytes received and sent per second) against a keyword's
// process count N:
//
//	X(N) = λ·N / (1 + σ·(N−1) + κ·N·(N−1))
//
// λ is the throughput of one process, σ the share lost to contention
// (queueing for a shared resource), κ the cost of coherency (processes
// getting in each other's way), which makes throughput fall past N* =
// √((1−σ)/κ).
type Throughput struct {
	// Status is ok when the fit is made and good enough; else thin (fewer
	// than MinPoints readings or MinThroughputCounts distinct counts),
	// no_data or poor_fit (R² below MinR2).
	Status Status `json:"status"`
	// Readings and Counts are the readings with traffic and the distinct
	// counts among them (each count's readings are averaged).
	Readings int `json:"readings"`
	Counts   int `json:"counts"`
	MaxCount int `json:"max_count"`
	// Lambda is in bytes per second per process.
	Lambda float64 `json:"lambda"`
	Sigma  float64 `json:"sigma"`
	Kappa  float64 `json:"kappa"`
	R2     float64 `json:"r2"`
	// Knee is N*, at least 1, nil when κ is 0 (throughput never falls);
	// PeakBytes the throughput there.
	Knee      *float64 `json:"knee"`
	PeakBytes float64  `json:"peak_bytes_per_second,omitempty"`
	// KneeVisible is set when N* lies within the counts seen: adding
	// processes past it added no throughput.
	KneeVisible bool `json:"knee_visible"`
	// Text says it in words.
	Text string `json:"text"`
	// curve is the fitted throughput at each count seen, for the chart.
	counts, means []float64
}

// X returns the fitted throughput at n processes.
func (t *Throughput) X(n float64) float64 {
	return t.Lambda * n / (1 + t.Sigma*(n-1) + t.Kappa*n*(n-1))
}

// throughput fits the USL to the readings' network traffic against the
// keyword's count; nil when no reading had traffic figures.
func throughput(kps []kpoint) *Throughput {
	type group struct{ n, x float64 }
	by := map[int]*struct {
		sumN, sumX float64
		k          int
	}{}
	t := &Throughput{}
	for _, kp := range kps {
		n, x := kp.k.Count, kp.p.NetBytes
		if !finite(n) || !finite(x) {
			continue
		}
		t.Readings++
		if n <= 0 {
			continue
		}
		key := int(math.Round(n))
		g := by[key]
		if g == nil {
			g = &struct {
				sumN, sumX float64
				k          int
			}{}
			by[key] = g
		}
		g.sumN += n
		g.sumX += x
		g.k++
	}
	if t.Readings == 0 {
		return nil
	}
	var gs []group
	for _, g := range by {
		gs = append(gs, group{g.sumN / float64(g.k), g.sumX / float64(g.k)})
	}
	slices.SortFunc(gs, func(a, b group) int { return cmpFloat(a.n, b.n) })
	t.Counts = len(gs)
	for _, g := range gs {
		t.MaxCount = max(t.MaxCount, int(math.Round(g.n)))
		t.counts, t.means = append(t.counts, g.n), append(t.means, g.x)
	}
	if t.Readings < MinPoints || t.Counts < MinThroughputCounts {
		t.Status = StatusThin
		t.Text = fmt.Sprintf("too little data for a throughput fit: %s at %s (need %d and %d)",
			plural(t.Readings, "reading", "readings"), plural(t.Counts, "distinct count", "distinct counts"), MinPoints, MinThroughputCounts)
		return t
	}
	xs, ys := make([]float64, len(gs)), make([]float64, len(gs))
	scale := 0.0
	for _, g := range gs {
		scale = math.Max(scale, g.x)
	}
	if scale <= 0 {
		t.Status = StatusFlat
		t.Text = "no network traffic at any count"
		return t
	}
	for i, g := range gs {
		xs[i], ys[i] = g.n, g.x/scale
	}
	lambda, sigma, kappa, ok := fitUSL(xs, ys)
	if !ok {
		t.Status = StatusPoorFit
		t.Text = "the throughput does not follow the process count"
		return t
	}
	t.Lambda, t.Sigma, t.Kappa = lambda*scale, sigma, kappa
	var ssRes, ssTot, my float64
	for _, y := range ys {
		my += y
	}
	my /= float64(len(ys))
	for i := range xs {
		d := ys[i] - t.X(xs[i])/scale
		ssRes += d * d
		ssTot += (ys[i] - my) * (ys[i] - my)
	}
	if ssTot > 0 {
		t.R2 = math.Max(1-ssRes/ssTot, 0)
	}
	t.Lambda, t.Sigma, t.Kappa, t.R2 = round6(t.Lambda), round6(t.Sigma), round6(t.Kappa), round6(t.R2)
	if t.R2 < MinR2 {
		t.Status = StatusPoorFit
		t.Text = fmt.Sprintf("the throughput fit is too poor to say where it stops growing: R² %.2f (need %.1f)", t.R2, MinR2)
		return t
	}
	t.Status = StatusOK
	if t.Kappa > 0 {
		// With all contention (σ = 1) the formula's N* is 0, where X is
		// 0/0: throughput then peaked at the first process.
		k := max(round6(math.Sqrt((1-t.Sigma)/t.Kappa)), 1)
		t.Knee = &k
		t.PeakBytes = round6(t.X(k))
		t.KneeVisible = k <= float64(t.MaxCount)
	}
	switch {
	case t.KneeVisible && *t.Knee == 1:
		t.Text = fmt.Sprintf("network throughput peaked at the first process (%s/s): more processes added no bytes/s",
			bytesText(uint64(t.PeakBytes)))
	case t.KneeVisible:
		t.Text = fmt.Sprintf("network throughput peaked at about %s processes (%s/s): past them, more processes added no bytes/s",
			num(*t.Knee), bytesText(uint64(t.PeakBytes)))
	case t.Knee != nil:
		t.Text = fmt.Sprintf("no knee visible yet: throughput still grows at %d processes (the fit puts its peak at about %s, %s/s)",
			t.MaxCount, num(*t.Knee), bytesText(uint64(t.PeakBytes)))
	default:
		t.Text = fmt.Sprintf("no knee visible yet: throughput still grows at %d processes (%.0f %% of linear scaling there)",
			t.MaxCount, 100*t.X(float64(t.MaxCount))/(t.Lambda*float64(t.MaxCount)))
	}
	return t
}

// fitUSL fits y = λ·n/(1 + σ(n−1) + κn(n−1)) through the points by least
// squares on its linear form n/y = a + b·n + c·n², where λ = 1/(a+b+c),
// σ = 1 − a·λ and κ = c·λ; exact data gives exact parameters. σ and κ are
// kept within their meaning: κ < 0 refits with κ = 0 (Amdahl's law), σ is
// clamped to [0, 1]. ok is false when no positive λ comes out.
func fitUSL(ns, ys []float64) (lambda, sigma, kappa float64, ok bool) {
	zs := make([]float64, len(ns))
	for i := range ns {
		if ys[i] <= 0 {
			return 0, 0, 0, false
		}
		zs[i] = ns[i] / ys[i]
	}
	a, b, c, ok := quadFit(ns, zs)
	if !ok || c < 0 {
		var slope, intercept float64
		slope, intercept, _, _, ok, _ = fitLine(ns, zs)
		if !ok {
			return 0, 0, 0, false
		}
		a, b, c = intercept, slope, 0
	}
	if a+b+c <= 0 {
		return 0, 0, 0, false
	}
	lambda = 1 / (a + b + c)
	sigma = min(max(1-a*lambda, 0), 1)
	kappa = c * lambda
	return lambda, sigma, kappa, lambda > 0 && finite(lambda)
}

// quadFit fits z = a + b·x + c·x² by least squares (normal equations,
// x centred and scaled for conditioning).
func quadFit(xs, zs []float64) (a, b, c float64, ok bool) {
	n := float64(len(xs))
	if len(xs) < 3 {
		return 0, 0, 0, false
	}
	var mx, sx float64
	for _, x := range xs {
		mx += x
	}
	mx /= n
	for _, x := range xs {
		sx = math.Max(sx, math.Abs(x-mx))
	}
	if sx == 0 {
		return 0, 0, 0, false
	}
	// Sums of u^k and z·u^k, u = (x − mx)/sx.
	var s [5]float64
	var t [3]float64
	for i, x := range xs {
		u := (x - mx) / sx
		p := 1.0
		for k := range 5 {
			s[k] += p
			if k < 3 {
				t[k] += zs[i] * p
			}
			p *= u
		}
	}
	m := [3][4]float64{
		{s[0], s[1], s[2], t[0]},
		{s[1], s[2], s[3], t[1]},
		{s[2], s[3], s[4], t[2]},
	}
	// Gaussian elimination with partial pivoting.
	for col := range 3 {
		piv := col
		for r := col + 1; r < 3; r++ {
			if math.Abs(m[r][col]) > math.Abs(m[piv][col]) {
				piv = r
			}
		}
		if math.Abs(m[piv][col]) < 1e-12 {
			return 0, 0, 0, false
		}
		m[col], m[piv] = m[piv], m[col]
		for r := range 3 {
			if r == col {
				continue
			}
			f := m[r][col] / m[col][col]
			for k := col; k < 4; k++ {
				m[r][k] -= f * m[col][k]
			}
		}
	}
	p0, p1, p2 := m[0][3]/m[0][0], m[1][3]/m[1][1], m[2][3]/m[2][2]
	// z = p0 + p1·u + p2·u², u = (x − mx)/sx: back to powers of x.
	c = p2 / (sx * sx)
	b = p1/sx - 2*p2*mx/(sx*sx)
	a = p0 - p1*mx/sx + p2*mx*mx/(sx*sx)
	return a, b, c, true
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ForecastDays is how many days of daily peaks the disk forecast reads.
const ForecastDays = 14

// A DiskForecast is when one file system fills at the trend of its daily
// peaks (monitor.ForecastFull).
type DiskForecast struct {
	Path string `json:"path"`
	// Used is the latest daily peak, in percent; Days the daily peaks the
	// trend is drawn through.
	Used float64 `json:"used_percent"`
	Days int     `json:"days"`
	// PerDay is the trend in percent a day; FullIn the hours from the
	// start of the latest peak's day until 100 % at that trend, and FullAt that time. Both nil
	// when the file system does not grow or there are fewer than
	// monitor.MinForecastDays days.
	PerDay *float64   `json:"per_day"`
	FullIn *float64   `json:"full_in_hours"`
	FullAt *time.Time `json:"full_at"`
}

// diskForecasts forecasts each file system of the daily rollups.
func (r *Report) diskForecasts(days []monitor.Rollup) []DiskForecast {
	peaks := map[string][]monitor.DailyPeak{}
	for _, d := range days {
		for _, f := range d.Filesystems {
			if f.N > 0 {
				peaks[f.Path] = append(peaks[f.Path], monitor.DailyPeak{Day: d.Start, Value: f.Peak.Value})
			}
		}
		if len(d.Filesystems) == 0 && d.Disk.N > 0 {
			peaks["/"] = append(peaks["/"], monitor.DailyPeak{Day: d.Start, Value: d.Disk.Peak.Value})
		}
	}
	out := []DiskForecast{}
	for path, ps := range peaks {
		f := DiskForecast{Path: path, Days: len(ps)}
		last := ps[0]
		for _, p := range ps {
			if p.Day.After(last.Day) {
				last = p
			}
		}
		f.Used = round6(last.Value)
		if fc, ok := monitor.ForecastFull(ps); ok {
			perDay, hours := round6(fc.PerDay), round6(fc.FullIn.Hours())
			at := fc.Last.Day.Add(fc.FullIn).Truncate(time.Minute).In(r.loc)
			f.PerDay, f.FullIn, f.FullAt = &perDay, &hours, &at
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b DiskForecast) int { return cmpString(a.Path, b.Path) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
