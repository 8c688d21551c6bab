package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// The documents as stored (see the package doc). Each decodes from BSON
// through the driver; rollupDoc, snapshotDoc and attemptDoc (with the
// peakDoc, metricDoc, matchedDoc and keywordDoc inside a rollup) also decode
// from the JSON that embedded.Server.Scan hands over in the embedded
// store's range reads, where dates are milliseconds since the epoch (see
// docTime). They are private: the domain types of package monitor are what
// the store takes and gives, and these only say how they are kept.

// docTime is a time in a stored document: a BSON date (to the millisecond)
// through the driver, and milliseconds since the epoch in the JSON of
// embedded.Server.Scan.
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

// UnmarshalJSON reads a date as Scan hands it over.
func (t *docTime) UnmarshalJSON(data []byte) error {
	ms, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return fmt.Errorf("stored date %.40s: not milliseconds since the epoch", data)
	}
	*t = docTime(time.UnixMilli(ms))
	return nil
}

// snapshotDoc is a raw snapshot; _id is server|slot for a scheduled result,
// server|at for another (see storedID). The snapshot itself is
// kept as its JSON wire form in a string: nothing queries inside it (rollups
// carry the figures), it keeps every value exact (nanosecond probe time,
// uint64 bytes), and FerretDB stores one string field 2.5 times faster than
// the fifty fields of a nested document.
type snapshotDoc struct {
	ID        string  `bson:"_id" json:"_id"`
	Server    string  `bson:"server" json:"server"`
	At        docTime `bson:"at" json:"at"`
	ProbeTime docTime `bson:"probe_time" json:"probe_time"`
	// ClockSkewMS is the probe's clock minus the collector's, kept when
	// it is large (monitor.Result.ClockSkew).
	ClockSkewMS int64  `bson:"clock_skew_ms,omitempty" json:"clock_skew_ms,omitempty"`
	DurationMS  int64  `bson:"duration_ms" json:"duration_ms"`
	Snapshot    string `bson:"snapshot" json:"snapshot"` // as JSON, see snapshotDoc
	// Slot and Member are monitor.Result's, absent when not set (and in
	// documents stored before they existed).
	Slot   *docTime `bson:"slot,omitempty" json:"slot,omitempty"`
	Member string   `bson:"member,omitempty" json:"member,omitempty"`
}

// attemptDoc is a failed attempt; _id as snapshotDoc's.
type attemptDoc struct {
	ID         string       `bson:"_id" json:"_id"`
	Server     string       `bson:"server" json:"server"`
	At         docTime      `bson:"at" json:"at"`
	DurationMS int64        `bson:"duration_ms" json:"duration_ms"`
	Kind       monitor.Kind `bson:"kind" json:"kind"`
	Err        string       `bson:"error" json:"error"`
	Slot       *docTime     `bson:"slot,omitempty" json:"slot,omitempty"`
	Member     string       `bson:"member,omitempty" json:"member,omitempty"`
}

// slotDoc is r's slot for a document: nil when it has none.
func slotDoc(r monitor.Result) *docTime {
	if r.Slot.IsZero() {
		return nil
	}
	t := docTime(r.Slot)
	return &t
}

// slotTime is the slot of a stored document: zero when it has none.
func slotTime(t *docTime) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.utc()
}

// peakDoc is compared as a whole by $max: value first, then order, which is
// minus the time in milliseconds so that on equal values the earliest
// reading is the greater. Field order matters; the fields after order only
// differ when value and order are equal, that is for the same snapshot.
type peakDoc struct {
	Value        float64   `bson:"value" json:"value"`
	Order        int64     `bson:"order" json:"order"`
	At           docTime   `bson:"at" json:"at"`
	ProcsKnown   bool      `bson:"procs_known" json:"procs_known"`
	MatchedTotal int       `bson:"matched_total" json:"matched_total"`
	Procs        []procDoc `bson:"procs" json:"procs"`
	// SampleMS and Watched say how the value was seen: monitor.Peak's
	// Sample and Watched. Absent in rollups written before they were kept.
	SampleMS int64 `bson:"sample_ms,omitempty" json:"sample_ms,omitempty"`
	Watched  bool  `bson:"watched,omitempty" json:"watched,omitempty"`
}

// procDoc is one keyword's process count at a peak.
type procDoc struct {
	Keyword string `bson:"keyword" json:"keyword"`
	Count   int    `bson:"count" json:"count"`
}

// metricDoc is one metric of a rollup. Rollups keep the peak as peak text
// (PK, see peakText); Peak is the peak document of rollups written before.
// A rollup of the hour the collector was upgraded in may hold both: the
// greater wins.
type metricDoc struct {
	Peak *peakDoc `bson:"peak,omitempty" json:"peak,omitempty"`
	PK   string   `bson:"pk,omitempty" json:"pk,omitempty"`
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
	ID       string         `bson:"_id" json:"_id"`
	Server   string         `bson:"server" json:"server"`
	Period   monitor.Period `bson:"period" json:"period"`
	Start    docTime        `bson:"start" json:"start"`
	Count    int64          `bson:"count" json:"count"`
	Failed   int64          `bson:"failed" json:"failed"`
	RolledTo docTime        `bson:"rolled_to" json:"rolled_to"` // latest result folded in
	CPU      metricDoc      `bson:"cpu" json:"cpu"`
	Mem      metricDoc      `bson:"mem" json:"mem"`
	Disk     metricDoc      `bson:"disk" json:"disk"`
	Load1    metricDoc      `bson:"load1" json:"load1"`
	Matched  matchedDoc     `bson:"matched" json:"matched"`
	// Keywords is keyed by keywordField(keyword).
	Keywords map[string]keywordDoc `bson:"keywords" json:"keywords"`
	// The figures of schema version 2 (see monitor.Rollup); absent from
	// rollups of version-1 snapshots and from older rollups.
	Unavail  metricDoc `bson:"unavail" json:"unavail"`
	Swap     metricDoc `bson:"swap" json:"swap"`
	PSICPU   metricDoc `bson:"psi_cpu" json:"psi_cpu"`
	PSIMem   metricDoc `bson:"psi_mem" json:"psi_mem"`
	PSIIO    metricDoc `bson:"psi_io" json:"psi_io"`
	RunQueue metricDoc `bson:"runq" json:"runq"`
	Net      metricDoc `bson:"net" json:"net"`
	FD       metricDoc `bson:"fd" json:"fd"`
	// FS is keyed by keywordField(mount point).
	FS map[string]metricDoc `bson:"fs" json:"fs"`
}

type keywordDoc struct {
	Sum int64 `bson:"sum" json:"sum"`
	N   int64 `bson:"n" json:"n"`
	// The group's resident memory and CPU summed over RSSN snapshots, and
	// its descriptors (with the count) over FDN; absent from older rollups.
	RSS     float64 `bson:"rss,omitempty" json:"rss,omitempty"`
	CPU     float64 `bson:"cpu,omitempty" json:"cpu,omitempty"`
	RSSN    int64   `bson:"rn,omitempty" json:"rn,omitempty"`
	FDs     int64   `bson:"fd,omitempty" json:"fd,omitempty"`
	FDN     int64   `bson:"fn,omitempty" json:"fn,omitempty"`
	FDCount int64   `bson:"fc,omitempty" json:"fc,omitempty"`
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
func keywordSums(fields map[string]keywordDoc) []monitor.KeywordSum {
	if len(fields) == 0 {
		return nil
	}
	out := make([]monitor.KeywordSum, 0, len(fields))
	for field, d := range fields {
		out = append(out, monitor.KeywordSum{Keyword: keywordUnescaper.Replace(field), Sum: d.Sum, N: d.N,
			RSSBytes: d.RSS, CPUPercent: d.CPU, RSSN: d.RSSN, FDs: d.FDs, FDN: d.FDN, FDCount: d.FDCount})
	}
	slices.SortFunc(out, func(a, b monitor.KeywordSum) int { return strings.Compare(a.Keyword, b.Keyword) })
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
	At         time.Time    `bson:"at"`
	DurationMS int64        `bson:"duration_ms"`
	Kind       monitor.Kind `bson:"kind"`
	Err        string       `bson:"error"`
}

// timeID formats t for _id: fixed width, so that "name|time" splits
// unambiguously even when a name contains '|'.
func timeID(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func resultID(server string, at time.Time) string { return server + "|" + timeID(at) }

// storedID is the _id of the document that keeps r: server|slot for a
// scheduled result, so that the one result of a server and slot is kept
// once whoever probed it; server|at for another.
func storedID(r monitor.Result) string { return resultID(r.Server, r.Key()) }

func rollupID(server string, p monitor.Period, start time.Time) string {
	return server + "|" + string(p) + "|" + timeID(start)
}

// result returns the stored snapshot as a Result.
func (d snapshotDoc) result() (monitor.Result, error) {
	var snap snapshot.Snapshot
	if err := json.Unmarshal([]byte(d.Snapshot), &snap); err != nil {
		return monitor.Result{}, fmt.Errorf("decode stored snapshot %s: %w", d.ID, err)
	}
	return monitor.Result{
		Server:    d.Server,
		At:        d.At.utc(),
		Slot:      slotTime(d.Slot),
		Member:    d.Member,
		Duration:  time.Duration(d.DurationMS) * time.Millisecond,
		Snapshot:  &snap,
		ClockSkew: time.Duration(d.ClockSkewMS) * time.Millisecond,
	}, nil
}

// result returns the stored failed attempt as a Result.
func (d attemptDoc) result() monitor.Result {
	r := failure(d.Server, d.At.utc(), d.DurationMS, d.Kind, d.Err)
	r.Slot, r.Member = slotTime(d.Slot), d.Member
	return r
}

// failure is a stored failed attempt as a Result: its error is the stored
// message, or the kind when none was stored.
func failure(server string, at time.Time, durationMS int64, kind monitor.Kind, msg string) monitor.Result {
	if msg == "" {
		msg = string(kind)
	}
	return monitor.Result{
		Server:   server,
		At:       at,
		Duration: time.Duration(durationMS) * time.Millisecond,
		Kind:     kind,
		Err:      errors.New(msg),
	}
}

func (d rollupDoc) rollup() monitor.Rollup {
	return monitor.Rollup{
		Server:   d.Server,
		Period:   d.Period,
		Start:    d.Start.utc(),
		Count:    d.Count,
		Failed:   d.Failed,
		CPU:      d.CPU.metric(),
		Mem:      d.Mem.metric(),
		Disk:     d.Disk.metric(),
		Load1:    d.Load1.metric(),
		Matched:  monitor.Matched(d.Matched),
		Keywords: keywordSums(d.Keywords),

		Unavailable: d.Unavail.metric(),
		SwapPages:   d.Swap.metric(),
		PressureCPU: d.PSICPU.metric(),
		PressureMem: d.PSIMem.metric(),
		PressureIO:  d.PSIIO.metric(),
		RunQueue:    d.RunQueue.metric(),
		NetBytes:    d.Net.metric(),
		FDUsed:      d.FD.metric(),
		Filesystems: filesystemMetrics(d.FS),
	}
}

// filesystemMetrics turns the stored file systems into FilesystemMetrics
// sorted by path.
func filesystemMetrics(fields map[string]metricDoc) []monitor.FilesystemMetric {
	if len(fields) == 0 {
		return nil
	}
	out := make([]monitor.FilesystemMetric, 0, len(fields))
	for field, d := range fields {
		out = append(out, monitor.FilesystemMetric{Path: keywordUnescaper.Replace(field), Metric: d.metric()})
	}
	slices.SortFunc(out, func(a, b monitor.FilesystemMetric) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func (d metricDoc) metric() monitor.Metric {
	m := monitor.Metric{Sum: d.Sum, N: d.N}
	var text *monitor.Peak
	if d.PK != "" {
		// A peak that cannot be read is left out rather than failing the
		// whole read: its sums still count.
		if p, err := parsePeakText(d.PK); err == nil {
			text = &p
		}
	}
	if d.Peak != nil {
		m.Peak = monitor.Peak{
			Value:        d.Peak.Value,
			At:           d.Peak.At.utc(),
			ProcsKnown:   d.Peak.ProcsKnown,
			MatchedTotal: d.Peak.MatchedTotal,
			Sample:       time.Duration(d.Peak.SampleMS) * time.Millisecond,
			Watched:      d.Peak.Watched,
		}
		if d.Peak.Procs != nil {
			m.Peak.Procs = make([]monitor.KeywordCount, len(d.Peak.Procs))
			for i, p := range d.Peak.Procs {
				m.Peak.Procs[i] = monitor.KeywordCount{Keyword: p.Keyword, Count: p.Count}
			}
		}
	}
	if text != nil && (d.Peak == nil || text.Value > m.Peak.Value || text.Value == m.Peak.Value && text.At.Before(m.Peak.At)) {
		m.Peak = *text
	}
	return m
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
