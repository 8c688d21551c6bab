package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// maxStatements caps the updates sent in one command. FerretDB v1.24 keeps
// one SQLite connection open per update statement until the whole command
// ends, and its pool has 100: a bigger command deadlocks the server.
const maxStatements = 32

// WriteResults stores results in one pass: snapshots as raw documents with
// their hourly and daily rollups, failures as attempts, and each server's
// pointers to its newest snapshot and failure. Each result is first
// normalized (monitor.Result.Normalized). A result already stored (same
// server and time, or same server and slot) is skipped, and so is its
// rollup upkeep, so writing a batch again changes nothing; so is a result
// whose slot another collector stored first, for which the server then has
// that collector's result alone.
//
// refused is nil, or holds one entry per result: refused[i] != nil when
// results[i] is invalid or the database refused it for itself (a bad
// document); the others are stored. err != nil when the pass failed as a
// whole; it may then be repeated without harm, and refused is nil. For an
// outage (the database could not be reached or did not answer in time)
// errors.Is(err, monitor.ErrUnavailable) holds. Package spool wraps a Store
// to keep results on disk while the database is down.
func (s *Store) WriteResults(ctx context.Context, results []monitor.Result) (refused []error, err error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	refused, err = s.writeResults(ctx, results)
	if err != nil {
		return nil, fmt.Errorf("write results: %w", s.unavailable(err))
	}
	return refused, nil
}

// writeResults is WriteResults under writeMu, its error not yet marked.
func (s *Store) writeResults(ctx context.Context, in []monitor.Result) ([]error, error) {
	refused := make([]error, len(in))
	anyRefused := false
	refuse := func(i int, err error) {
		refused[i] = err
		anyRefused = true
	}
	results := make([]monitor.Result, len(in))
	valid := make([]bool, len(in))
	for i, r := range in {
		r, err := r.Normalized()
		if err != nil {
			refuse(i, err)
			continue
		}
		results[i], valid[i] = r, true
	}
	if !slices.Contains(valid, true) {
		if !anyRefused {
			return nil, nil
		}
		return refused, nil
	}

	if err := s.setup(ctx); err != nil {
		return nil, err
	}

	var snapIdx, attIdx []int
	var snapDocs, attDocs []any
	ids := make(map[string]bool, len(results))
	for i, r := range results {
		if !valid[i] {
			continue
		}
		// A snapshot and a failure may share an _id (one slot), in
		// different collections.
		id := fmt.Sprintf("%t|%s", r.Snapshot == nil, storedID(r))
		if ids[id] {
			continue // the same result twice in one batch: keep the first
		}
		ids[id] = true
		doc, err := rawDoc(r)
		if err != nil {
			refuse(i, err)
			continue
		}
		// Encoded here as the client would (its registry is the default one),
		// so that a document that cannot be encoded is singled out before the
		// batch is sent.
		raw, err := bson.Marshal(doc)
		if err != nil {
			refuse(i, fmt.Errorf("encode result for %s at %s: %w", r.Server, timeID(r.At), err))
			continue
		}
		if r.Snapshot != nil {
			snapIdx, snapDocs = append(snapIdx, i), append(snapDocs, bson.Raw(raw))
		} else {
			attIdx, attDocs = append(attIdx, i), append(attDocs, bson.Raw(raw))
		}
	}

	// fresh[i]: inserted now; seen[i]: inserted now or before.
	fresh := make([]bool, len(results))
	seen := make([]bool, len(results))
	for _, part := range []struct {
		coll *mongo.Collection
		idx  []int
		docs []any
	}{{s.snapshots, snapIdx, snapDocs}, {s.attempts, attIdx, attDocs}} {
		status, errs, err := insertAll(ctx, part.coll, part.docs)
		if err != nil {
			return nil, err
		}
		for j, i := range part.idx {
			switch {
			case errs[j] != nil:
				r := results[i]
				refuse(i, fmt.Errorf("store result for %s at %s: %w", r.Server, timeID(r.At), errs[j]))
			case status[j]:
				fresh[i], seen[i] = true, true
			default:
				seen[i] = true
			}
		}
	}

	if err := s.dropOthers(ctx, results, fresh, seen); err != nil {
		return nil, err
	}
	// After dropOthers: a result of a slot another collector stored first
	// leaves no point either.
	if err := s.upkeepPoints(ctx, results, seen); err != nil {
		return nil, err
	}
	if err := s.upkeepRollups(ctx, results, fresh, seen); err != nil {
		return nil, err
	}
	if err := s.upkeepServers(ctx, results, seen); err != nil {
		return nil, err
	}
	if !anyRefused {
		return nil, nil
	}
	return refused, nil
}

// dropOthers unmarks as seen the scheduled results that were not inserted
// now because a document of their server and slot was there already, and
// that document is not theirs (its at differs): another collector probed
// the server in the same slot and stored its result first. Neither rollups
// nor pointers take them, so the slot counts once. A result whose own
// insert landed in an earlier pass (at equal) stays seen, for the recovery
// that upkeepRollups makes. Duplicates are rare (a replay, two collectors
// that disagreed on a server's owner for a slot): each costs one lookup by
// _id.
func (s *Store) dropOthers(ctx context.Context, results []monitor.Result, fresh, seen []bool) error {
	for i, r := range results {
		if !seen[i] || fresh[i] || r.Slot.IsZero() {
			continue
		}
		coll := s.snapshots
		if r.Snapshot == nil {
			coll = s.attempts
		}
		var d struct {
			At time.Time `bson:"at"`
		}
		err := findOne(ctx, coll, storedID(r), &d, options.FindOne().SetProjection(bson.D{{Key: "at", Value: 1}}))
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // gone meanwhile (pruned, deleted): nothing to count twice
		}
		if err != nil {
			return fmt.Errorf("read %s %s: %w", coll.Name(), storedID(r), err)
		}
		if !d.At.Equal(r.At) {
			seen[i] = false
			s.logger.Warn("another collector stored this server's result of the slot first; this one is not kept",
				"server", r.Server, "slot", r.Slot, "member", r.Member)
		}
	}
	return nil
}

// rawDoc returns the document that stores r: a snapshotDoc or an
// attemptDoc.
func rawDoc(r monitor.Result) (any, error) {
	id := storedID(r)
	if r.Snapshot == nil {
		return attemptDoc{
			ID:         id,
			Server:     r.Server,
			At:         docTime(r.At),
			DurationMS: r.Duration.Milliseconds(),
			Kind:       r.Kind,
			Err:        r.Error(),
			Slot:       slotDoc(r),
			Member:     r.Member,
		}, nil
	}
	js, err := json.Marshal(r.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot of %s at %s: %w", r.Server, timeID(r.At), err)
	}
	return snapshotDoc{
		ID:          id,
		Server:      r.Server,
		At:          docTime(r.At),
		ProbeTime:   docTime(r.Snapshot.Time),
		ClockSkewMS: r.ClockSkew.Milliseconds(),
		DurationMS:  r.Duration.Milliseconds(),
		Snapshot:    string(js),
		Slot:        slotDoc(r),
		Member:      r.Member,
	}, nil
}

// insertAll inserts docs unordered. For each it reports whether it was
// inserted now (false: already there, or refused with errs[i] set). err is
// set when the insert failed as a whole.
func insertAll(ctx context.Context, coll *mongo.Collection, docs []any) (inserted []bool, errs []error, err error) {
	inserted = make([]bool, len(docs))
	errs = make([]error, len(docs))
	if len(docs) == 0 {
		return inserted, errs, nil
	}
	for i := range inserted {
		inserted[i] = true
	}
	_, err = coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
		for _, we := range bwe.WriteErrors {
			if we.Index < 0 || we.Index >= len(docs) {
				return nil, nil, fmt.Errorf("insert into %s: write error for document %d of %d: %w", coll.Name(), we.Index, len(docs), err)
			}
			inserted[we.Index] = false
			if !isDuplicateKey(we.Code) {
				errs[we.Index] = fmt.Errorf("insert into %s: %s (code %d)", coll.Name(), we.Message, we.Code)
			}
		}
		return inserted, errs, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("insert into %s: %w", coll.Name(), err)
	}
	return inserted, errs, nil
}

func isDuplicateKey(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

// upkeepRollups folds results into their hourly and daily rollups.
//
// A result inserted just now is folded in. A result that was already stored
// is folded into a rollup only when it is newer than the newest result of
// its member (the collector that probed it) that rollup has taken, kept in
// rolled_to_by: that is a result whose insert succeeded in an earlier pass
// that failed before its rollup upkeep. Each rollup's counters and marks
// change in one atomic update, so a pass repeated after any failure counts
// each result exactly once, provided the results of one member and server
// arrive in time order (its spool keeps that order). The mark is the
// member's, not the rollup's: after a member was killed between the two,
// another member that took its servers over folds newer results before the
// killed member's spool is replayed. A rollup written before rolled_to_by
// existed has rolled_to alone, the newest result of any member.
func (s *Store) upkeepRollups(ctx context.Context, results []monitor.Result, fresh, seen []bool) error {
	type target struct {
		period monitor.Period
		id     string
		start  time.Time
	}
	targets := func(r monitor.Result) [2]target {
		h, d := monitor.Hour.Start(r.At), monitor.Day.Start(r.At)
		return [2]target{{monitor.Hour, rollupID(r.Server, monitor.Hour, h), h}, {monitor.Day, rollupID(r.Server, monitor.Day, d), d}}
	}

	// The marks of the rollups that results stored before would go to.
	type marks struct {
		RolledTo   time.Time            `bson:"rolled_to"`
		RolledToBy map[string]time.Time `bson:"rolled_to_by"`
	}
	rolled := map[string]marks{}
	for i, r := range results {
		if seen[i] && !fresh[i] {
			for _, t := range targets(r) {
				rolled[t.id] = marks{}
			}
		}
	}
	for id := range rolled {
		var d marks
		err := findOne(ctx, s.rollups, id, &d, options.FindOne().SetProjection(bson.D{{Key: "rolled_to", Value: 1}, {Key: "rolled_to_by", Value: 1}}))
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("read rollup %s: %w", id, err)
		}
		rolled[id] = d
	}
	// rolledTo is the newest result of r's member that rollup id has taken.
	rolledTo := func(id string, r monitor.Result) time.Time {
		d := rolled[id]
		if d.RolledToBy == nil {
			return d.RolledTo
		}
		return d.RolledToBy[memberField(r.Member)]
	}

	aggs := map[string]*rollupAgg{}
	for i, r := range results {
		if !seen[i] {
			continue
		}
		for _, t := range targets(r) {
			if !fresh[i] && !r.At.After(rolledTo(t.id, r)) {
				continue
			}
			a := aggs[t.id]
			if a == nil {
				a = &rollupAgg{server: r.Server, period: t.period, start: t.start}
				aggs[t.id] = a
			}
			a.add(r)
		}
	}

	ids := make([]string, 0, len(aggs))
	for id := range aggs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	models := make([]mongo.WriteModel, 0, len(ids))
	for _, id := range ids {
		a := aggs[id]
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: id}}).
			SetUpdate(a.update()).
			SetUpsert(true))
	}
	return s.bulkUpdate(ctx, s.rollups, models)
}

// upkeepServers moves each server's pointers to its newest snapshot and
// newest failure.
func (s *Store) upkeepServers(ctx context.Context, results []monitor.Result, seen []bool) error {
	latest := map[string]*latestRef{}
	failures := map[string]*failureRef{}
	var names []string
	for i, r := range results {
		if !seen[i] {
			continue
		}
		if latest[r.Server] == nil && failures[r.Server] == nil {
			names = append(names, r.Server)
		}
		if r.Snapshot != nil {
			if l := latest[r.Server]; l == nil || r.At.After(l.At) {
				latest[r.Server] = &latestRef{At: r.At, ID: storedID(r)}
			}
		} else if f := failures[r.Server]; f == nil || r.At.After(f.At) {
			failures[r.Server] = &failureRef{At: r.At, DurationMS: r.Duration.Milliseconds(), Kind: r.Kind, Err: r.Error()}
		}
	}
	sort.Strings(names)
	models := make([]mongo.WriteModel, 0, len(names))
	for _, name := range names {
		max := bson.D{}
		if l := latest[name]; l != nil {
			max = append(max, bson.E{Key: "latest", Value: l})
		}
		if f := failures[name]; f != nil {
			max = append(max, bson.E{Key: "last_failure", Value: f})
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: name}}).
			SetUpdate(bson.D{{Key: "$max", Value: max}}).
			SetUpsert(true))
	}
	return s.bulkUpdate(ctx, s.servers, models)
}

// bulkUpdate sends models unordered, maxStatements at a time. A statement
// the database refuses is logged and skipped: the raw data is stored, and
// repeating the pass would not help.
func (s *Store) bulkUpdate(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel) error {
	err := bulkWrite(ctx, coll, models, func(chunk []mongo.WriteModel, refused []mongo.BulkWriteError) error {
		for _, we := range refused {
			var id any
			if we.Index >= 0 && we.Index < len(chunk) {
				if m, ok := chunk[we.Index].(*mongo.UpdateOneModel); ok {
					id = m.Filter
				}
			}
			s.logger.Error("database refused an update; rollup or pointer left behind",
				"collection", coll.Name(), "filter", fmt.Sprint(id), "err", we.Message, "code", we.Code)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update %s: %w", coll.Name(), err)
	}
	return nil
}

// bulkWrite sends models to coll unordered, at most maxStatements in one
// command, in order. When the database refuses some statements of a command
// (and nothing else went wrong) and onRefused is not nil, onRefused gets the
// command's models and the refusals, whose Index counts within that
// command; bulkWrite goes on with the next command unless onRefused returns
// an error. Any other error, or a refusal with onRefused nil, ends it and is
// returned as it is.
func bulkWrite(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel,
	onRefused func(chunk []mongo.WriteModel, refused []mongo.BulkWriteError) error) error {
	for chunk := range slices.Chunk(models, maxStatements) {
		_, err := coll.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
		var bwe mongo.BulkWriteException
		if onRefused != nil && errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
			err = onRefused(chunk, bwe.WriteErrors)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rollupAgg is what one pass adds to one rollup.
type rollupAgg struct {
	server string
	period monitor.Period
	start  time.Time

	count, failed         int64
	rolledTo              time.Time
	rolledToBy            map[string]time.Time // by memberField
	cpu, mem, disk, load1 metricAgg
	matched               matchedAgg
	keywords              map[string]*keywordAgg // by keyword

	// The figures of schema version 2, by field name (see v2Metrics), and
	// each file system's used percent by mount point.
	v2 map[string]*metricAgg
	fs map[string]*metricAgg
}

type keywordAgg struct {
	sum, n            int64
	rss, cpu          float64
	rssN              int64
	fds, fdN, fdCount int64
}

// v2Metrics are the rollup fields of the figures of schema version 2 and
// how each is read from a snapshot's point (NaN: no reading).
var v2Metrics = []struct {
	field string
	read  func(monitor.Point) float64
}{
	{"unavail", func(p monitor.Point) float64 { return 100 - p.MemAvail }},
	{"swap", func(p monitor.Point) float64 { return p.SwapPages }},
	{"psi_cpu", func(p monitor.Point) float64 { return p.PressureCPU }},
	{"psi_mem", func(p monitor.Point) float64 { return p.PressureMem }},
	{"psi_io", func(p monitor.Point) float64 { return p.PressureIO }},
	{"runq", func(p monitor.Point) float64 { return p.RunQueue }},
	{"net", func(p monitor.Point) float64 { return p.NetBytes }},
	{"fd", func(p monitor.Point) float64 { return p.FDUsed }},
}

type metricAgg struct {
	peak *peakDoc
	sum  float64
	n    int64
}

type matchedAgg struct {
	min, max int
	sum, n   int64
}

func (a *rollupAgg) add(r monitor.Result) {
	if a.rolledToBy == nil {
		a.rolledToBy = map[string]time.Time{}
	}
	if m := memberField(r.Member); r.At.After(a.rolledToBy[m]) {
		a.rolledToBy[m] = r.At
	}
	if r.At.After(a.rolledTo) {
		a.rolledTo = r.At
	}
	snap := r.Snapshot
	if snap == nil {
		a.failed++
		return
	}
	a.count++
	before := a.peaks()
	if snap.CPU.Error == "" {
		a.cpu.add(snap.CPU.Percent, r.At, snap)
		a.load1.add(snap.CPU.Load1, r.At, snap)
	}
	if snap.Memory.Error == "" {
		a.mem.add(snap.Memory.UsedPercent, r.At, snap)
	}
	if snap.Disk.Error == "" {
		a.disk.add(snap.Disk.UsedPercent, r.At, snap)
	}
	a.watchedPeaks(r, before)
	if snap.Processes.Error == "" {
		m := snap.Processes.MatchedTotal
		if a.matched.n == 0 || m < a.matched.min {
			a.matched.min = m
		}
		if a.matched.n == 0 || m > a.matched.max {
			a.matched.max = m
		}
		a.matched.sum += int64(m)
		a.matched.n++
		for _, k := range snap.Processes.Matched {
			if a.keywords == nil {
				a.keywords = map[string]*keywordAgg{}
			}
			ka := a.keywords[k.Keyword]
			if ka == nil {
				ka = &keywordAgg{}
				a.keywords[k.Keyword] = ka
			}
			ka.sum += int64(k.Count)
			ka.n++
		}
	}
	a.addV2(monitor.PointOf(r.At, snap), r.At, snap)
}

// addV2 adds the figures of schema version 2 that p has.
func (a *rollupAgg) addV2(p monitor.Point, at time.Time, snap *snapshot.Snapshot) {
	for _, m := range v2Metrics {
		v := m.read(p)
		if !monitor.Known(v) {
			continue
		}
		if a.v2 == nil {
			a.v2 = map[string]*metricAgg{}
		}
		ma := a.v2[m.field]
		if ma == nil {
			ma = &metricAgg{}
			a.v2[m.field] = ma
		}
		ma.add(v, at, snap)
	}
	for _, f := range p.Filesystems {
		if a.fs == nil {
			a.fs = map[string]*metricAgg{}
		}
		ma := a.fs[f.Path]
		if ma == nil {
			ma = &metricAgg{}
			a.fs[f.Path] = ma
		}
		ma.add(f.UsedPercent, at, snap)
	}
	for _, k := range p.Keywords {
		ka := a.keywords[k.Keyword] // added above with the counts
		if ka == nil {
			continue
		}
		ka.rss += k.RSSBytes
		ka.cpu += k.CPUPercent
		ka.rssN++
		if monitor.Known(k.FDs) {
			ka.fds += int64(k.FDs)
			ka.fdN++
			ka.fdCount += int64(k.Count)
		}
	}
}

func (m *metricAgg) add(v float64, at time.Time, snap *snapshot.Snapshot) {
	if !finite(v) {
		return
	}
	m.sum += v
	m.n++
	if m.peak != nil && (v < m.peak.Value || v == m.peak.Value && !at.Before(time.Time(m.peak.At))) {
		return
	}
	p := &peakDoc{Value: v, Order: -at.UnixMilli(), At: docTime(at), SampleMS: secondsMS(snap.SampleSeconds)}
	if snap.Processes.Error == "" {
		p.ProcsKnown = true
		p.MatchedTotal = snap.Processes.MatchedTotal
		p.Procs = make([]procDoc, 0, len(snap.Processes.Matched))
		for _, k := range snap.Processes.Matched {
			p.Procs = append(p.Procs, procDoc{Keyword: k.Keyword, Count: k.Count})
		}
	}
	m.peak = p
}

// memberField is the field of rolled_to_by that holds member's mark: "_"
// and the name escaped as a keyword's is ("_" alone for a collector outside
// a cluster).
func memberField(member string) string { return "_" + keywordField(member) }

// update builds the upsert: counters with $inc, peaks and rolled_to with
// $max (a peak is a string compared value first, see peakText), the matched minimum with
// $min.
func (a *rollupAgg) update() bson.D {
	inc := bson.D{{Key: "count", Value: a.count}, {Key: "failed", Value: a.failed}}
	maxes := bson.D{{Key: "rolled_to", Value: a.rolledTo}}
	for _, m := range slices.Sorted(maps.Keys(a.rolledToBy)) {
		maxes = append(maxes, bson.E{Key: "rolled_to_by." + m, Value: a.rolledToBy[m]})
	}
	for _, m := range []struct {
		name string
		agg  *metricAgg
	}{{"cpu", &a.cpu}, {"mem", &a.mem}, {"disk", &a.disk}, {"load1", &a.load1}} {
		if m.agg.n == 0 {
			continue
		}
		inc = append(inc, bson.E{Key: m.name + ".sum", Value: m.agg.sum}, bson.E{Key: m.name + ".n", Value: m.agg.n})
		maxes = append(maxes, bson.E{Key: m.name + ".pk", Value: peakText(m.agg.peak)})
	}
	u := bson.D{
		{Key: "$setOnInsert", Value: bson.D{
			{Key: "server", Value: a.server},
			{Key: "period", Value: a.period},
			{Key: "start", Value: a.start},
		}},
	}
	if a.matched.n > 0 {
		inc = append(inc, bson.E{Key: "matched.sum", Value: a.matched.sum}, bson.E{Key: "matched.n", Value: a.matched.n})
		maxes = append(maxes, bson.E{Key: "matched.max", Value: a.matched.max})
		u = append(u, bson.E{Key: "$min", Value: bson.D{{Key: "matched.min", Value: a.matched.min}}})
	}
	for _, k := range slices.Sorted(maps.Keys(a.keywords)) {
		field := "keywords." + keywordField(k)
		ka := a.keywords[k]
		inc = append(inc, bson.E{Key: field + ".sum", Value: ka.sum}, bson.E{Key: field + ".n", Value: ka.n})
		if ka.rssN > 0 {
			inc = append(inc, bson.E{Key: field + ".rss", Value: ka.rss}, bson.E{Key: field + ".cpu", Value: ka.cpu},
				bson.E{Key: field + ".rn", Value: ka.rssN})
		}
		if ka.fdN > 0 {
			inc = append(inc, bson.E{Key: field + ".fd", Value: ka.fds}, bson.E{Key: field + ".fn", Value: ka.fdN},
				bson.E{Key: field + ".fc", Value: ka.fdCount})
		}
	}
	metric := func(name string, m *metricAgg) {
		inc = append(inc, bson.E{Key: name + ".sum", Value: m.sum}, bson.E{Key: name + ".n", Value: m.n})
		maxes = append(maxes, bson.E{Key: name + ".pk", Value: peakText(m.peak)})
	}
	for _, m := range v2Metrics {
		if ma := a.v2[m.field]; ma != nil && ma.n > 0 {
			metric(m.field, ma)
		}
	}
	for _, path := range slices.Sorted(maps.Keys(a.fs)) {
		if ma := a.fs[path]; ma.n > 0 {
			metric("fs."+keywordField(path), ma)
		}
	}
	return append(u, bson.E{Key: "$inc", Value: inc}, bson.E{Key: "$max", Value: maxes})
}
