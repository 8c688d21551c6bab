package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"

	"github.com/crawlerfleet/collector/monitor"
)

// The collections of a cluster of collectors (see the package doc):
// members holds one heartbeat per member, outbox_claims one claim per
// delivery attempt of an outbox entry. Both are small and created on first
// use.
const (
	membersName = "members"
	claimsName  = "outbox_claims"
)

// memberDoc is a member's heartbeat; _id is its name.
type memberDoc struct {
	ID        string    `bson:"_id"`
	Host      string    `bson:"host"`
	PID       int       `bson:"pid"`
	Since     time.Time `bson:"since"`
	Renewed   time.Time `bson:"renewed"`
	Expires   time.Time `bson:"expires"`
	Owned     int       `bson:"owned"`
	Scheduled int64     `bson:"scheduled"`
	Done      int64     `bson:"done"`
}

func (d memberDoc) member() monitor.Member {
	return monitor.Member{
		Name: d.ID, Host: d.Host, PID: d.PID,
		Since: d.Since.UTC(), Renewed: d.Renewed.UTC(), Expires: d.Expires.UTC(),
		Owned: d.Owned, Scheduled: d.Scheduled, Done: d.Done,
	}
}

// claimDoc is the claim of one delivery attempt of an outbox entry; _id is
// "<entry _id>|<attempts>|<generation>".
type claimDoc struct {
	ID      string    `bson:"_id"`
	Entry   string    `bson:"entry"`
	Member  string    `bson:"member"`
	Until   time.Time `bson:"until"`
	Created time.Time `bson:"created"`
}

// Heartbeat writes m's heartbeat (its document in members, by name) with
// write concern majority, without waiting on the gate: a member must learn
// within its lease whether it may go on, and an answer from the database
// counts even while other operations fail fast. An outage error closes the
// gate as any other.
func (s *Store) Heartbeat(ctx context.Context, m monitor.Member) error {
	if m.Name == "" {
		return errors.New("heartbeat: no member name")
	}
	<-s.opened
	coll, err := s.collection(ctx, membersName)
	if err != nil {
		return fmt.Errorf("heartbeat of %s: %w", m.Name, err)
	}
	coll = coll.Database().Collection(membersName, options.Collection().SetWriteConcern(writeconcern.Majority()))
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: m.Name}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "host", Value: m.Host},
		{Key: "pid", Value: m.PID},
		{Key: "since", Value: bsonTime(m.Since)},
		{Key: "renewed", Value: bsonTime(m.Renewed)},
		{Key: "expires", Value: bsonTime(m.Expires)},
		{Key: "owned", Value: m.Owned},
		{Key: "scheduled", Value: m.Scheduled},
		{Key: "done", Value: m.Done},
	}}}, options.Update().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("heartbeat of %s: %w", m.Name, s.unavailable(err))
	}
	return nil
}

// Members returns every member's heartbeat, live or expired, sorted by
// name. Like Heartbeat it does not wait on the gate.
func (s *Store) Members(ctx context.Context) ([]monitor.Member, error) {
	<-s.opened
	coll, err := s.collection(ctx, membersName)
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	docs, err := findAll[memberDoc](ctx, s, coll, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	out := make([]monitor.Member, len(docs))
	for i, d := range docs {
		out[i] = d.member()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Leave deletes the heartbeat of the member name: a member that stops on
// purpose says so, and the others take its servers over at once. With
// expiredBy set, only a heartbeat that expired before it is deleted (a
// member forgetting its own earlier incarnation); Leave reports whether
// one was.
func (s *Store) Leave(ctx context.Context, name string, expiredBy time.Time) (bool, error) {
	if err := s.gate(); err != nil {
		return false, fmt.Errorf("leave %s: %w", name, err)
	}
	coll, err := s.collection(ctx, membersName)
	if err != nil {
		return false, fmt.Errorf("leave %s: %w", name, err)
	}
	filter := bson.D{{Key: "_id", Value: name}}
	if !expiredBy.IsZero() {
		filter = append(filter, bson.E{Key: "expires", Value: bson.D{{Key: "$lt", Value: bsonTime(expiredBy)}}})
	}
	res, err := coll.DeleteOne(ctx, filter)
	if err != nil {
		return false, fmt.Errorf("leave %s: %w", name, s.unavailable(err))
	}
	return res.DeletedCount > 0, nil
}

// Durability says how the database keeps the heartbeats, for the log at
// start: a replica set takes them with majority; a standalone MongoDB and
// FerretDB keep them on one server, whatever the write concern.
type Durability struct {
	ReplicaSet string // the replica set's name; "" when it is not one
	FerretDB   bool
}

// Majority reports whether a majority write outlives the loss of one server.
func (d Durability) Majority() bool { return d.ReplicaSet != "" && !d.FerretDB }

// String says it in a sentence.
func (d Durability) String() string {
	switch {
	case d.FerretDB:
		return "FerretDB ignores write concern (it takes w: majority, and even w: 3, on one server): heartbeats and results live on that one server"
	case d.ReplicaSet == "":
		return "a standalone MongoDB: majority is this one server; run a replica set so that the coordination outlives it"
	default:
		return "replica set " + d.ReplicaSet + ": heartbeats are written with w: majority"
	}
}

// Durability asks the database what it is.
func (s *Store) Durability(ctx context.Context) (Durability, error) {
	<-s.opened
	if err := s.setup(ctx); err != nil {
		return Durability{}, fmt.Errorf("ask the database what it is: %w", s.unavailable(err))
	}
	var hello struct {
		SetName string `bson:"setName"`
	}
	if err := s.db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return Durability{}, fmt.Errorf("ask the database what it is: %w", s.unavailable(err))
	}
	return Durability{ReplicaSet: hello.SetName, FerretDB: s.ferret.Load()}, nil
}

// maxClaimGenerations bounds how many expired claims of one delivery
// attempt OutboxClaim steps over.
const maxClaimGenerations = 100

// OutboxClaim claims the delivery of the outbox entry id, as it stood with
// attempts failed attempts, for member until until: of several collectors
// that share the outbox, one delivers each attempt. It reports true when
// member holds the claim, and the entry is still pending with those
// attempts (it may have been delivered meanwhile by the holder of an
// earlier claim). A claim whose until has passed at now (its holder
// stopped) is stepped over by the next generation, which one claimant wins.
//
// The claim is an insert of "<id>|<attempts>|<generation>": a unique _id is
// what FerretDB applies atomically, where its findAndModify is not.
func (s *Store) OutboxClaim(ctx context.Context, id string, attempts int, member string, now, until time.Time) (bool, error) {
	if err := s.gate(); err != nil {
		return false, err
	}
	claims, err := s.collection(ctx, claimsName)
	if err != nil {
		return false, fmt.Errorf("claim outbox entry %s: %w", id, err)
	}
	won := false
	for gen := 0; gen < maxClaimGenerations && !won; gen++ {
		c := claimDoc{ID: id + "|" + strconv.Itoa(attempts) + "|" + strconv.Itoa(gen), Entry: id, Member: member,
			Until: bsonTime(until), Created: bsonTime(now)}
		_, err := claims.InsertOne(ctx, c)
		if err == nil {
			won = true
			break
		}
		if !mongo.IsDuplicateKeyError(err) {
			return false, fmt.Errorf("claim outbox entry %s: %w", id, s.unavailable(err))
		}
		var held claimDoc
		err = findOne(ctx, claims, c.ID, &held)
		if errors.Is(err, mongo.ErrNoDocuments) {
			gen-- // pruned meanwhile: try this generation again
			continue
		}
		if err != nil {
			return false, fmt.Errorf("claim outbox entry %s: %w", id, s.unavailable(err))
		}
		if now.Before(held.Until) {
			return false, nil // held by a collector that may still deliver it
		}
	}
	if !won {
		return false, fmt.Errorf("claim outbox entry %s: %d expired claims of attempt %d", id, maxClaimGenerations, attempts)
	}
	e, err := s.OutboxGet(ctx, id)
	if errors.Is(err, monitor.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim outbox entry %s: %w", id, err)
	}
	return e.Status == monitor.OutboxPending && e.Attempts == attempts, nil
}

// pruneClaims deletes the claims that expired before before.
func (s *Store) pruneClaims(ctx context.Context, before time.Time) error {
	claims, err := s.collection(ctx, claimsName)
	if err != nil {
		return fmt.Errorf("prune outbox claims: %w", err)
	}
	if _, err := claims.DeleteMany(ctx, bson.D{{Key: "until", Value: bson.D{{Key: "$lt", Value: bsonTime(before)}}}}); err != nil {
		return fmt.Errorf("prune outbox claims: %w", s.unavailable(err))
	}
	return nil
}
