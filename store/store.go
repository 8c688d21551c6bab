package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store/embedded"
)

// Defaults for the zero fields of Config.
const (
	DefaultDatabase        = "collector"
	DefaultDataDir         = "./data"
	DefaultRetention       = 90 * 24 * time.Hour
	DefaultRollupRetention = 400 * 24 * time.Hour
	DefaultTimeout         = 5 * time.Second
)

// OpenWait is how long Open waits for an external database to answer
// before it returns a store whose setup is tried again on first use, so
// that a database that is down never holds up a command.
const OpenWait = time.Second

// EnvURI names the environment variable that overrides Config.URI. Open does
// not read it; the command applies it with ApplyEnv.
const EnvURI = "COLLECTOR_MONGO_URI"

// Collection names.
const (
	snapshotsName  = "snapshots"
	pointsName     = "points"
	attemptsName   = "attempts"
	rollupsName    = "rollups"
	sealedName     = "sealed"
	serversName    = "servers"
	alertStateName = "alert_state"
	silencesName   = "silences"
	outboxName     = "outbox"
	layoutName     = "layout_check" // the embedded store's canary, see checkLayout
)

// opTimeout bounds every single database operation, so that a database that
// accepts connections but never answers cannot hang a round.
const opTimeout = 60 * time.Second

// Config is the [store] section of servers.toml, less the spool's cap
// (package spool keeps its own).
type Config struct {
	// URI of a MongoDB server. Empty starts the embedded FerretDB.
	URI string
	// Database name; default "collector".
	Database string
	// DataDir holds the embedded database files under db/, the prune
	// marker, and (for package spool) the spool; default "./data". It is
	// created with mode 0700.
	DataDir string
	// Retention is how long raw snapshots and failed attempts are kept;
	// default 90 days.
	Retention time.Duration
	// RollupRetention is how long hourly and daily rollups are kept; default
	// 400 days.
	RollupRetention time.Duration
	// Timeout is how long an operation waits for an unreachable database
	// before it fails with monitor.ErrUnavailable; default 5 s.
	Timeout time.Duration
}

// ApplyEnv returns cfg with URI taken from COLLECTOR_MONGO_URI when that is
// set. getenv is os.Getenv outside tests.
func (cfg Config) ApplyEnv(getenv func(string) string) Config {
	if uri := getenv(EnvURI); uri != "" {
		cfg.URI = uri
	}
	return cfg
}

func (cfg Config) withDefaults() Config {
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.RollupRetention <= 0 {
		cfg.RollupRetention = DefaultRollupRetention
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return cfg
}

// A Store keeps probe results, their rollups, alert states, silences and the
// notification outbox in the database, and reads them back. Its methods are
// safe for concurrent use; WriteResults calls are serialised.
type Store struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	client    *mongo.Client
	db        *mongo.Database
	snapshots *mongo.Collection
	points    *mongo.Collection
	attempts  *mongo.Collection
	rollups   *mongo.Collection
	sealed    *mongo.Collection // sealed days, see sealed.go
	servers   *mongo.Collection

	embedded *embedded.Server // nil with an external database
	// direct serves the range reads (rollups, snapshots, attempts) from the
	// embedded database's file; nil when they go through the driver: with
	// an external database, or when checkLayout failed. Set by Open only.
	direct directReader

	setupMu sync.Mutex
	isSetUp bool // guarded by setupMu
	// ferret is set when the database is FerretDB: look documents up by _id,
	// never scan. setup sets it under setupMu; reads load it without a lock.
	ferret atomic.Bool

	// The gate: while the database is known to be down, operations fail
	// at once (see gate).
	downSince atomic.Int64  // unix ns; 0 while up
	lastTry   atomic.Int64  // unix ns of the last operation let through
	downErr   atomic.Value  // string: why it is down
	opened    chan struct{} // closed when Open's first setup is done, either way

	collMu sync.Mutex
	ready  map[string]bool // collections made by collection; guarded by collMu

	writeMu sync.Mutex // serialises WriteResults
}

// directReader is what the range reads need of the embedded backend:
// *embedded.Server.
type directReader interface {
	Scan(ctx context.Context, database, collection, fromID, toID string, desc bool, each func(doc []byte) (more bool, err error)) error
	CheckIndex(ctx context.Context, database, collection string) error
}

var _ directReader = (*embedded.Server)(nil)

// Open connects to the database named by cfg, or starts the embedded FerretDB
// when cfg.URI is empty, and makes sure collections and indexes exist.
//
// On the embedded database Open then checks that the on-disk layout is the
// one the direct range reads expect: it writes an embedded.Canary into the
// layout_check collection through the driver, reads it back from the file
// and checks the query plans. When anything is off it logs a warning that
// names it, and the store reads through FerretDB instead: slower, never
// wrong.
//
// An external database that does not answer is not an error: Open logs a
// warning and returns a Store whose operations fail with
// monitor.ErrUnavailable until the database answers.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	return open(ctx, cfg, logger, nil)
}

// open is Open; tests pass wrap to stand between the store and the embedded
// backend's direct reads.
func open(ctx context.Context, cfg Config, logger *slog.Logger, wrap func(directReader) directReader) (*Store, error) {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open store: data dir %q: %w", cfg.DataDir, err)
	}
	cfg.DataDir = dataDir
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: create data dir: %w", err)
	}

	s := &Store{cfg: cfg, logger: logger, now: time.Now, ready: map[string]bool{}}

	uri := cfg.URI
	if uri == "" {
		e, err := embedded.Start(ctx, filepath.Join(dataDir, "db"), "127.0.0.1:0", logger)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.embedded = e
		s.ferret.Store(true)
		uri = e.URI()
	}

	opts := options.Client().
		ApplyURI(uri).
		SetAppName("collector").
		SetServerSelectionTimeout(cfg.Timeout).
		SetConnectTimeout(cfg.Timeout).
		SetTimeout(opTimeout).
		SetHeartbeatInterval(heartbeatEvery).
		SetServerMonitor(&event.ServerMonitor{
			ServerHeartbeatFailed: func(e *event.ServerHeartbeatFailedEvent) {
				s.noteDown(fmt.Errorf("heartbeat: %w", e.Failure))
			},
			ServerHeartbeatSucceeded: func(*event.ServerHeartbeatSucceededEvent) { s.noteUp() },
		})
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		if s.embedded != nil {
			s.embedded.Stop()
		}
		return nil, fmt.Errorf("open store: connect to %s: %w", redact(uri), err)
	}
	s.client = client
	s.db = client.Database(cfg.Database)
	s.snapshots = s.db.Collection(snapshotsName)
	s.points = s.db.Collection(pointsName)
	s.attempts = s.db.Collection(attemptsName)
	s.rollups = s.db.Collection(rollupsName)
	s.sealed = s.db.Collection(sealedName)
	s.servers = s.db.Collection(serversName)

	s.opened = make(chan struct{})
	if s.embedded == nil {
		// An external database that does not answer must not hold up the
		// command: the first setup runs beside it, within OpenWait, and
		// operations wait for its outcome (see gate); after a failure,
		// setup is tried again before the first write.
		go func() {
			defer close(s.opened)
			setupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(OpenWait, cfg.Timeout))
			defer cancel()
			if err := s.setup(setupCtx); err != nil {
				s.noteDown(err)
				logger.Warn("database not answering; results are kept in the spool until it does",
					"uri", redact(uri), "waited", min(OpenWait, cfg.Timeout).String(), "err", err)
			}
		}()
		return s, nil
	}
	setupCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	err = s.setup(setupCtx)
	cancel()
	close(s.opened)
	if err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("open store: %w", err)
	}

	if s.embedded != nil {
		var direct directReader = s.embedded
		if wrap != nil {
			direct = wrap(direct)
		}
		if err := s.checkLayout(ctx, direct); err != nil {
			logger.Warn("embedded database layout is not the one the direct reads expect; reading through FerretDB instead (slower)",
				"err", err)
		} else {
			s.direct = direct
		}
	}
	return s, nil
}

// Close disconnects from the database and stops the embedded server.
func (s *Store) Close(ctx context.Context) error {
	var err error
	if s.client != nil {
		if derr := s.client.Disconnect(ctx); derr != nil {
			err = fmt.Errorf("close store: disconnect: %w", derr)
		}
	}
	if s.embedded != nil {
		s.embedded.Stop()
	}
	return err
}

// DataDir returns the store's data directory: Config.DataDir made absolute
// ("./data" when empty). The command keeps the spool in its spool
// subdirectory.
func (s *Store) DataDir() string { return s.cfg.DataDir }

// collection returns the named collection, creating it (and, on the
// embedded store, its _id index) on first use: for the collections that
// only some commands use (alert state, silences, outbox, the layout
// canary). A failure is tried again on the next call.
func (s *Store) collection(ctx context.Context, name string) (*mongo.Collection, error) {
	s.collMu.Lock()
	defer s.collMu.Unlock()
	if !s.ready[name] {
		if err := s.createCollections(ctx, name); err != nil {
			return nil, s.unavailable(err)
		}
		if s.embedded != nil {
			if err := s.embedded.IndexIDs(ctx, s.cfg.Database, name); err != nil {
				return nil, err
			}
		}
		s.ready[name] = true
	}
	return s.db.Collection(name), nil
}

// setup creates collections and indexes once; it is retried before each
// write until it succeeds.
func (s *Store) setup(ctx context.Context) error {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	if s.isSetUp {
		return nil
	}
	if !s.ferret.Load() {
		var info bson.M
		err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info)
		if err != nil {
			return fmt.Errorf("read server build info: %w", err)
		}
		_, ferret := info["ferretdbVersion"]
		s.ferret.Store(ferret)
	}
	names := []string{snapshotsName, pointsName, attemptsName, rollupsName, sealedName, serversName}
	if err := s.createCollections(ctx, names...); err != nil {
		return err
	}
	indexes := []struct {
		coll *mongo.Collection
		keys bson.D
	}{
		{s.snapshots, bson.D{{Key: "server", Value: 1}, {Key: "at", Value: 1}}},
		{s.snapshots, bson.D{{Key: "at", Value: 1}}},
		{s.points, bson.D{{Key: "server", Value: 1}, {Key: "start", Value: 1}}},
		{s.points, bson.D{{Key: "start", Value: 1}}},
		{s.attempts, bson.D{{Key: "server", Value: 1}, {Key: "at", Value: 1}}},
		{s.attempts, bson.D{{Key: "at", Value: 1}}},
		{s.rollups, bson.D{{Key: "server", Value: 1}, {Key: "period", Value: 1}, {Key: "start", Value: 1}}},
		{s.rollups, bson.D{{Key: "start", Value: 1}}},
		{s.sealed, bson.D{{Key: "start", Value: 1}}},
	}
	if s.ferret.Load() {
		// FerretDB v1.24 filters outside SQLite and never uses these; on
		// SQLite they only slow every insert and update.
		indexes = nil
	}
	for _, ix := range indexes {
		if _, err := ix.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys}); err != nil {
			return fmt.Errorf("create index on %s: %w", ix.coll.Name(), err)
		}
	}
	if s.embedded != nil {
		for _, name := range names {
			if err := s.embedded.IndexIDs(ctx, s.cfg.Database, name); err != nil {
				return err
			}
		}
	}
	s.isSetUp = true
	return nil
}

func (s *Store) createCollections(ctx context.Context, names ...string) error {
	have, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", err)
	}
	for _, name := range names {
		if slices.Contains(have, name) {
			continue
		}
		err := s.db.CreateCollection(ctx, name)
		var ce mongo.CommandError
		if errors.As(err, &ce) && ce.Code == 48 { // NamespaceExists: created meanwhile
			err = nil
		}
		if err != nil {
			return fmt.Errorf("create collection %s: %w", name, err)
		}
	}
	return nil
}

// unavailable returns err, the error of a database operation, marked with
// monitor.ErrUnavailable when it is an outage (see isOutage), and as it is
// otherwise. Every error of a database operation passes through it before
// it leaves the store; errors of decoding what the database returned do not
// (see decodeAll).
func (s *Store) unavailable(err error) error {
	err = markOutage(err)
	if errors.Is(err, monitor.ErrUnavailable) {
		s.noteDown(err)
	}
	return err
}

// markOutage is unavailable without noting the outage, for the helpers
// below whose callers pass the error on.
func markOutage(err error) error {
	if err == nil || errors.Is(err, monitor.ErrUnavailable) || errors.Is(err, mongo.ErrNoDocuments) || !isOutage(err) {
		return err
	}
	return fmt.Errorf("%w: %w", monitor.ErrUnavailable, err)
}

// GateRetry is how long the store answers at once, with an error, while
// the database is known to be down (a heartbeat or an operation failed),
// before it lets one operation try again: so that a command or a round that
// needs several operations waits on a dead database once, not once each.
const GateRetry = 5 * time.Second

// heartbeatEvery is how often the driver checks that the database answers;
// its failures and successes open and close the gate.
const heartbeatEvery = 2 * time.Second

// noteDown records that the database did not answer; a cancelled context
// is the caller's doing, not the database's, and records nothing.
func (s *Store) noteDown(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	now := time.Now().UnixNano()
	s.downSince.CompareAndSwap(0, now)
	s.lastTry.Store(now)
	s.downErr.Store(err.Error())
}

// noteUp records that the database answered.
func (s *Store) noteUp() { s.downSince.Store(0) }

// gate fails at once, wrapping monitor.ErrUnavailable, while the database
// is known to be down, but for one operation every GateRetry.
func (s *Store) gate() error {
	<-s.opened // the first setup's outcome: up, or down
	since := s.downSince.Load()
	if since == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	last := s.lastTry.Load()
	if now-last >= int64(GateRetry) && s.lastTry.CompareAndSwap(last, now) {
		return nil // this one tries
	}
	msg, _ := s.downErr.Load().(string)
	return fmt.Errorf("%w: database unreachable since %s (asked again every %s): %s",
		monitor.ErrUnavailable, time.Unix(0, since).UTC().Format(time.RFC3339), GateRetry, msg)
}

// decodeAll reads every document of cur into a T each and closes cur. An
// error of the cursor is marked by unavailable; an error of decoding is not.
func decodeAll[T any](ctx context.Context, cur *mongo.Cursor) ([]T, error) {
	defer cur.Close(context.WithoutCancel(ctx))
	var out []T
	for cur.Next(ctx) {
		var v T
		if err := cur.Decode(&v); err != nil {
			return nil, fmt.Errorf("decode document %s: %w", cur.Current.Lookup("_id"), err)
		}
		out = append(out, v)
	}
	if err := cur.Err(); err != nil {
		return nil, markOutage(err)
	}
	return out, nil
}

// findAll finds the documents of coll that filter matches and decodes them
// all; a failure to reach the database is marked by s.unavailable.
func findAll[T any](ctx context.Context, s *Store, coll *mongo.Collection, filter any, opts ...*options.FindOptions) ([]T, error) {
	cur, err := coll.Find(ctx, filter, opts...)
	if err != nil {
		return nil, s.unavailable(err)
	}
	return decodeAll[T](ctx, cur)
}

// findOne decodes the document of coll whose _id is id into v. Its error
// wraps mongo.ErrNoDocuments when there is none, and is marked by
// unavailable when the database failed; an error of decoding is not.
func findOne(ctx context.Context, coll *mongo.Collection, id string, v any, opts ...*options.FindOneOptions) error {
	res := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, opts...)
	if err := res.Err(); err != nil {
		return markOutage(err)
	}
	if err := res.Decode(v); err != nil {
		return fmt.Errorf("decode %s %s: %w", coll.Name(), id, err)
	}
	return nil
}

// isOutage reports whether err means the database could not be reached or
// did not answer in time, so that the same write may succeed later. An error
// the database returned about the request itself (a bad document, an
// unsupported operator) is not an outage, except the codes a server sends
// while stepping down or shutting down.
func isOutage(err error) bool {
	if err == nil {
		return false
	}
	if diskFull(err) {
		return true // the database cannot write now; it may later, when there is room
	}
	if mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return true
	}
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return true // server selection, closed client, cancelled context
	}
	if se.HasErrorLabel("RetryableWriteError") || se.HasErrorLabel("TransientTransactionError") {
		return true
	}
	for _, code := range []int{
		6,     // HostUnreachable
		7,     // HostNotFound
		89,    // NetworkTimeout
		91,    // ShutdownInProgress
		189,   // PrimarySteppedDown
		262,   // ExceededTimeLimit
		9001,  // SocketException
		10107, // NotWritablePrimary
		11600, // InterruptedAtShutdown
		11602, // InterruptedDueToReplStateChange
		13435, // NotPrimaryNoSecondaryOk
		13436, // NotPrimaryOrSecondary
	} {
		if se.HasErrorCode(code) {
			return true
		}
	}
	return false
}

// diskFull reports whether err says the database ran out of disk space
// (SQLite under FerretDB: "database or disk is full"; MongoDB: "No space
// left on device").
func diskFull(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "disk is full") || strings.Contains(msg, "no space left")
}

// Ping checks that the database answers, within ctx. Its error wraps
// monitor.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.gate(); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		err = fmt.Errorf("ping database: %w: %w", monitor.ErrUnavailable, err)
		s.noteDown(err)
		return err
	}
	s.noteUp()
	return nil
}

// redact hides the password in a MongoDB URI for logs and errors.
func redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable URI)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
