package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/crawlerfleet/collector/monitor"
)

// The outbox keeps every alert notification per channel until it is sent
// (see the package doc). It is small (one entry per notification and
// channel, sent entries pruned after days), so finding the due entries may
// scan it on FerretDB. It is created on first use.

// outboxDoc is an outbox entry; _id is "<notification id>|<channel>".
type outboxDoc struct {
	ID           string    `bson:"_id"`
	Notification string    `bson:"notification"`
	Channel      string    `bson:"channel"`
	Payload      string    `bson:"payload"`
	Status       string    `bson:"status"` // a monitor.OutboxStatus
	Attempts     int       `bson:"attempts"`
	NextAttempt  time.Time `bson:"next_attempt"`
	Created      time.Time `bson:"created"`
	Updated      time.Time `bson:"updated"`
	LastError    string    `bson:"last_error"`
}

func newOutboxDoc(e monitor.OutboxEntry) outboxDoc {
	return outboxDoc{
		ID:           e.ID,
		Notification: e.Notification,
		Channel:      e.Channel,
		Payload:      string(e.Payload),
		Status:       string(e.Status),
		Attempts:     e.Attempts,
		NextAttempt:  bsonTime(e.NextAttempt),
		Created:      bsonTime(e.Created),
		Updated:      bsonTime(e.Updated),
		LastError:    e.LastError,
	}
}

func (d outboxDoc) entry() monitor.OutboxEntry {
	return monitor.OutboxEntry{
		ID:           d.ID,
		Notification: d.Notification,
		Channel:      d.Channel,
		Payload:      []byte(d.Payload),
		Status:       monitor.OutboxStatus(d.Status),
		Attempts:     d.Attempts,
		NextAttempt:  d.NextAttempt.UTC(),
		Created:      d.Created.UTC(),
		Updated:      d.Updated.UTC(),
		LastError:    d.LastError,
	}
}

// bsonTime is t as the database keeps it: UTC, to the millisecond.
func bsonTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// outbox returns the outbox collection, creating it on first use.
func (s *Store) outbox(ctx context.Context) (*mongo.Collection, error) {
	coll, err := s.collection(ctx, outboxName)
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	return coll, nil
}

// OutboxInsert adds e to the outbox. It reports false, and changes nothing,
// when an entry with e.ID is already there.
func (s *Store) OutboxInsert(ctx context.Context, e monitor.OutboxEntry) (inserted bool, err error) {
	if err := s.gate(); err != nil {
		return false, err
	}
	if e.ID == "" {
		return false, errors.New("insert outbox entry: no id")
	}
	coll, err := s.outbox(ctx)
	if err != nil {
		return false, err
	}
	_, err = coll.InsertOne(ctx, newOutboxDoc(e))
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("insert outbox entry %s: %w", e.ID, s.unavailable(err))
	}
	return true, nil
}

// OutboxGet returns the entry with id, or an error wrapping
// monitor.ErrNotFound.
func (s *Store) OutboxGet(ctx context.Context, id string) (*monitor.OutboxEntry, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	coll, err := s.outbox(ctx)
	if err != nil {
		return nil, err
	}
	var d outboxDoc
	err = findOne(ctx, coll, id, &d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("outbox entry %s: %w", id, monitor.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read outbox entry %s: %w", id, err)
	}
	e := d.entry()
	return &e, nil
}

// OutboxDue returns the pending entries whose NextAttempt is at or before
// now, oldest Created first, at most limit of them (all with limit <= 0).
func (s *Store) OutboxDue(ctx context.Context, now time.Time, limit int) ([]monitor.OutboxEntry, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	coll, err := s.outbox(ctx)
	if err != nil {
		return nil, err
	}
	opts := options.Find().SetSort(bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	return s.outboxFind(ctx, coll, "due", bson.D{
		{Key: "status", Value: string(monitor.OutboxPending)},
		{Key: "next_attempt", Value: bson.D{{Key: "$lte", Value: bsonTime(now)}}},
	}, opts)
}

// outboxFind returns the entries of the outbox coll that filter finds;
// what says which, in errors.
func (s *Store) outboxFind(ctx context.Context, coll *mongo.Collection, what string, filter bson.D, opts *options.FindOptions) ([]monitor.OutboxEntry, error) {
	docs, err := findAll[outboxDoc](ctx, s, coll, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("read %s outbox entries: %w", what, err)
	}
	entries := make([]monitor.OutboxEntry, len(docs))
	for i, d := range docs {
		entries[i] = d.entry()
	}
	return entries, nil
}

// OutboxSince returns the entries created at or after since, whatever their
// status, oldest first: what was notified lately, which a collector that
// takes servers over from another member of its cluster reads (see
// alerting.Adopt).
func (s *Store) OutboxSince(ctx context.Context, since time.Time) ([]monitor.OutboxEntry, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	coll, err := s.outbox(ctx)
	if err != nil {
		return nil, err
	}
	return s.outboxFind(ctx, coll, "recent", bson.D{{Key: "created", Value: bson.D{{Key: "$gte", Value: bsonTime(since)}}}},
		options.Find().SetSort(bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}))
}

// OutboxPending returns how many entries are pending: waiting for their
// first attempt or for a retry, due or not.
func (s *Store) OutboxPending(ctx context.Context) (int64, error) {
	if err := s.gate(); err != nil {
		return 0, err
	}
	coll, err := s.outbox(ctx)
	if err != nil {
		return 0, err
	}
	n, err := coll.CountDocuments(ctx, bson.D{{Key: "status", Value: string(monitor.OutboxPending)}})
	if err != nil {
		return 0, fmt.Errorf("count pending outbox entries: %w", s.unavailable(err))
	}
	return n, nil
}

// OutboxSave writes the delivery state of e (Status, Attempts, NextAttempt,
// Updated, LastError) to the stored entry e.ID. It sets absolute values, so
// saving the same state twice is harmless. Its error wraps
// monitor.ErrNotFound when there is no such entry.
func (s *Store) OutboxSave(ctx context.Context, e monitor.OutboxEntry) error {
	if err := s.gate(); err != nil {
		return err
	}
	coll, err := s.outbox(ctx)
	if err != nil {
		return err
	}
	res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: e.ID}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "status", Value: string(e.Status)},
		{Key: "attempts", Value: e.Attempts},
		{Key: "next_attempt", Value: bsonTime(e.NextAttempt)},
		{Key: "updated", Value: bsonTime(e.Updated)},
		{Key: "last_error", Value: e.LastError},
	}}})
	if err != nil {
		return fmt.Errorf("save outbox entry %s: %w", e.ID, s.unavailable(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("save outbox entry %s: %w", e.ID, monitor.ErrNotFound)
	}
	return nil
}

// OutboxPrune deletes the sent and failed entries last updated before
// before, and returns how many went, and the delivery claims that expired
// before it (see OutboxClaim). Pending entries are never pruned.
func (s *Store) OutboxPrune(ctx context.Context, before time.Time) (int64, error) {
	if err := s.gate(); err != nil {
		return 0, err
	}
	coll, err := s.outbox(ctx)
	if err != nil {
		return 0, err
	}
	res, err := coll.DeleteMany(ctx, bson.D{
		{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{string(monitor.OutboxSent), string(monitor.OutboxFailed)}}}},
		{Key: "updated", Value: bson.D{{Key: "$lt", Value: bsonTime(before)}}},
	})
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", s.unavailable(err))
	}
	if err := s.pruneClaims(ctx, before); err != nil {
		return res.DeletedCount, err
	}
	return res.DeletedCount, nil
}
