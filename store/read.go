package store

import (
	"context"
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

	"github.com/crawlerfleet/collector/monitor"
)

// maxLookups is the most rollups Rollups fetches one by one from FerretDB;
// above it a range query reads the whole collection once.
const maxLookups = 50_000

// The reads return errors that wrap monitor.ErrNotFound when there is
// nothing to read, and monitor.ErrUnavailable when the database could not
// be reached or did not answer in time.

// Latest returns the newest snapshot of server as a Result with Snapshot
// set, or an error wrapping monitor.ErrNotFound.
func (s *Store) Latest(ctx context.Context, server string) (*monitor.Result, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	sd, err := s.serverRefs(ctx, server)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("latest snapshot of %s: %w", server, monitor.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("latest snapshot of %s: %w", server, err)
	}
	return s.latestOf(ctx, server, sd)
}

// LastFailure returns the newest failed attempt of server as a Result with
// Kind and Err (the stored message) set, or an error wrapping
// monitor.ErrNotFound.
func (s *Store) LastFailure(ctx context.Context, server string) (*monitor.Result, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	sd, err := s.serverRefs(ctx, server)
	if errors.Is(err, mongo.ErrNoDocuments) || err == nil && sd.LastFailure == nil {
		return nil, fmt.Errorf("last failure of %s: %w", server, monitor.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("last failure of %s: %w", server, err)
	}
	return failureOf(server, sd), nil
}

// Newest returns the newest snapshot and the newest failure of server, each
// nil when there is none (or the snapshot was pruned): Latest and
// LastFailure together, reading the server's document once, as a report,
// status and the live page ask for them of every server.
func (s *Store) Newest(ctx context.Context, server string) (latest, failure *monitor.Result, err error) {
	if err := s.gate(); err != nil {
		return nil, nil, err
	}
	sd, err := s.serverRefs(ctx, server)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("newest results of %s: %w", server, err)
	}
	latest, err = s.latestOf(ctx, server, sd)
	if err != nil && !errors.Is(err, monitor.ErrNotFound) {
		return nil, nil, err
	}
	return latest, failureOf(server, sd), nil
}

// latestOf reads the snapshot that server's document sd points at.
func (s *Store) latestOf(ctx context.Context, server string, sd serverDoc) (*monitor.Result, error) {
	if sd.Latest == nil {
		return nil, fmt.Errorf("latest snapshot of %s: %w", server, monitor.ErrNotFound)
	}
	var d snapshotDoc
	var err error
	if s.direct != nil {
		err = s.directOne(ctx, snapshotsName, sd.Latest.ID, func(doc []byte) (string, error) {
			d = snapshotDoc{}
			return d.ID, decodeStored(doc, &d)
		})
	} else {
		err = findOne(ctx, s.snapshots, sd.Latest.ID, &d)
	}
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("latest snapshot of %s (pruned): %w", server, monitor.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("latest snapshot of %s: %w", server, err)
	}
	r, err := d.result()
	if err != nil {
		return nil, fmt.Errorf("latest snapshot of %s: %w", server, err)
	}
	return &r, nil
}

// failureOf returns the failure that server's document sd holds, nil when
// none.
func failureOf(server string, sd serverDoc) *monitor.Result {
	f := sd.LastFailure
	if f == nil {
		return nil
	}
	r := failure(server, f.At.UTC(), f.DurationMS, f.Kind, f.Err)
	return &r
}

// serverRefs reads server's document: from the embedded store's file when
// it can (a report asks for every server's), else through the driver. No
// document is mongo.ErrNoDocuments.
func (s *Store) serverRefs(ctx context.Context, server string) (serverDoc, error) {
	var sd serverDoc
	if s.direct == nil {
		return sd, findOne(ctx, s.servers, server, &sd)
	}
	err := s.directOne(ctx, serversName, server, func(doc []byte) (string, error) {
		// The JSON form of serverDoc: dates as milliseconds.
		var d struct {
			ID     string `json:"_id"`
			Latest *struct {
				At docTime `json:"at"`
				ID string  `json:"id"`
			} `json:"latest"`
			LastFailure *struct {
				At         docTime      `json:"at"`
				DurationMS int64        `json:"duration_ms"`
				Kind       monitor.Kind `json:"kind"`
				Err        string       `json:"error"`
			} `json:"last_failure"`
		}
		if err := decodeStored(doc, &d); err != nil {
			return "", err
		}
		sd = serverDoc{ID: d.ID}
		if l := d.Latest; l != nil {
			sd.Latest = &latestRef{At: l.At.utc(), ID: l.ID}
		}
		if f := d.LastFailure; f != nil {
			sd.LastFailure = &failureRef{At: f.At.utc(), DurationMS: f.DurationMS, Kind: f.Kind, Err: f.Err}
		}
		return d.ID, nil
	})
	return sd, err
}

// Snapshots returns the snapshots of server with from <= At < to, oldest
// first, as Results with Snapshot set. With limit > 0 it returns the newest
// limit of them.
//
// The embedded store reads the range from its SQLite file (see
// embedded.Server.Scan). On an external FerretDB this reads the whole
// snapshots collection (FerretDB v1.24 filters outside SQLite).
func (s *Store) Snapshots(ctx context.Context, server string, from, to time.Time, limit int) ([]monitor.Result, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	if s.direct != nil {
		rs, err := s.snapshotsDirect(ctx, server, from, to, limit)
		if err != nil {
			return nil, fmt.Errorf("read snapshots of %s: %w", server, err)
		}
		return rs, nil
	}
	return s.snapshotsByQuery(ctx, server, from, to, limit)
}

// snapshotsByQuery is Snapshots through the database's own range query.
func (s *Store) snapshotsByQuery(ctx context.Context, server string, from, to time.Time, limit int) ([]monitor.Result, error) {
	opts := options.Find().SetSort(bson.D{{Key: "at", Value: -1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	docs, err := findAll[snapshotDoc](ctx, s, s.snapshots, bson.D{
		{Key: "server", Value: server},
		{Key: "at", Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: to}}},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("read snapshots of %s: %w", server, err)
	}
	out := make([]monitor.Result, len(docs))
	for i, d := range docs {
		r, err := d.result()
		if err != nil {
			return nil, fmt.Errorf("read snapshots of %s: %w", server, err)
		}
		out[len(docs)-1-i] = r
	}
	return out, nil
}

// Attempts returns the failed attempts of server with from <= At < to,
// oldest first, as Results with Kind and Err set. The embedded store reads
// the range from its SQLite file; an external FerretDB reads the whole
// attempts collection.
func (s *Store) Attempts(ctx context.Context, server string, from, to time.Time) ([]monitor.Result, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	if s.direct != nil {
		rs, err := s.attemptsDirect(ctx, server, from, to)
		if err != nil {
			return nil, fmt.Errorf("read attempts of %s: %w", server, err)
		}
		return rs, nil
	}
	return s.attemptsByQuery(ctx, server, from, to)
}

// attemptsByQuery is Attempts through the database's own range query.
func (s *Store) attemptsByQuery(ctx context.Context, server string, from, to time.Time) ([]monitor.Result, error) {
	docs, err := findAll[attemptDoc](ctx, s, s.attempts, bson.D{
		{Key: "server", Value: server},
		{Key: "at", Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: to}}},
	}, options.Find().SetSort(bson.D{{Key: "at", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", server, err)
	}
	out := make([]monitor.Result, len(docs))
	for i, d := range docs {
		out[i] = d.result()
	}
	return out, nil
}

// Servers returns the names of all servers with a stored result, sorted.
func (s *Store) Servers(ctx context.Context) ([]string, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	docs, err := findAll[struct {
		ID string `bson:"_id"`
	}](ctx, s, s.servers, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	names := make([]string, len(docs))
	for i, d := range docs {
		names[i] = d.ID
	}
	sort.Strings(names)
	return names, nil
}

// Rollups returns the rollups that f selects, sorted by server and start.
// Periods without results have no rollup.
//
// MongoDB answers with one indexed range query. FerretDB v1.24 would read
// the whole rollups collection for it. The embedded store reads each
// server's range from its SQLite file instead (see embedded.Server.Scan); on
// an external FerretDB the rollups are looked up by their _id
// (server|period|start), one per server and period in the range, unless
// that makes more than 50,000 lookups.
func (s *Store) Rollups(ctx context.Context, f monitor.RollupFilter) ([]monitor.Rollup, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	if f.Period == "" {
		f.Period = monitor.Hour
	}
	if !f.Period.Valid() {
		return nil, fmt.Errorf("read rollups: period %q (want hour or day)", f.Period)
	}
	f.From = f.Period.Start(f.From)
	if !f.To.After(f.From) {
		return nil, nil
	}
	ferret := s.ferret.Load()
	servers := f.Servers
	if len(servers) == 0 && ferret {
		var err error
		if servers, err = s.Servers(ctx); err != nil {
			return nil, fmt.Errorf("read %s: %w", rollupsWhat(f, nil), err)
		}
	}
	if s.direct != nil {
		return s.rollupsByServer(ctx, servers, f)
	}
	if s.sealable(f) { // MongoDB: one server at a time, through its sealed days
		if len(servers) == 0 {
			var err error
			if servers, err = s.Servers(ctx); err != nil {
				return nil, fmt.Errorf("read %s: %w", rollupsWhat(f, nil), err)
			}
		}
		return s.rollupsByServer(ctx, servers, f)
	}
	var docs []rollupDoc
	var err error
	if n := int(f.To.Sub(f.From)/f.Period.Length()+1) * len(servers); ferret && n <= maxLookups {
		docs, err = s.rollupsByID(ctx, servers, f)
	} else {
		servers = f.Servers // the range query reads these, or all servers
		docs, err = s.rollupsByRange(ctx, f)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rollupsWhat(f, servers), err)
	}
	out := make([]monitor.Rollup, len(docs))
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

// rollupsWhat describes the rollups f reads from servers for an error:
// period, servers (all when none; the first three and a count past that)
// and range.
func rollupsWhat(f monitor.RollupFilter, servers []string) string {
	who := "all servers"
	switch n := len(servers); {
	case n > 3:
		who = fmt.Sprintf("%s and %d more", strings.Join(servers[:3], ", "), n-3)
	case n > 0:
		who = strings.Join(servers, ", ")
	}
	return fmt.Sprintf("%s rollups of %s from %s to %s", f.Period, who,
		f.From.UTC().Format(time.RFC3339), f.To.UTC().Format(time.RFC3339))
}

func (s *Store) rollupsByRange(ctx context.Context, f monitor.RollupFilter) ([]rollupDoc, error) {
	filter := bson.D{
		{Key: "period", Value: f.Period},
		{Key: "start", Value: bson.D{{Key: "$gte", Value: f.From}, {Key: "$lt", Value: f.To}}},
	}
	if len(f.Servers) > 0 {
		filter = append(bson.D{{Key: "server", Value: bson.D{{Key: "$in", Value: f.Servers}}}}, filter...)
	}
	return findAll[rollupDoc](ctx, s, s.rollups, filter)
}

func (s *Store) rollupsByID(ctx context.Context, servers []string, f monitor.RollupFilter) ([]rollupDoc, error) {
	var ids []string
	for _, server := range slices.Compact(slices.Sorted(slices.Values(servers))) {
		for t := f.From; t.Before(f.To); t = f.Period.Next(t) {
			ids = append(ids, rollupID(server, f.Period, t))
		}
	}
	found := make([]*rollupDoc, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, id := range ids {
		g.Go(func() error {
			var d rollupDoc
			err := findOne(gctx, s.rollups, id, &d)
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

// DailyDiskPeaks returns, by mount point, the daily used-percent peaks of
// server's file systems for the days starting in [from, to), from the
// daily rollups (the root file system's disk figure for rollups of
// version-1 snapshots). It serves the alert rule "disk_full"
// (alerts.DiskHistory).
func (s *Store) DailyDiskPeaks(ctx context.Context, server string, from, to time.Time) (map[string][]monitor.DailyPeak, error) {
	rs, err := s.Rollups(ctx, monitor.RollupFilter{Servers: []string{server}, Period: monitor.Day, From: from, To: to})
	if err != nil {
		return nil, err
	}
	out := map[string][]monitor.DailyPeak{}
	for _, r := range rs {
		for _, f := range r.Filesystems {
			if f.N > 0 {
				out[f.Path] = append(out[f.Path], monitor.DailyPeak{Day: r.Start, Value: f.Peak.Value})
			}
		}
		if len(r.Filesystems) == 0 && r.Disk.N > 0 {
			out["/"] = append(out["/"], monitor.DailyPeak{Day: r.Start, Value: r.Disk.Peak.Value})
		}
	}
	return out, nil
}
