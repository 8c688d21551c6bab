package monitor

import "time"

// Period is the length of a rollup.
type Period string

// Rollup periods. Periods start on the hour and at midnight UTC.
const (
	Hour Period = "hour"
	Day  Period = "day"
)

// Valid reports whether p is Hour or Day.
func (p Period) Valid() bool { return p == Hour || p == Day }

// Start returns the start of the period that contains t.
func (p Period) Start(t time.Time) time.Time {
	t = t.UTC()
	if p == Day {
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	return t.Truncate(time.Hour)
}

// Next returns the start of the period after the one that starts at start.
func (p Period) Next(start time.Time) time.Time {
	if p == Day {
		return start.AddDate(0, 0, 1)
	}
	return start.Add(time.Hour)
}

// Length returns how long a period is (a day is 24 hours in UTC).
func (p Period) Length() time.Duration {
	if p == Day {
		return 24 * time.Hour
	}
	return time.Hour
}

// KeywordCount is how many processes matched a keyword.
type KeywordCount struct {
	Keyword string `bson:"keyword" json:"keyword"`
	Count   int    `bson:"count" json:"count"`
}

// Peak is the highest reading of a metric in a period and the matched
// processes at that moment. On a tie the earliest reading is kept.
type Peak struct {
	Value float64
	At    time.Time
	// ProcsKnown is false when the snapshot at the peak could not count
	// processes; MatchedTotal and Procs are then empty.
	ProcsKnown   bool
	MatchedTotal int            // distinct processes matching any keyword
	Procs        []KeywordCount // per keyword, in the probe's order
	// Watched is set when Value is the highest of the samples a watching
	// probe took every Sample over the whole interval between two ticks
	// (`collector run`'s watch mode): no moment between ticks was missed.
	// Otherwise Value is one reading of a one-shot probe, measured over
	// Sample (its sample window; for a snapshot of a watching probe whose
	// interval had no maximum, the whole interval).
	Watched bool
	// Sample is the time each reading behind Value was measured over; 0
	// when unknown (rollups written before it was kept) or for averages
	// since boot.
	Sample time.Duration
}

// Metric sums up one metric over a period.
type Metric struct {
	Peak Peak
	Sum  float64 // of all readings, for the mean
	N    int64   // readings; snapshots whose section failed are not counted
}

// Mean returns Sum/N, or 0 without readings.
func (m Metric) Mean() float64 {
	if m.N == 0 {
		return 0
	}
	return m.Sum / float64(m.N)
}

// Matched sums up the matched-process total over a period.
type Matched struct {
	Min, Max int
	Sum      int64
	N        int64
}

// Mean returns Sum/N, or 0 without readings.
func (m Matched) Mean() float64 {
	if m.N == 0 {
		return 0
	}
	return float64(m.Sum) / float64(m.N)
}

// KeywordSum sums up one keyword's matched-process count over a period,
// and what its processes used.
type KeywordSum struct {
	Keyword string
	Sum     int64
	N       int64 // snapshots that counted the keyword
	// RSSBytes and CPUPercent sum the matched processes' resident memory
	// and CPU (percent of one CPU) over the same snapshots: RSSBytes/Sum is
	// the mean resident memory of one process. 0 in rollups written before
	// they were kept (RSSN 0).
	RSSBytes   float64
	CPUPercent float64
	RSSN       int64 // snapshots summed into RSSBytes and CPUPercent
	// FDs sums the matched processes' open descriptors over the FDN
	// snapshots where all of them could be read (schema version 2).
	FDs, FDN int64
	// FDCount sums the count over those same FDN snapshots, so that
	// FDs/FDCount is the descriptors of one process.
	FDCount int64
}

// Mean returns Sum/N, or 0 without readings.
func (k KeywordSum) Mean() float64 {
	if k.N == 0 {
		return 0
	}
	return float64(k.Sum) / float64(k.N)
}

// Rollup sums up one server over one hour or day.
type Rollup struct {
	Server string
	Period Period
	Start  time.Time
	Count  int64 // snapshots
	Failed int64 // failed attempts
	CPU    Metric
	Mem    Metric // memory used percent
	Disk   Metric // disk used percent
	Load1  Metric
	// Matched covers snapshots whose process section was read.
	Matched Matched
	// Keywords sums up each keyword's count over the same snapshots, sorted
	// by keyword; a keyword the probe did not look for has no entry.
	Keywords []KeywordSum

	// The figures of snapshot schema version 2 (monitor.Point says how each
	// is read); N is 0 in rollups of version-1 snapshots and in rollups
	// written before they were kept.
	//
	// Unavailable is the memory not available to new processes, percent
	// (100 − available %): its peak is the least memory available.
	Unavailable Metric
	SwapPages   Metric // pages swapped in and out per second
	PressureCPU Metric // "some" stall percent
	PressureMem Metric
	PressureIO  Metric
	RunQueue    Metric // runnable tasks per logical CPU
	NetBytes    Metric // bytes received and sent per second
	FDUsed      Metric // file handles in use, percent of the limit
	// Filesystems holds each local file system's used percent, sorted by
	// path (at most snapshot.MaxFilesystems of them per snapshot).
	Filesystems []FilesystemMetric
}

// FilesystemMetric sums up one file system's used percent over a period.
type FilesystemMetric struct {
	Path string
	Metric
}

// Keyword returns the sums of keyword, and whether the rollup has them.
func (r Rollup) Keyword(keyword string) (KeywordSum, bool) {
	for _, k := range r.Keywords {
		if k.Keyword == keyword {
			return k, true
		}
	}
	return KeywordSum{}, false
}

// RollupFilter selects rollups.
type RollupFilter struct {
	Servers []string // empty: all servers
	Period  Period   // Hour when empty
	// From and To bound the period starts: From <= start < To. From is
	// rounded down to the start of its period.
	From, To time.Time
}
