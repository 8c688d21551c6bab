package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// maxLookups is the most rollups Rollups fetches one by one from FerretDB;
// above it a range query reads the whole collection once.
const maxLookups = 50_000

// Latest returns the newest snapshot of server, or ErrNotFound.
func (s *Store) Latest(ctx context.Context, server string) (*Record, error) {
	var sd serverDoc
	err := s.servers.FindOne(ctx, bson.D{{Key: "_id", Value: server}}).Decode(&sd)
	if errors.Is(err, mongo.ErrNoDocuments) || err == nil && sd.Latest == nil {
		return nil, fmt.Errorf("latest snapshot of %s: %w", server, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("latest snapshot of %s: %w", server, err)
	}
	var d snapshotDoc
	err = s.snapshots.FindOne(ctx, bson.D{{Key: "_id", Value: sd.Latest.ID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("latest snapshot of %s (pruned): %w", server, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("latest snapshot of %s: %w", server, err)
	}
	return d.record()
}

// LastFailure returns the newest failed attempt of server, or ErrNotFound.
func (s *Store) LastFailure(ctx context.Context, server string) (*Attempt, error) {
	var sd serverDoc
	err := s.servers.FindOne(ctx, bson.D{{Key: "_id", Value: server}}).Decode(&sd)
	if errors.Is(err, mongo.ErrNoDocuments) || err == nil && sd.LastFailure == nil {
		return nil, fmt.Errorf("last failure of %s: %w", server, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("last failure of %s: %w", server, err)
	}
	f := sd.LastFailure
	a := attemptDoc{Server: server, At: docTime(f.At), DurationMS: f.DurationMS, Kind: f.Kind, Err: f.Err}.attempt()
	return &a, nil
}

// Snapshots returns the snapshots of server with from <= At < to, oldest
// first. With limit > 0 it returns the newest limit of them.
//
// The embedded store reads the range from its SQLite file (see
// sqliteReader). On an external FerretDB this reads the whole snapshots
// collection (FerretDB v1.24 filters outside SQLite).
func (s *Store) Snapshots(ctx context.Context, server string, from, to time.Time, limit int) ([]Record, error) {
	if s.direct != nil {
		recs, err := s.direct.snapshots(ctx, server, from, to, limit)
		if err != nil {
			return nil, fmt.Errorf("read snapshots of %s: %w", server, err)
		}
		return recs, nil
	}
	return s.snapshotsByQuery(ctx, server, from, to, limit)
}

// snapshotsByQuery is Snapshots through the database's own range query.
func (s *Store) snapshotsByQuery(ctx context.Context, server string, from, to time.Time, limit int) ([]Record, error) {
	opts := options.Find().SetSort(bson.D{{Key: "at", Value: -1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.snapshots.Find(ctx, bson.D{
		{Key: "server", Value: server},
		{Key: "at", Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: to}}},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("read snapshots of %s: %w", server, err)
	}
	var docs []snapshotDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read snapshots of %s: %w", server, err)
	}
	out := make([]Record, len(docs))
	for i, d := range docs {
		r, err := d.record()
		if err != nil {
			return nil, fmt.Errorf("read snapshots of %s: %w", server, err)
		}
		out[len(docs)-1-i] = *r
	}
	return out, nil
}

// Attempts returns the failed attempts of server with from <= At < to,
// oldest first. The embedded store reads the range from its SQLite file; an
// external FerretDB reads the whole attempts collection.
func (s *Store) Attempts(ctx context.Context, server string, from, to time.Time) ([]Attempt, error) {
	if s.direct != nil {
		as, err := s.direct.attempts(ctx, server, from, to)
		if err != nil {
			return nil, fmt.Errorf("read attempts of %s: %w", server, err)
		}
		return as, nil
	}
	return s.attemptsByQuery(ctx, server, from, to)
}

// attemptsByQuery is Attempts through the database's own range query.
func (s *Store) attemptsByQuery(ctx context.Context, server string, from, to time.Time) ([]Attempt, error) {
	cur, err := s.attempts.Find(ctx, bson.D{
		{Key: "server", Value: server},
		{Key: "at", Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: to}}},
	}, options.Find().SetSort(bson.D{{Key: "at", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", server, err)
	}
	var docs []attemptDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", server, err)
	}
	out := make([]Attempt, len(docs))
	for i, d := range docs {
		out[i] = d.attempt()
	}
	return out, nil
}

func (d attemptDoc) attempt() Attempt {
	return Attempt{
		Server:   d.Server,
		At:       d.At.utc(),
		Duration: time.Duration(d.DurationMS) * time.Millisecond,
		Kind:     d.Kind,
		Err:      d.Err,
	}
}

// Servers returns the names of all servers with a stored result, sorted.
func (s *Store) Servers(ctx context.Context) ([]string, error) {
	cur, err := s.servers.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	names := make([]string, len(docs))
	for i, d := range docs {
		names[i] = d.ID
	}
	sort.Strings(names)
	return names, nil
}

// Rollups returns the rollups that q selects, sorted by server and start.
// Periods without results have no rollup.
//
// MongoDB answers with one indexed range query. FerretDB v1.24 would read
// the whole rollups collection for it. The embedded store reads each
// server's range from its SQLite file instead (see sqliteReader); on an
// external FerretDB the rollups are looked up by their _id
// (server|period|start), one per server and period in the range, unless
// that makes more than 50,000 lookups.
func (s *Store) Rollups(ctx context.Context, q RollupQuery) ([]Rollup, error) {
	if q.Period == "" {
		q.Period = Hour
	}
	if !q.Period.valid() {
		return nil, fmt.Errorf("read rollups: period %q (want hour or day)", q.Period)
	}
	q.From = q.Period.Start(q.From)
	if !q.To.After(q.From) {
		return nil, nil
	}
	ferret := s.ferret.Load()
	servers := q.Servers
	if len(servers) == 0 && ferret {
		var err error
		if servers, err = s.Servers(ctx); err != nil {
			return nil, fmt.Errorf("read %s: %w", q.what(nil), err)
		}
	}
	if s.direct != nil {
		return s.rollupsDirect(ctx, servers, q)
	}
	var docs []rollupDoc
	var err error
	if n := int(q.To.Sub(q.From)/periodLength(q.Period)+1) * len(servers); ferret && n <= maxLookups {
		docs, err = s.rollupsByID(ctx, servers, q)
	} else {
		servers = q.Servers // the range query reads these, or all servers
		docs, err = s.rollupsByRange(ctx, q)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", q.what(servers), err)
	}
	out := make([]Rollup, len(docs))
	for i, d := range docs {
		out[i] = d.rollup()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Server != out[j].Server {
			return out[i].Server < out[j].Server
		}
		return out[i].Start.Before(out[j].Start)
	})
	return out, nil
}

// rollupsDirect reads the rollups of each server from the embedded
// database's file, one range query per server.
func (s *Store) rollupsDirect(ctx context.Context, servers []string, q RollupQuery) ([]Rollup, error) {
	var out []Rollup
	for _, server := range slices.Compact(slices.Sorted(slices.Values(servers))) {
		rs, err := s.direct.rollups(ctx, server, q.Period, q.From, q.To)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", q.what([]string{server}), err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// what describes the rollups q reads from servers for an error: period,
// servers (all when none; the first three and a count past that) and range.
func (q RollupQuery) what(servers []string) string {
	who := "all servers"
	switch n := len(servers); {
	case n > 3:
		who = fmt.Sprintf("%s and %d more", strings.Join(servers[:3], ", "), n-3)
	case n > 0:
		who = strings.Join(servers, ", ")
	}
	return fmt.Sprintf("%s rollups of %s from %s to %s", q.Period, who,
		q.From.UTC().Format(time.RFC3339), q.To.UTC().Format(time.RFC3339))
}

func periodLength(p Period) time.Duration {
	if p == Day {
		return 24 * time.Hour
	}
	return time.Hour
}

func (s *Store) rollupsByRange(ctx context.Context, q RollupQuery) ([]rollupDoc, error) {
	filter := bson.D{
		{Key: "period", Value: q.Period},
		{Key: "start", Value: bson.D{{Key: "$gte", Value: q.From}, {Key: "$lt", Value: q.To}}},
	}
	if len(q.Servers) > 0 {
		filter = append(bson.D{{Key: "server", Value: bson.D{{Key: "$in", Value: q.Servers}}}}, filter...)
	}
	cur, err := s.rollups.Find(ctx, filter)
	if err != nil {
		return nil, err
	}
	var docs []rollupDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	return docs, nil
}

func (s *Store) rollupsByID(ctx context.Context, servers []string, q RollupQuery) ([]rollupDoc, error) {
	var ids []string
	for _, server := range slices.Compact(slices.Sorted(slices.Values(servers))) {
		for t := q.From; t.Before(q.To); t = q.Period.Next(t) {
			ids = append(ids, rollupID(server, q.Period, t))
		}
	}
	found := make([]*rollupDoc, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, id := range ids {
		g.Go(func() error {
			var d rollupDoc
			err := s.rollups.FindOne(gctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
			if errors.Is(err, mongo.ErrNoDocuments) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("rollup %s: %w", id, err)
			}
			found[i] = &d
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var docs []rollupDoc
	for _, d := range found {
		if d != nil {
			docs = append(docs, *d)
		}
	}
	return docs, nil
}

func (d snapshotDoc) record() (*Record, error) {
	var snap snapshot.Snapshot
	if err := json.Unmarshal([]byte(d.Snapshot), &snap); err != nil {
		return nil, fmt.Errorf("decode stored snapshot %s: %w", d.ID, err)
	}
	return &Record{
		Server:    d.Server,
		At:        d.At.utc(),
		ProbeTime: d.ProbeTime.utc(),
		Duration:  time.Duration(d.DurationMS) * time.Millisecond,
		Snapshot:  &snap,
	}, nil
}
