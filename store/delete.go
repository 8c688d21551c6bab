package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/crawlerfleet/collector/monitor"
)

// Deleted says what DeleteRange removed and rebuilt.
type Deleted struct {
	Snapshots, Attempts int64 // raw results deleted
	// From and To are the whole UTC days whose rollups were rebuilt from
	// the raw results that remain.
	From, To      time.Time
	Hourly, Daily int // rollups there after the rebuild
	LatestReset   bool
	LastFailReset bool
}

// DeleteRange deletes the snapshots and failed attempts of server with
// from <= at < to, for data that should never have been stored, and
// rebuilds the hourly and daily rollups of the days it touched from the raw
// results that remain, so that peaks, sums and counts stay exact. The
// server's latest snapshot and last failure are found again when they were
// among the deleted.
//
// The rebuild needs the raw results of whole days, so the range must start
// within the raw retention (a day whose raw results were pruned cannot be
// rebuilt); now is the clock for that. No collector may write the same
// server meanwhile: its rollup upkeep would race the rebuild (the command
// holds the data directory's lock for the embedded store).
func (s *Store) DeleteRange(ctx context.Context, server string, from, to, now time.Time) (Deleted, error) {
	if err := s.gate(); err != nil {
		return Deleted{}, err
	}
	from, to = from.UTC().Truncate(time.Millisecond), to.UTC().Truncate(time.Millisecond)
	d := Deleted{From: monitor.Day.Start(from), To: monitor.Day.Start(to.Add(-time.Millisecond))}
	d.To = monitor.Day.Next(d.To)
	switch {
	case server == "":
		return d, errors.New("delete: no server")
	case !from.Before(to):
		return d, fmt.Errorf("delete %s: the range is empty: %s is not before %s", server, from.Format(time.RFC3339), to.Format(time.RFC3339))
	case d.From.Before(now.Add(-s.cfg.Retention)):
		return d, fmt.Errorf("delete %s: %s is past the raw retention (%s): the rollups of that day could not be rebuilt; delete within the last %s",
			server, d.From.Format(time.DateOnly), s.cfg.Retention, s.cfg.Retention-24*time.Hour)
	}
	if err := s.setup(ctx); err != nil {
		return d, fmt.Errorf("delete %s: %w", server, s.unavailable(err))
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	in := bson.D{{Key: "server", Value: server}, {Key: "at", Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: to}}}}
	for _, c := range []struct {
		coll *mongo.Collection
		n    *int64
	}{{s.snapshots, &d.Snapshots}, {s.attempts, &d.Attempts}} {
		res, err := c.coll.DeleteMany(ctx, in)
		if err != nil {
			return d, fmt.Errorf("delete %s: %s: %w", server, c.coll.Name(), s.unavailable(err))
		}
		*c.n = res.DeletedCount
	}

	// The rollups of the whole days touched go, and come back from the raw
	// results that remain: every hour of those days, and the days.
	var ids bson.A
	for day := d.From; day.Before(d.To); day = monitor.Day.Next(day) {
		ids = append(ids, rollupID(server, monitor.Day, day))
		for h := day; h.Before(monitor.Day.Next(day)); h = monitor.Hour.Next(h) {
			ids = append(ids, rollupID(server, monitor.Hour, h))
		}
	}
	if _, err := s.rollups.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
		return d, fmt.Errorf("delete %s: rollups: %w", server, s.unavailable(err))
	}
	var sealed bson.A
	for day := d.From; day.Before(d.To); day = monitor.Day.Next(day) {
		sealed = append(sealed, sealedID(server, day))
	}
	if _, err := s.sealed.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: sealed}}}}); err != nil {
		return d, fmt.Errorf("delete %s: sealed days: %w", server, s.unavailable(err))
	}
	snaps, err := s.Snapshots(ctx, server, d.From, d.To, 0)
	if err != nil {
		return d, fmt.Errorf("delete %s: rebuild rollups: %w", server, err)
	}
	fails, err := s.Attempts(ctx, server, d.From, d.To)
	if err != nil {
		return d, fmt.Errorf("delete %s: rebuild rollups: %w", server, err)
	}
	remain := append(snaps, fails...)
	all := make([]bool, len(remain))
	for i := range all {
		all[i] = true
	}
	if err := s.upkeepRollups(ctx, remain, all, all); err != nil {
		return d, fmt.Errorf("delete %s: rebuild rollups: %w", server, s.unavailable(err))
	}
	// The points of those days go and come back the same way.
	if _, err := s.points.DeleteMany(ctx, bson.D{{Key: "server", Value: server},
		{Key: "start", Value: bson.D{{Key: "$gte", Value: d.From}, {Key: "$lt", Value: d.To}}}}); err != nil {
		return d, fmt.Errorf("delete %s: points: %w", server, s.unavailable(err))
	}
	if err := s.upkeepPoints(ctx, snaps, all[:len(snaps)]); err != nil {
		return d, fmt.Errorf("delete %s: rebuild points: %w", server, s.unavailable(err))
	}
	rs, err := s.Rollups(ctx, monitor.RollupFilter{Servers: []string{server}, Period: monitor.Hour, From: d.From, To: d.To})
	if err == nil {
		d.Hourly = len(rs)
		rs, err = s.Rollups(ctx, monitor.RollupFilter{Servers: []string{server}, Period: monitor.Day, From: d.From, To: d.To})
		d.Daily = len(rs)
	}
	if err != nil {
		return d, fmt.Errorf("delete %s: read rebuilt rollups: %w", server, err)
	}
	if err := s.repoint(ctx, server, from, to, &d); err != nil {
		return d, fmt.Errorf("delete %s: %w", server, err)
	}
	return d, nil
}

// repoint finds the server's latest snapshot and last failure again when
// they were in the deleted range [from, to).
func (s *Store) repoint(ctx context.Context, server string, from, to time.Time, d *Deleted) error {
	var sd serverDoc
	err := s.servers.FindOne(ctx, bson.D{{Key: "_id", Value: server}}).Decode(&sd)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the server's pointers: %w", s.unavailable(err))
	}
	within := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	set, unset := bson.D{}, bson.D{}
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if sd.Latest != nil && within(sd.Latest.At) {
		d.LatestReset = true
		newest, err := s.Snapshots(ctx, server, time.Time{}, far, 1)
		if err != nil {
			return fmt.Errorf("find the newest snapshot: %w", err)
		}
		if len(newest) == 0 {
			unset = append(unset, bson.E{Key: "latest", Value: ""})
		} else {
			r := newest[0]
			set = append(set, bson.E{Key: "latest", Value: latestRef{At: r.At, ID: storedID(r)}})
		}
	}
	if sd.LastFailure != nil && within(sd.LastFailure.At) {
		d.LastFailReset = true
		fails, err := s.Attempts(ctx, server, time.Time{}, far)
		if err != nil {
			return fmt.Errorf("find the last failure: %w", err)
		}
		if len(fails) == 0 {
			unset = append(unset, bson.E{Key: "last_failure", Value: ""})
		} else {
			r := fails[len(fails)-1]
			set = append(set, bson.E{Key: "last_failure", Value: failureRef{At: r.At, DurationMS: r.Duration.Milliseconds(), Kind: r.Kind, Err: r.Error()}})
		}
	}
	update := bson.D{}
	if len(set) > 0 {
		update = append(update, bson.E{Key: "$set", Value: set})
	}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	if len(update) == 0 {
		return nil
	}
	if _, err := s.servers.UpdateOne(ctx, bson.D{{Key: "_id", Value: server}}, update); err != nil {
		return fmt.Errorf("update the server's pointers: %w", s.unavailable(err))
	}
	return nil
}
