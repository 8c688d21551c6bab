package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/crawlerfleet/collector/monitor"
)

// The points: what a report reads of each snapshot (monitor.Point), kept
// beside the snapshots so that a report over days of raw snapshots neither
// reads nor decodes them. They are kept one bucket a server and
// BucketLength,
//
//	{_id: "server|<start>", server, start, pts: {"<ms into the bucket>": "<point>", ...}}
//
// each point a compact text (pointText): a report over 48 hours of one-
// minute snapshots reads 288 small documents a server instead of 2,880
// snapshots, and the points decode without a JSON object per figure. A
// bucket of ten one-minute points fits one SQLite page, which a whole hour
// would not: a row that spills over pages costs several times as much to
// read. A point is set under its time, so writing it again changes
// nothing. Snapshots stored before points were kept have none, and Points
// reads them from their snapshots.

// BucketLength is the span of one bucket of points.
const BucketLength = 10 * time.Minute

func bucketStart(t time.Time) time.Time { return t.UTC().Truncate(BucketLength) }

// pointBucket is one server's points over BucketLength.
type pointBucket struct {
	ID     string            `bson:"_id" json:"_id"`
	Server string            `bson:"server" json:"server"`
	Start  docTime           `bson:"start" json:"start"`
	Points map[string]string `bson:"pts" json:"pts"`
	// entries are the points as scanBucket reads them, in place of Points:
	// a map of ten entries a bucket costs more than reading them.
	entries []pointEntry
}

// pointEntry is one point of a bucket: its key (pointKey) and text.
type pointEntry struct{ key, text string }

// sorted returns b's points in time order.
func (b *pointBucket) sorted() []pointEntry {
	out := b.entries
	if out == nil {
		out = make([]pointEntry, 0, len(b.Points))
		for k, v := range b.Points {
			out = append(out, pointEntry{k, v})
		}
	}
	slices.SortFunc(out, func(x, y pointEntry) int { return strings.Compare(x.key, y.key) })
	return out
}

// pointKey is the field of a point in its bucket: milliseconds into the
// bucket, fixed width so that the keys sort as the times do.
func pointKey(at, start time.Time) string {
	return fmt.Sprintf("%07d", at.Sub(start).Milliseconds())
}

// upkeepPoints sets the point of each stored snapshot of results (seen[i])
// in its bucket.
func (s *Store) upkeepPoints(ctx context.Context, results []monitor.Result, seen []bool) error {
	sets := map[string]bson.D{}
	type bucket struct {
		server string
		start  time.Time
	}
	buckets := map[string]bucket{}
	for i, r := range results {
		if !seen[i] || r.Snapshot == nil {
			continue
		}
		start := bucketStart(r.At)
		id := resultID(r.Server, start)
		buckets[id] = bucket{r.Server, start}
		sets[id] = append(sets[id], bson.E{Key: "pts." + pointKey(r.At, start), Value: pointText(monitor.PointOf(r.At, r.Snapshot))})
	}
	ids := make([]string, 0, len(sets))
	for id := range sets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	models := make([]mongo.WriteModel, 0, len(ids))
	for _, id := range ids {
		b := buckets[id]
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: id}}).
			SetUpdate(bson.D{
				{Key: "$setOnInsert", Value: bson.D{{Key: "server", Value: b.server}, {Key: "start", Value: b.start}}},
				{Key: "$set", Value: sets[id]},
			}).
			SetUpsert(true))
	}
	return s.bulkUpdate(ctx, s.points, models)
}

// Points returns what a report reads of the snapshots of server with from
// <= At < to (monitor.Point), oldest first: the stored points, and for the
// snapshots stored before points were kept (those before the server's first
// point in the range), the points of the snapshots themselves.
//
// The embedded store reads the ranges from its SQLite file; an external
// FerretDB reads the whole collections.
func (s *Store) Points(ctx context.Context, server string, from, to time.Time) ([]monitor.Point, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	pts, err := s.storedPoints(ctx, server, from, to)
	if err != nil {
		return nil, fmt.Errorf("read points of %s: %w", server, err)
	}
	before := to
	if len(pts) > 0 {
		before = pts[0].At
	}
	var old []monitor.Result
	if s.direct != nil {
		old, err = s.snapshotsDirect(ctx, server, from, before, 0)
	} else {
		old, err = s.snapshotsByQuery(ctx, server, from, before, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("read points of %s: %w", server, err)
	}
	if len(old) == 0 {
		return pts, nil
	}
	out := make([]monitor.Point, 0, len(old)+len(pts))
	for _, r := range old {
		out = append(out, monitor.PointOf(r.At, r.Snapshot))
	}
	return append(out, pts...), nil
}

// storedPoints reads the buckets of server over [from, to) and returns
// their points within it, oldest first.
func (s *Store) storedPoints(ctx context.Context, server string, from, to time.Time) ([]monitor.Point, error) {
	first := bucketStart(from)
	out := make([]monitor.Point, 0, min(int(to.Sub(from)/time.Minute)+1, 4096)) // one a minute, as the default schedule
	var reader pointReader
	add := func(b pointBucket) error {
		if b.Server != server {
			return nil
		}
		start := b.Start.utc()
		for _, e := range b.sorted() {
			k := e.key
			ms, err := strconv.ParseInt(k, 10, 64)
			if err != nil {
				return fmt.Errorf("stored points %s: key %q is not milliseconds", b.ID, k)
			}
			at := start.Add(time.Duration(ms) * time.Millisecond)
			if at.Before(from) || !at.Before(to) {
				continue
			}
			p, err := reader.parse(at, e.text)
			if err != nil {
				return fmt.Errorf("stored points %s at %s: %w", b.ID, k, err)
			}
			out = append(out, p)
		}
		return nil
	}
	if s.direct != nil {
		err := s.direct.Scan(ctx, s.cfg.Database, pointsName, resultID(server, first), resultID(server, to), false,
			func(doc []byte) (bool, error) {
				var b pointBucket
				if err := decodeBucket(doc, &b); err != nil {
					return false, err
				}
				return true, add(b)
			})
		return out, scanErr(err)
	}
	docs, err := findAll[pointBucket](ctx, s, s.points, bson.D{
		{Key: "server", Value: server},
		{Key: "start", Value: bson.D{{Key: "$gte", Value: first}, {Key: "$lt", Value: to}}},
	}, options.Find().SetSort(bson.D{{Key: "start", Value: 1}}))
	if err != nil {
		return nil, err
	}
	for _, b := range docs {
		if err := add(b); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pointVersion starts every point text; a reader refuses another.
const pointVersion = "1"

// pointEscaper keeps ';' (the separator) and '%' out of the names in a
// point text.
var (
	pointEscaper   = strings.NewReplacer("%", "%25", ";", "%3B")
	pointUnescaper = strings.NewReplacer("%3B", ";", "%25", "%")
)

// pointText writes p (without its time) as one line of fields separated by
// ';', an unknown figure as an empty field:
//
//	1;cpu;load1;cpus;mem;avail;mem_total;disk;runq;swap;psi_cpu;psi_mem;psi_io;net;fd;matched;
//	  n;(keyword;count;rss;cpu;fds)×n;m;(path;used)×m
//
// matched is empty when the process section failed. Floats keep every bit
// (strconv 'g', -1).
func pointText(p monitor.Point) string {
	b := make([]byte, 0, 256)
	b = append(b, pointVersion...)
	f := func(v float64) {
		b = append(b, ';')
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		}
	}
	i := func(v int64) {
		b = append(b, ';')
		b = strconv.AppendInt(b, v, 10)
	}
	str := func(v string) {
		b = append(b, ';')
		b = append(b, pointEscaper.Replace(v)...)
	}
	f(p.CPU)
	f(p.Load1)
	i(int64(p.CPUs))
	f(p.Mem)
	f(p.MemAvail)
	b = append(b, ';')
	b = strconv.AppendUint(b, p.MemTotal, 10)
	for _, v := range []float64{p.Disk, p.RunQueue, p.SwapPages, p.PressureCPU, p.PressureMem, p.PressureIO, p.NetBytes, p.FDUsed} {
		f(v)
	}
	if p.Matched < 0 {
		b = append(b, ';')
		i(0)
	} else {
		i(int64(p.Matched))
		i(int64(len(p.Keywords)))
		for _, k := range p.Keywords {
			str(k.Keyword)
			f(k.Count)
			f(k.RSSBytes)
			f(k.CPUPercent)
			f(k.FDs)
		}
	}
	i(int64(len(p.Filesystems)))
	for _, fs := range p.Filesystems {
		str(fs.Path)
		f(fs.UsedPercent)
	}
	return string(b)
}

// errPointText is wrapped by the errors of parsePointText.
var errPointText = errors.New("not a point")

// parsePointText reads a point written by pointText, taken at at.
func parsePointText(at time.Time, text string) (monitor.Point, error) {
	var r pointReader
	return r.parse(at, text)
}

// A pointReader reads point texts one after the other, as a server's come:
// a field written as the previous text's field at the same place was (the
// memory size, a file system's use, an idle pressure, a steady count) takes
// that field's value without being parsed again. The zero value is ready.
type pointReader struct {
	fields, prev []string  // this text's fields and the previous one's
	vals, pvals  []float64 // the numbers read of them, by field
}

// parse reads a point written by pointText, taken at at.
func (r *pointReader) parse(at time.Time, text string) (monitor.Point, error) {
	r.fields, r.prev = r.prev[:0], r.fields
	r.vals, r.pvals = r.pvals[:0], r.vals
	for rest := text; ; {
		field, tail, found := strings.Cut(rest, ";")
		r.fields = append(r.fields, field)
		if !found {
			break
		}
		rest = tail
	}
	nfields := len(r.fields)
	r.vals = slices.Grow(r.vals, nfields)[:nfields]
	for i := range r.vals {
		r.vals[i] = math.NaN() // not a number read (yet)
	}
	pos := 0
	var err error
	next := func() string {
		if pos >= nfields {
			if err == nil {
				err = fmt.Errorf("%w: too few fields in %.60q", errPointText, text)
			}
			return ""
		}
		pos++
		return r.fields[pos-1]
	}
	bad := func(s string) {
		if err == nil {
			err = fmt.Errorf("%w: field %d %q", errPointText, pos, s)
		}
	}
	// number reads the next field with parse (an empty one is NaN), or
	// takes the previous text's number at that place when the field is the
	// same.
	number := func(parse func(string) (float64, error)) float64 {
		s := next()
		if s == "" {
			return math.NaN()
		}
		i := pos - 1
		if i < len(r.prev) && r.prev[i] == s && !math.IsNaN(r.pvals[i]) {
			r.vals[i] = r.pvals[i]
			return r.vals[i]
		}
		v, e := parse(s)
		if e != nil {
			bad(s)
			return v
		}
		r.vals[i] = v
		return v
	}
	float := func() float64 {
		return number(func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	}
	integer := func() int {
		v := number(func(s string) (float64, error) {
			n, e := strconv.Atoi(s)
			return float64(n), e
		})
		if math.IsNaN(v) {
			bad("")
			return 0
		}
		return int(v)
	}
	if v := next(); v != pointVersion {
		r.fields = r.fields[:0]
		return monitor.Point{}, fmt.Errorf("%w: version %.10q, want %s", errPointText, v, pointVersion)
	}
	p := monitor.Point{At: at}
	p.CPU, p.Load1, p.CPUs = float(), float(), integer()
	p.Mem, p.MemAvail = float(), float()
	if s := next(); s != "" {
		v, e := strconv.ParseUint(s, 10, 64)
		if e != nil {
			bad(s)
		}
		p.MemTotal = v
	}
	for _, dst := range []*float64{&p.Disk, &p.RunQueue, &p.SwapPages, &p.PressureCPU, &p.PressureMem, &p.PressureIO, &p.NetBytes, &p.FDUsed} {
		*dst = float()
	}
	if s := next(); s == "" {
		p.Matched = -1
		integer() // 0 keywords
	} else {
		m, e := strconv.Atoi(s)
		if e != nil {
			bad(s)
		}
		p.Matched = m
		n := integer()
		if n < 0 || n > nfields {
			r.fields = r.fields[:0]
			return monitor.Point{}, fmt.Errorf("%w: %d keywords", errPointText, n)
		}
		p.Keywords = make([]monitor.KeywordPoint, n)
		for j := range p.Keywords {
			k := &p.Keywords[j]
			k.Keyword = unescapePoint(next())
			k.Count, k.RSSBytes, k.CPUPercent, k.FDs = float(), float(), float(), float()
		}
	}
	n := integer()
	if n < 0 || n > nfields {
		r.fields = r.fields[:0]
		return monitor.Point{}, fmt.Errorf("%w: %d file systems", errPointText, n)
	}
	if n > 0 {
		p.Filesystems = make([]monitor.FilesystemUsage, n)
		for j := range p.Filesystems {
			p.Filesystems[j].Path = unescapePoint(next())
			p.Filesystems[j].UsedPercent = float()
		}
	}
	if err == nil && pos != nfields {
		err = fmt.Errorf("%w: %d fields left over in %.60q", errPointText, nfields-pos, text)
	}
	if err != nil {
		r.fields = r.fields[:0] // nothing of a bad text is reused
		return monitor.Point{}, err
	}
	return p, nil
}

// unescapePoint undoes pointEscaper, without work for names that need none.
func unescapePoint(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	return pointUnescaper.Replace(s)
}

// decodeBucket decodes a bucket as Scan hands it over. Buckets are many and
// their fields few and plain, so it reads the common form itself: an object
// of string and number fields and the pts object of strings, none with an
// escape. Anything else goes through encoding/json.
func decodeBucket(doc []byte, b *pointBucket) error {
	if ok := scanBucket(doc, b); ok {
		return nil
	}
	*b = pointBucket{}
	return decodeStored(doc, b)
}

// scanBucket is decodeBucket's own reader; false: not the common form.
func scanBucket(doc []byte, b *pointBucket) bool {
	i := 0
	skipSpace := func() {
		for i < len(doc) && (doc[i] == ' ' || doc[i] == '\n' || doc[i] == '\t' || doc[i] == '\r') {
			i++
		}
	}
	expect := func(c byte) bool {
		skipSpace()
		if i < len(doc) && doc[i] == c {
			i++
			return true
		}
		return false
	}
	// str reads a string without escapes.
	str := func() (string, bool) {
		skipSpace()
		if i >= len(doc) || doc[i] != '"' {
			return "", false
		}
		j := i + 1
		for j < len(doc) && doc[j] != '"' {
			if doc[j] == '\\' || doc[j] < 0x20 {
				return "", false
			}
			j++
		}
		if j >= len(doc) {
			return "", false
		}
		s := string(doc[i+1 : j])
		i = j + 1
		return s, true
	}
	number := func() (int64, bool) {
		skipSpace()
		j := i
		for j < len(doc) && (doc[j] == '-' || doc[j] >= '0' && doc[j] <= '9') {
			j++
		}
		v, err := strconv.ParseInt(string(doc[i:j]), 10, 64)
		i = j
		return v, err == nil
	}
	if !expect('{') {
		return false
	}
	for first := true; ; first = false {
		if expect('}') {
			break
		}
		if !first && !expect(',') {
			return false
		}
		key, ok := str()
		if !ok || !expect(':') {
			return false
		}
		switch key {
		case "_id":
			if b.ID, ok = str(); !ok {
				return false
			}
		case "server":
			if b.Server, ok = str(); !ok {
				return false
			}
		case "start":
			ms, ok := number()
			if !ok {
				return false
			}
			b.Start = docTime(time.UnixMilli(ms))
		case "pts":
			if !expect('{') {
				return false
			}
			b.entries = make([]pointEntry, 0, 16)
			for first := true; ; first = false {
				if expect('}') {
					break
				}
				if !first && !expect(',') {
					return false
				}
				k, ok := str()
				if !ok || !expect(':') {
					return false
				}
				v, ok := str()
				if !ok {
					return false
				}
				b.entries = append(b.entries, pointEntry{k, v})
			}
		default:
			return false
		}
	}
	skipSpace()
	return i == len(doc) && b.ID != "" && b.entries != nil
}
