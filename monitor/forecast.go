package monitor

import (
	"math"
	"time"
)

// MinForecastDays is the fewest daily peaks a disk forecast is made from.
const MinForecastDays = 3

// A DailyPeak is the highest used percent of a file system over one day.
type DailyPeak struct {
	Day   time.Time // the day's start
	Value float64
}

// A DiskForecast is when a file system fills at the trend of its daily
// peaks.
type DiskForecast struct {
	// PerDay is the slope of the least-squares line through the daily
	// peaks, in percent a day.
	PerDay float64
	// Last is the latest daily peak, from which the trend is projected.
	Last DailyPeak
	// FullIn is how long after the latest peak the file system reaches
	// 100 % at PerDay; 0 when it is full already.
	FullIn time.Duration
}

// ForecastFull returns the forecast of a file system from its daily peaks
// (in any order; days without a reading are simply missing), and false
// when there are fewer than MinForecastDays of them or the trend does not
// grow.
func ForecastFull(peaks []DailyPeak) (DiskForecast, bool) {
	if len(peaks) < MinForecastDays {
		return DiskForecast{}, false
	}
	t0 := peaks[0].Day
	last := peaks[0]
	var mx, my float64
	for _, p := range peaks {
		if p.Day.After(last.Day) {
			last = p
		}
		mx += p.Day.Sub(t0).Hours() / 24
		my += p.Value
	}
	n := float64(len(peaks))
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for _, p := range peaks {
		dx := p.Day.Sub(t0).Hours()/24 - mx
		sxx += dx * dx
		sxy += dx * (p.Value - my)
	}
	if sxx == 0 {
		return DiskForecast{}, false
	}
	slope := sxy / sxx
	if !(slope > 0) {
		return DiskForecast{}, false
	}
	f := DiskForecast{PerDay: slope, Last: last}
	if days := (100 - last.Value) / slope; days > 0 {
		f.FullIn = time.Duration(math.Min(days*24, 1e6) * float64(time.Hour))
	}
	return f, true
}
