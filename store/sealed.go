package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/crawlerfleet/collector/monitor"
)

// Sealed days: a copy of the hourly rollups of one server and ended UTC day,
// exact, in one compact text (sealtext.go), so that a report over a month
// reads 30 documents a server instead of 720 rollups of some twenty nested
// objects each (and, on the embedded store, the schema FerretDB keeps beside
// every one of them, larger than the rollup itself):
//
//	{_id: "server|<day>", server, start, total, text}
//
// The hourly rollups stay what is written and what is true; a sealed day is
// a cache of them that SealDays writes (the daemon's hourly upkeep, and a
// command from a crontab once an hour, see PruneIfDue's callers) for the
// days that ended at least sealAfter ago.
//
// A sealed day is used only while it still holds every result of its day:
// total is the sum of its hours' count and failed when it was sealed, and
// Rollups takes it only when that equals the count and failed of the
// day's daily rollup, which every result adds to (each result adds one to
// exactly one hour and to its day). A result that arrives for a sealed day
// later (a spool drained after an outage, a member catching up) makes the
// two differ: the day is read from its hourly rollups again until the next
// SealDays seals it anew. No writer needs to know about sealed days.
//
// A sealed day is read only for hourly ranges longer than a day, by the
// embedded store's direct reads and by MongoDB; an external FerretDB reads
// rollups by their _id and has no use for them.

// sealAfter is how long after its end a day is sealed: the results of its
// last minutes have been written by then, or are late.
const sealAfter = time.Hour

// sealLookback is how far back SealDays looks for days to seal: each day
// is sealed in the weeks after it ends, and a day sealed then stays sealed,
// so looking further back each hour would only read the rollups of months
// again. (After an upgrade, days older than this are read from their hourly
// rollups.)
const sealLookback = 62 * 24 * time.Hour

// maxSealPerCall bounds the days one SealDays seals, so that the first
// upkeep after an upgrade (every day of the rollup retention at once)
// spreads over a few hours of upkeep instead of holding one of them up.
const maxSealPerCall = 1000

// sealedDoc is a sealed day.
type sealedDoc struct {
	ID     string  `bson:"_id" json:"_id"`
	Server string  `bson:"server" json:"server"`
	Start  docTime `bson:"start" json:"start"`
	// Total is the sum of count and failed over the day's hours, as
	// sealed.
	Total int64 `bson:"total" json:"total"`
	// Version is the text's sealVersion: a day sealed by another version
	// is sealed anew.
	Version string `bson:"version" json:"version"`
	Text    string `bson:"text,omitempty" json:"text,omitempty"`
}

func sealedID(server string, day time.Time) string { return server + "|" + timeID(day) }

// sealable reports whether Rollups reads f's range through sealed days.
func (s *Store) sealable(f monitor.RollupFilter) bool {
	return f.Period == monitor.Hour && f.To.Sub(f.From) > 24*time.Hour && (s.direct != nil || !s.ferret.Load())
}

// sealedRollups returns the hourly rollups of server starting in [from,
// to) (from on the hour), oldest first: from the sealed days that still
// hold their day's results, and from the hourly rollups for the other days.
func (s *Store) sealedRollups(ctx context.Context, server string, from, to time.Time) ([]monitor.Rollup, error) {
	first, end := monitor.Day.Start(from), monitor.Day.Next(monitor.Day.Start(to.Add(-time.Millisecond)))
	totals, err := s.dayTotals(ctx, server, first, end)
	if err != nil {
		return nil, err
	}
	sealed, err := s.sealedDays(ctx, server, first, end, true)
	if err != nil {
		return nil, err
	}
	var out []monitor.Rollup
	var rawFrom time.Time // start of the days to read from the hourly rollups; zero when none
	raw := func(until time.Time) error {
		if rawFrom.IsZero() {
			return nil
		}
		lo, hi := rawFrom, until
		if lo.Before(from) {
			lo = from
		}
		if hi.After(to) {
			hi = to
		}
		rs, err := s.hourlyRollups(ctx, server, lo, hi)
		out = append(out, rs...)
		rawFrom = time.Time{}
		return err
	}
	next := 0
	for day := first; day.Before(end); day = monitor.Day.Next(day) {
		for next < len(sealed) && sealed[next].Start.utc().Before(day) {
			next++
		}
		var rs []monitor.Rollup
		ok := false
		if next < len(sealed) && sealed[next].Start.utc().Equal(day) {
			d := sealed[next]
			if total, have := totals[day.Unix()]; have && total == d.Total && d.Version == sealVersion {
				if rs, err = parseSealText(server, day, d.Text); err != nil {
					s.logger.Warn("sealed day unreadable; reading its hourly rollups", "server", server,
						"day", day.Format(time.DateOnly), "err", err)
				} else {
					ok = true
				}
			}
		}
		if !ok {
			if rawFrom.IsZero() {
				rawFrom = day
			}
			continue
		}
		if err := raw(day); err != nil {
			return nil, err
		}
		for _, r := range rs {
			if !r.Start.Before(from) && r.Start.Before(to) {
				out = append(out, r)
			}
		}
	}
	if err := raw(end); err != nil {
		return nil, err
	}
	return out, nil
}

// hourlyRollups reads the hourly rollups of server starting in [from, to)
// from the rollups collection, oldest first.
func (s *Store) hourlyRollups(ctx context.Context, server string, from, to time.Time) ([]monitor.Rollup, error) {
	if s.direct != nil {
		return s.rollupRange(ctx, server, monitor.Hour, from, to)
	}
	docs, err := s.rollupsByRange(ctx, monitor.RollupFilter{Servers: []string{server}, Period: monitor.Hour, From: from, To: to})
	if err != nil {
		return nil, err
	}
	out := make([]monitor.Rollup, len(docs))
	for i, d := range docs {
		out[i] = d.rollup()
	}
	slices.SortFunc(out, func(a, b monitor.Rollup) int { return a.Start.Compare(b.Start) })
	return out, nil
}

// dayTotal is what sealing reads of a daily rollup.
type dayTotal struct {
	ID     string         `bson:"_id" json:"_id"`
	Server string         `bson:"server" json:"server"`
	Period monitor.Period `bson:"period" json:"period"`
	Start  docTime        `bson:"start" json:"start"`
	Count  int64          `bson:"count" json:"count"`
	Failed int64          `bson:"failed" json:"failed"`
}

// dayTotals returns count+failed of server's daily rollups starting in
// [from, to), by the day's Unix time.
func (s *Store) dayTotals(ctx context.Context, server string, from, to time.Time) (map[int64]int64, error) {
	out := map[int64]int64{}
	add := func(d dayTotal) {
		if d.Server == server && d.Period == monitor.Day {
			out[d.Start.utc().Unix()] = d.Count + d.Failed
		}
	}
	lo, hi := rollupID(server, monitor.Day, from), rollupID(server, monitor.Day, to)
	if s.direct != nil {
		err := s.direct.Scan(ctx, s.cfg.Database, rollupsName, lo, hi, false, func(doc []byte) (bool, error) {
			var d dayTotal
			if err := decodeFast(doc, &d); err != nil {
				return false, err
			}
			add(d)
			return true, nil
		})
		return out, scanErr(err)
	}
	docs, err := findAll[dayTotal](ctx, s, s.rollups, idRange(lo, hi), options.Find().SetProjection(bson.D{
		{Key: "server", Value: 1}, {Key: "period", Value: 1}, {Key: "start", Value: 1}, {Key: "count", Value: 1}, {Key: "failed", Value: 1}}))
	for _, d := range docs {
		add(d)
	}
	return out, err
}

// sealedDays returns server's sealed days starting in [from, to), oldest
// first, with their texts when withText.
func (s *Store) sealedDays(ctx context.Context, server string, from, to time.Time, withText bool) ([]sealedDoc, error) {
	var out []sealedDoc
	add := func(d sealedDoc) {
		if d.Server == server {
			out = append(out, d)
		}
	}
	lo, hi := sealedID(server, from), sealedID(server, to)
	if s.direct != nil {
		err := s.direct.Scan(ctx, s.cfg.Database, sealedName, lo, hi, false, func(doc []byte) (bool, error) {
			var d sealedDoc
			if withText {
				if err := decodeFast(doc, &d); err != nil {
					return false, err
				}
			} else {
				// Without the text, which the decoder then only skips.
				var t struct {
					ID      string  `json:"_id"`
					Server  string  `json:"server"`
					Start   docTime `json:"start"`
					Total   int64   `json:"total"`
					Version string  `json:"version"`
				}
				if err := decodeFast(doc, &t); err != nil {
					return false, err
				}
				d = sealedDoc{ID: t.ID, Server: t.Server, Start: t.Start, Total: t.Total, Version: t.Version}
			}
			add(d)
			return true, nil
		})
		return out, scanErr(err)
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if !withText {
		opts.SetProjection(bson.D{{Key: "text", Value: 0}})
	}
	docs, err := findAll[sealedDoc](ctx, s, s.sealed, idRange(lo, hi), opts)
	for _, d := range docs {
		add(d)
	}
	return out, err
}

func idRange(lo, hi string) bson.D {
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: lo}, {Key: "$lt", Value: hi}}}}
}

// SealDays seals the days of every server that ended sealAfter before now,
// within sealLookback and the rollup retention, where no sealed day holds all their
// results yet: newest first, at most maxSealPerCall of them. It returns how
// many it sealed. Call it periodically, beside Prune (see the top of
// sealed.go); an external FerretDB has nothing to seal.
func (s *Store) SealDays(ctx context.Context, now time.Time) (int, error) {
	if err := s.gate(); err != nil {
		return 0, err
	}
	if s.direct == nil && s.ferret.Load() {
		return 0, nil
	}
	if err := s.setup(ctx); err != nil {
		return 0, fmt.Errorf("seal days: %w", s.unavailable(err))
	}
	servers, err := s.Servers(ctx)
	if err != nil {
		return 0, fmt.Errorf("seal days: %w", err)
	}
	from := monitor.Day.Next(monitor.Day.Start(now.Add(-s.cfg.RollupRetention)))
	to := monitor.Day.Start(now.Add(-sealAfter))
	if back := to.Add(-sealLookback); from.Before(back) {
		from = back
	}
	if !from.Before(to) {
		return 0, nil
	}
	type due struct {
		server string
		day    time.Time
	}
	var dues []due
	for _, server := range servers {
		totals, err := s.dayTotals(ctx, server, from, to)
		if err != nil {
			return 0, fmt.Errorf("seal days of %s: %w", server, err)
		}
		sealed, err := s.sealedDays(ctx, server, from, to, false)
		if err != nil {
			return 0, fmt.Errorf("seal days of %s: %w", server, err)
		}
		have := map[int64]int64{}
		for _, d := range sealed {
			if d.Version == sealVersion {
				have[d.Start.utc().Unix()] = d.Total
			}
		}
		for day, total := range totals {
			if t, ok := have[day]; total > 0 && (!ok || t != total) {
				dues = append(dues, due{server, time.Unix(day, 0).UTC()})
			}
		}
	}
	slices.SortFunc(dues, func(a, b due) int {
		if c := b.day.Compare(a.day); c != 0 {
			return c
		}
		return cmp.Compare(a.server, b.server)
	})
	dues = dues[:min(len(dues), maxSealPerCall)]
	if len(dues) == 0 {
		return 0, nil
	}
	models := make([]mongo.WriteModel, 0, len(dues))
	for _, d := range dues {
		rs, err := s.hourlyRollups(ctx, d.server, d.day, monitor.Day.Next(d.day))
		if err != nil {
			return 0, fmt.Errorf("seal %s of %s: %w", d.day.Format(time.DateOnly), d.server, err)
		}
		text, err := sealText(d.day, rs)
		if err != nil {
			return 0, err
		}
		var total int64
		for _, r := range rs {
			total += r.Count + r.Failed
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: sealedID(d.server, d.day)}}).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{
				{Key: "server", Value: d.server}, {Key: "start", Value: d.day},
				{Key: "total", Value: total}, {Key: "version", Value: sealVersion}, {Key: "text", Value: text},
			}}}).
			SetUpsert(true))
	}
	if err := s.bulkUpdate(ctx, s.sealed, models); err != nil {
		return 0, fmt.Errorf("seal days: %w", s.unavailable(err))
	}
	if len(models) > 0 {
		s.logger.Info("sealed days", "days", len(models), "newest", dues[0].day.Format(time.DateOnly))
	}
	return len(models), nil
}
