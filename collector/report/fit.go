package report

import "math"

// fitLine fits y = intercept + slope·x by least squares, with the slope's
// standard error se (0 with fewer than 3 points). ok is false when x does
// not vary (no line exists). flat is set when y does not vary; r2 is 0
// then.
func fitLine(xs, ys []float64) (slope, intercept, r2, se float64, ok, flat bool) {
	n := float64(len(xs))
	if len(xs) == 0 {
		return 0, 0, 0, 0, false, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx, my = mx/n, my/n
	// Centered sums: no cancellation between large raw sums.
	var sxx, sxy, syy float64
	for i := range xs {
		dx, dy := xs[i]-mx, ys[i]-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	flat = syy == 0
	if sxx == 0 {
		return 0, 0, 0, 0, false, flat
	}
	slope = sxy / sxx
	intercept = my - slope*mx
	if !flat {
		r2 = min(max(sxy*sxy/(sxx*syy), 0), 1)
	}
	if len(xs) > 2 {
		ssRes := math.Max(syy-slope*sxy, 0)
		se = math.Sqrt(ssRes / (n - 2) / sxx)
	}
	return slope, intercept, r2, se, true, flat
}
