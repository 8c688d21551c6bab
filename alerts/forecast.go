package alerts

import (
	"context"
	"sync"
	"time"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// DiskHistory is what the "disk_full" rule reads of a store: the daily
// peaks of a server's file systems. A StateStore that also implements it
// gives the Engine the days before it started; without it the Engine's
// forecasts rest on the days it has seen itself.
type DiskHistory interface {
	// DailyDiskPeaks returns, by mount point, the daily used-percent peaks
	// of server's file systems for the days starting in [from, to).
	DailyDiskPeaks(ctx context.Context, server string, from, to time.Time) (map[string][]monitor.DailyPeak, error)
}

// ForecastDays is how many days of daily peaks the "disk_full" rule's
// trend runs through, today included.
const ForecastDays = 14

// diskTrends keeps each server's daily peaks for the forecasts.
type diskTrends struct {
	mu      sync.Mutex
	servers map[string]*diskTrend
}

type diskTrend struct {
	loaded time.Time // the day the history was read for; zero: not read
	days   map[string]map[time.Time]float64
}

// forecast returns the disk forecasts of r's server with r's readings in,
// or nil when the "disk_full" rule is off or r has no file system figures.
func (e *Engine) forecast(ctx context.Context, rules inventory.AlertRules, r monitor.Result) map[string]monitor.DiskForecast {
	if !rules.DiskFull.Enabled() || r.Snapshot == nil {
		return nil
	}
	usage := map[string]float64{}
	if fs := r.Snapshot.Filesystems; fs != nil && fs.Error == "" {
		for _, m := range fs.Mounts {
			if m.Error == "" {
				usage[m.Path] = m.UsedPercent
			}
		}
	} else if d := r.Snapshot.Disk; d.Error == "" {
		usage[d.Path] = d.UsedPercent
	}
	if len(usage) == 0 {
		return nil
	}
	day := monitor.Day.Start(r.At)
	e.trends.mu.Lock()
	defer e.trends.mu.Unlock()
	if e.trends.servers == nil {
		e.trends.servers = map[string]*diskTrend{}
	}
	t := e.trends.servers[r.Server]
	if t == nil {
		t = &diskTrend{days: map[string]map[time.Time]float64{}}
		e.trends.servers[r.Server] = t
	}
	if h, ok := e.st.(DiskHistory); ok && !t.loaded.Equal(day) {
		// Once a day: the store's daily rollups, today's so far included.
		peaks, err := h.DailyDiskPeaks(ctx, r.Server, day.AddDate(0, 0, -ForecastDays+1), day.AddDate(0, 0, 1))
		if err != nil {
			e.logger.Warn("read the daily disk peaks; the disk forecast uses what it has", "server", r.Server, "err", err)
		} else {
			t.loaded = day
			for path, ps := range peaks {
				for _, p := range ps {
					t.add(path, p.Day, p.Value)
				}
			}
		}
	}
	for path, v := range usage {
		t.add(path, day, v)
	}
	out := map[string]monitor.DiskForecast{}
	oldest := day.AddDate(0, 0, -ForecastDays+1)
	for path, days := range t.days {
		var ps []monitor.DailyPeak
		for d, v := range days {
			if d.Before(oldest) {
				delete(days, d)
				continue
			}
			ps = append(ps, monitor.DailyPeak{Day: d, Value: v})
		}
		if _, now := usage[path]; !now {
			continue // no longer mounted
		}
		if f, ok := monitor.ForecastFull(ps); ok {
			out[path] = f
		}
	}
	return out
}

// add keeps v as the day's peak when it is the highest.
func (t *diskTrend) add(path string, day time.Time, v float64) {
	days := t.days[path]
	if days == nil {
		days = map[time.Time]float64{}
		t.days[path] = days
	}
	if old, ok := days[day]; !ok || v > old {
		days[day] = v
	}
}
