package store

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// ErrNotFound is returned by reads that find nothing.
var ErrNotFound = errors.New("not found")

// ErrKind says why a probe attempt failed.
type ErrKind string

// The kinds of failed attempt; Kinds lists them all.
const (
	KindUnreachable ErrKind = "unreachable" // no TCP connection, or it dropped
	KindAuth        ErrKind = "auth"        // SSH authentication refused
	KindHostKey     ErrKind = "hostkey"     // host key unknown or changed
	KindTimeout     ErrKind = "timeout"     // the round's deadline passed
	KindProbe       ErrKind = "probe"       // the probe ran but failed or printed no valid snapshot
	KindConfig      ErrKind = "config"      // the inventory entry cannot be used as written
)

// Kinds lists every kind of failed attempt, in the order above: the values
// Valid accepts, for callers that enumerate them (a metric per kind). Do not
// modify it.
var Kinds = []ErrKind{KindUnreachable, KindAuth, KindHostKey, KindTimeout, KindProbe, KindConfig}

// Valid reports whether k is one of Kinds.
func (k ErrKind) Valid() bool { return slices.Contains(Kinds, k) }

// kindList is Kinds for an error message: "unreachable, auth, ... or config".
func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Result is one probe attempt: a snapshot, or a failure with its kind.
type Result struct {
	Server string
	// At is the collector's clock when the attempt finished. Write stores it
	// in UTC to the millisecond; with Server it identifies the result.
	At time.Time
	// Duration of the attempt, kept to the millisecond.
	Duration time.Duration
	// Snapshot is set for a successful attempt; ErrKind and Err otherwise.
	Snapshot *snapshot.Snapshot
	ErrKind  ErrKind
	Err      string
}

// normalize returns r with At in UTC to the millisecond and Duration to the
// millisecond, or an error when r is neither a snapshot nor a failure.
func (r Result) normalize() (Result, error) {
	r.At = r.At.UTC().Truncate(time.Millisecond)
	r.Duration = r.Duration.Truncate(time.Millisecond)
	switch {
	case r.Server == "":
		return r, errors.New("result has no server name")
	case r.At.IsZero():
		return r, fmt.Errorf("result for %s has no time", r.Server)
	case r.Snapshot != nil && r.ErrKind != "":
		return r, fmt.Errorf("result for %s at %s has both a snapshot and an error", r.Server, r.At.Format(time.RFC3339))
	case r.Snapshot == nil && !r.ErrKind.Valid():
		return r, fmt.Errorf("result for %s at %s has no snapshot and error kind %q (want %s)", r.Server, r.At.Format(time.RFC3339), r.ErrKind, kindList())
	}
	return r, nil
}

// Record is a stored snapshot.
type Record struct {
	Server    string
	At        time.Time // collector clock, UTC, millisecond
	ProbeTime time.Time // the probe's clock, to the millisecond (Snapshot.Time is exact)
	Duration  time.Duration
	Snapshot  *snapshot.Snapshot
}

// Attempt is a stored failed attempt.
type Attempt struct {
	Server   string
	At       time.Time
	Duration time.Duration
	Kind     ErrKind
	Err      string
}

// Period is the length of a rollup.
type Period string

// Rollup periods. Periods start on the hour and at midnight UTC.
const (
	Hour Period = "hour"
	Day  Period = "day"
)

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

func (p Period) valid() bool { return p == Hour || p == Day }

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
}

// KeywordSum sums up one keyword's matched-process count over a period.
type KeywordSum struct {
	Keyword string
	Sum     int64
	N       int64 // snapshots that counted the keyword
}

// Mean returns Sum/N, or 0 without readings.
func (k KeywordSum) Mean() float64 {
	if k.N == 0 {
		return 0
	}
	return float64(k.Sum) / float64(k.N)
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

// RollupQuery selects rollups.
type RollupQuery struct {
	Servers []string // empty: all servers
	Period  Period
	// From and To bound the period starts: From <= start < To. From is
	// rounded down to the start of its period.
	From, To time.Time
}

// The documents as stored. Each decodes from BSON through the driver;
// rollupDoc, snapshotDoc and attemptDoc (with the peakDoc, metricDoc,
// matchedDoc and keywordDoc inside a rollup) also decode from FerretDB's
// stored form, JSON with times as epoch milliseconds, in the embedded
// store's range reads (see sqliteReader and docTime).

// docTime is a time in a stored document: a BSON date (to the millisecond)
// through the driver, and milliseconds since the epoch in FerretDB's stored
// form.
type docTime time.Time

// utc returns t as a time.Time in UTC.
func (t docTime) utc() time.Time { return time.Time(t).UTC() }

// MarshalBSONValue stores t as a BSON date.
func (t docTime) MarshalBSONValue() (bsontype.Type, []byte, error) {
	return bson.MarshalValue(time.Time(t))
}

// UnmarshalBSONValue reads a BSON date.
func (t *docTime) UnmarshalBSONValue(typ bsontype.Type, data []byte) error {
	var v time.Time
	if err := bson.UnmarshalValue(typ, data, &v); err != nil {
		return err
	}
	*t = docTime(v)
	return nil
}

// UnmarshalJSON reads FerretDB's stored form of a date.
func (t *docTime) UnmarshalJSON(data []byte) error {
	ms, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return fmt.Errorf("stored date %.40s: not milliseconds since the epoch", data)
	}
	*t = docTime(time.UnixMilli(ms))
	return nil
}

// snapshotDoc is a raw snapshot; _id is server|at. The snapshot itself is
// kept as its JSON wire form in a string: nothing queries inside it (rollups
// carry the figures), it keeps every value exact (nanosecond probe time,
// uint64 bytes), and FerretDB stores one string field 2.5 times faster than
// the fifty fields of a nested document.
type snapshotDoc struct {
	ID         string  `bson:"_id" json:"_id"`
	Server     string  `bson:"server" json:"server"`
	At         docTime `bson:"at" json:"at"`
	ProbeTime  docTime `bson:"probe_time" json:"probe_time"`
	DurationMS int64   `bson:"duration_ms" json:"duration_ms"`
	Snapshot   string  `bson:"snapshot" json:"snapshot"` // as JSON, see snapshotDoc
}

// attemptDoc is a failed attempt; _id is server|at.
type attemptDoc struct {
	ID         string  `bson:"_id" json:"_id"`
	Server     string  `bson:"server" json:"server"`
	At         docTime `bson:"at" json:"at"`
	DurationMS int64   `bson:"duration_ms" json:"duration_ms"`
	Kind       ErrKind `bson:"kind" json:"kind"`
	Err        string  `bson:"error" json:"error"`
}

// peakDoc is compared as a whole by $max: value first, then order, which is
// minus the time in milliseconds so that on equal values the earliest
// reading is the greater. Field order matters; the fields after order only
// differ when value and order are equal, that is for the same snapshot.
type peakDoc struct {
	Value        float64        `bson:"value" json:"value"`
	Order        int64          `bson:"order" json:"order"`
	At           docTime        `bson:"at" json:"at"`
	ProcsKnown   bool           `bson:"procs_known" json:"procs_known"`
	MatchedTotal int            `bson:"matched_total" json:"matched_total"`
	Procs        []KeywordCount `bson:"procs" json:"procs"`
}

type metricDoc struct {
	Peak *peakDoc `bson:"peak" json:"peak"`
	Sum  float64  `bson:"sum" json:"sum"`
	N    int64    `bson:"n" json:"n"`
}

type matchedDoc struct {
	Min int   `bson:"min" json:"min"`
	Max int   `bson:"max" json:"max"`
	Sum int64 `bson:"sum" json:"sum"`
	N   int64 `bson:"n" json:"n"`
}

// rollupDoc is a rollup; _id is server|period|start.
type rollupDoc struct {
	ID       string     `bson:"_id" json:"_id"`
	Server   string     `bson:"server" json:"server"`
	Period   Period     `bson:"period" json:"period"`
	Start    docTime    `bson:"start" json:"start"`
	Count    int64      `bson:"count" json:"count"`
	Failed   int64      `bson:"failed" json:"failed"`
	RolledTo docTime    `bson:"rolled_to" json:"rolled_to"` // latest result folded in
	CPU      metricDoc  `bson:"cpu" json:"cpu"`
	Mem      metricDoc  `bson:"mem" json:"mem"`
	Disk     metricDoc  `bson:"disk" json:"disk"`
	Load1    metricDoc  `bson:"load1" json:"load1"`
	Matched  matchedDoc `bson:"matched" json:"matched"`
	// Keywords is keyed by keywordField(keyword).
	Keywords map[string]keywordDoc `bson:"keywords" json:"keywords"`
}

type keywordDoc struct {
	Sum int64 `bson:"sum" json:"sum"`
	N   int64 `bson:"n" json:"n"`
}

// keywordField is a keyword as a field name: '%', '.' and '$' would end or
// change the meaning of a field path, so they are percent-escaped.
func keywordField(keyword string) string {
	return keywordEscaper.Replace(keyword)
}

var (
	keywordEscaper   = strings.NewReplacer("%", "%25", ".", "%2E", "$", "%24")
	keywordUnescaper = strings.NewReplacer("%25", "%", "%2E", ".", "%24", "$")
)

// keywordSums turns the stored keywords into sorted KeywordSums.
func keywordSums(fields map[string]keywordDoc) []KeywordSum {
	if len(fields) == 0 {
		return nil
	}
	out := make([]KeywordSum, 0, len(fields))
	for field, d := range fields {
		out = append(out, KeywordSum{Keyword: keywordUnescaper.Replace(field), Sum: d.Sum, N: d.N})
	}
	slices.SortFunc(out, func(a, b KeywordSum) int { return strings.Compare(a.Keyword, b.Keyword) })
	return out
}

// serverDoc tracks each server's newest results; _id is the server name.
type serverDoc struct {
	ID          string      `bson:"_id"`
	Latest      *latestRef  `bson:"latest"`
	LastFailure *failureRef `bson:"last_failure"`
}

// latestRef and failureRef are compared as a whole by $max: time first.
type latestRef struct {
	At time.Time `bson:"at"`
	ID string    `bson:"id"`
}

type failureRef struct {
	At         time.Time `bson:"at"`
	DurationMS int64     `bson:"duration_ms"`
	Kind       ErrKind   `bson:"kind"`
	Err        string    `bson:"error"`
}

// timeID formats t for _id: fixed width, so that "name|time" splits
// unambiguously even when a name contains '|'.
func timeID(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func resultID(server string, at time.Time) string { return server + "|" + timeID(at) }

func rollupID(server string, p Period, start time.Time) string {
	return server + "|" + string(p) + "|" + timeID(start)
}

func (d rollupDoc) rollup() Rollup {
	return Rollup{
		Server:   d.Server,
		Period:   d.Period,
		Start:    d.Start.utc(),
		Count:    d.Count,
		Failed:   d.Failed,
		CPU:      d.CPU.metric(),
		Mem:      d.Mem.metric(),
		Disk:     d.Disk.metric(),
		Load1:    d.Load1.metric(),
		Matched:  Matched(d.Matched),
		Keywords: keywordSums(d.Keywords),
	}
}

func (d metricDoc) metric() Metric {
	m := Metric{Sum: d.Sum, N: d.N}
	if d.Peak != nil {
		m.Peak = Peak{
			Value:        d.Peak.Value,
			At:           d.Peak.At.utc(),
			ProcsKnown:   d.Peak.ProcsKnown,
			MatchedTotal: d.Peak.MatchedTotal,
			Procs:        d.Peak.Procs,
		}
	}
	return m
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
