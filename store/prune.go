package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/internal/fsutil"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// prunedAtName is the file in the data dir where PruneIfDue records the time
// of its last successful prune.
const prunedAtName = "pruned-at"

// Prune deletes raw snapshots and attempts older than the retention and
// rollups (and sealed days) older than the rollup retention, counted back from now, and the
// silences that expired at now. Call it periodically (the daemon does, every
// hour; a command run from a crontab calls PruneIfDue): the embedded store
// has no TTL indexes.
//
// Sent and failed outbox entries are not pruned here: how long they are kept
// is the outbox's own setting (see OutboxPrune).
func (s *Store) Prune(ctx context.Context, now time.Time) error {
	if err := s.gate(); err != nil {
		return err
	}
	raw := now.Add(-s.cfg.Retention)
	roll := now.Add(-s.cfg.RollupRetention)
	var errs []error
	for _, p := range []struct {
		coll   *mongo.Collection
		filter bson.D
		before time.Time
	}{
		{s.snapshots, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: raw}}}}, raw},
		// A bucket of points goes once its whole span is past retention.
		{s.points, bson.D{{Key: "start", Value: bson.D{{Key: "$lt", Value: raw.Add(-BucketLength)}}}}, raw},
		{s.attempts, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: raw}}}}, raw},
		{s.rollups, bson.D{{Key: "start", Value: bson.D{{Key: "$lt", Value: roll}}}}, roll},
		// A sealed day goes with the first of its hours (see SealDays).
		{s.sealed, bson.D{{Key: "start", Value: bson.D{{Key: "$lt", Value: roll}}}}, roll},
		// Not through s.collection: a store without alerts has no silences
		// to create the collection for, and deleting from a missing one is
		// a no-op.
		{s.db.Collection(silencesName), bson.D{{Key: "until", Value: bson.D{{Key: "$lte", Value: now.UTC()}}}}, now},
	} {
		res, err := p.coll.DeleteMany(ctx, p.filter)
		if err != nil {
			errs = append(errs, fmt.Errorf("prune %s: %w", p.coll.Name(), s.unavailable(err)))
			continue
		}
		if res.DeletedCount > 0 {
			s.logger.Info("pruned", "collection", p.coll.Name(), "before", p.before, "deleted", res.DeletedCount)
		}
	}
	return errors.Join(errs...)
}

// PruneIfDue runs Prune at now when the last prune it recorded is at least
// every before now, and reports whether Prune ran. It is for commands that
// run now and then, such as `collector collect` from a crontab, where no
// daemon prunes every hour; running it on every invocation is cheap, as it
// only reads a small file when the prune is not due.
//
// The time of the last successful prune is kept in <data_dir>/pruned-at as
// an RFC 3339 time, written atomically (a temporary file renamed over it)
// once Prune succeeded; a prune that failed records nothing, so the next call
// tries again. A missing or unreadable file, or one that names a time after
// now (the clock went back), makes the prune due, and so does every <= 0.
// Two processes calling it at once may both prune, which is harmless.
//
// It returns true with an error when Prune ran and failed, or succeeded but
// its time could not be recorded.
func (s *Store) PruneIfDue(ctx context.Context, now time.Time, every time.Duration) (bool, error) {
	path := filepath.Join(s.cfg.DataDir, prunedAtName)
	if last, ok := s.readPrunedAt(path); ok && !last.After(now) && now.Sub(last) < every {
		return false, nil
	}
	if err := s.Prune(ctx, now); err != nil {
		return true, err
	}
	if err := fsutil.WriteAtomic(path, []byte(now.UTC().Format(time.RFC3339Nano)+"\n")); err != nil {
		return true, fmt.Errorf("record prune time: %w", err)
	}
	return true, nil
}

// readPrunedAt returns the time recorded in the pruned-at file, and false
// when there is none that can be read.
func (s *Store) readPrunedAt(path string) (time.Time, bool) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, false
	}
	var t time.Time
	if err == nil {
		t, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	}
	if err != nil {
		s.logger.Warn("last prune time unreadable; pruning now", "file", path, "err", err)
		return time.Time{}, false
	}
	return t, true
}
