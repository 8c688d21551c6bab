package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Defaults for the zero fields of Config.
const (
	DefaultDatabase        = "collector"
	DefaultDataDir         = "./data"
	DefaultRetention       = 90 * 24 * time.Hour
	DefaultRollupRetention = 400 * 24 * time.Hour
	DefaultSpoolMax        = 1 << 30
	DefaultTimeout         = 5 * time.Second
)

// EnvURI names the environment variable that overrides Config.URI. Open does
// not read it; the command applies it with ApplyEnv.
const EnvURI = "COLLECTOR_MONGO_URI"

// Collection names.
const (
	snapshotsName = "snapshots"
	attemptsName  = "attempts"
	rollupsName   = "rollups"
	serversName   = "servers"
)

// opTimeout bounds every single database operation, so that a database that
// accepts connections but never answers cannot hang a round.
const opTimeout = 60 * time.Second

// retryAfter is how long Write sends results straight to the spool after the
// database failed, instead of waiting for it again on every round.
const retryAfter = 15 * time.Second

// Config is the [store] section of servers.toml.
type Config struct {
	// URI of a MongoDB server. Empty starts the embedded FerretDB.
	URI string
	// Database name; default "collector".
	Database string
	// DataDir holds the embedded database files and the spool; default
	// "./data". It is created with mode 0700.
	DataDir string
	// Retention is how long raw snapshots and failed attempts are kept;
	// default 90 days.
	Retention time.Duration
	// RollupRetention is how long hourly and daily rollups are kept; default
	// 400 days.
	RollupRetention time.Duration
	// SpoolMax caps the spool file in bytes; default 1 GiB.
	SpoolMax int64
	// Timeout is how long an operation waits for an unreachable database
	// before its results go to the spool; default 5 s.
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
	if cfg.SpoolMax <= 0 {
		cfg.SpoolMax = DefaultSpoolMax
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return cfg
}

// A Store writes probe results to the database and reads them back. Its
// methods are safe for concurrent use; writes are serialised.
type Store struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	client    *mongo.Client
	db        *mongo.Database
	snapshots *mongo.Collection
	attempts  *mongo.Collection
	rollups   *mongo.Collection
	servers   *mongo.Collection

	embedded *embedded     // nil with an external database
	direct   *sqliteReader // range reads (rollups, snapshots, attempts) from the embedded database's file

	setupMu sync.Mutex
	isSetUp bool // guarded by setupMu
	// ferret is set when the database is FerretDB: look documents up by _id,
	// never scan. setup sets it under setupMu; reads load it without a lock.
	ferret atomic.Bool

	// mu serialises writes, replay and the spool.
	mu         sync.Mutex
	spool      *spool
	chunkSize  int
	retryAt    time.Time // no database attempt before this, except by Replay
	retryAfter time.Duration
	outage     bool // the last database attempt failed
}

// Open connects to the database named by cfg, or starts the embedded FerretDB
// when cfg.URI is empty, and makes sure collections and indexes exist.
//
// An external database that does not answer is not an error: Open logs a
// warning and returns a Store whose writes go to the spool until the
// database answers.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
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

	sp, err := openSpool(filepath.Join(dataDir, "spool"), cfg.SpoolMax, logger)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	s := &Store{
		cfg:        cfg,
		logger:     logger,
		now:        time.Now,
		spool:      sp,
		chunkSize:  defaultReplayChunk,
		retryAfter: retryAfter,
	}

	uri := cfg.URI
	if uri == "" {
		e, err := startEmbedded(ctx, filepath.Join(dataDir, "db"), "127.0.0.1:0", logger)
		if err != nil {
			sp.close()
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.embedded = e
		s.direct = newSQLiteReader(e.dir, cfg.Database)
		s.ferret.Store(true)
		uri = e.uri
	}

	opts := options.Client().
		ApplyURI(uri).
		SetAppName("collector").
		SetServerSelectionTimeout(cfg.Timeout).
		SetConnectTimeout(cfg.Timeout).
		SetTimeout(opTimeout)
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		s.closeEmbedded()
		sp.close()
		return nil, fmt.Errorf("open store: connect to %s: %w", redact(uri), err)
	}
	s.client = client
	s.db = client.Database(cfg.Database)
	s.snapshots = s.db.Collection(snapshotsName)
	s.attempts = s.db.Collection(attemptsName)
	s.rollups = s.db.Collection(rollupsName)
	s.servers = s.db.Collection(serversName)

	if err := s.setup(ctx); err != nil {
		if s.embedded != nil || !isOutage(err) {
			_ = s.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("open store: %w", err)
		}
		logger.Warn("database unreachable; results will be spooled until it answers",
			"uri", redact(uri), "err", err)
	}
	return s, nil
}

// Close disconnects from the database and stops the embedded server. Spooled
// results stay on disk for the next Open.
func (s *Store) Close(ctx context.Context) error {
	var errs []error
	if s.client != nil {
		if err := s.client.Disconnect(ctx); err != nil {
			errs = append(errs, fmt.Errorf("disconnect: %w", err))
		}
	}
	s.closeEmbedded()
	s.mu.Lock()
	if err := s.spool.close(); err != nil {
		errs = append(errs, err)
	}
	s.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

func (s *Store) closeEmbedded() {
	if s.direct != nil {
		if err := s.direct.close(); err != nil {
			s.logger.Warn("close the embedded database file", "err", err)
		}
	}
	if s.embedded != nil {
		s.embedded.stop()
	}
}

// Collection returns the named collection of the store's database, creating
// it when missing, for the collections kept next to the store's own (alert
// state, silences, outbox). On the embedded store it also adds the index
// that lets FerretDB find a document by _id without reading the whole
// collection.
func (s *Store) Collection(ctx context.Context, name string) (*mongo.Collection, error) {
	if err := s.createCollections(ctx, name); err != nil {
		return nil, err
	}
	if s.embedded != nil {
		if err := s.embedded.indexIDs(ctx, s.cfg.Database, name); err != nil {
			return nil, err
		}
	}
	return s.db.Collection(name), nil
}

// setup creates collections and indexes once; it is retried before each
// database write until it succeeds.
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
	names := []string{snapshotsName, attemptsName, rollupsName, serversName}
	if err := s.createCollections(ctx, names...); err != nil {
		return err
	}
	indexes := []struct {
		coll *mongo.Collection
		keys bson.D
	}{
		{s.snapshots, bson.D{{Key: "server", Value: 1}, {Key: "at", Value: 1}}},
		{s.snapshots, bson.D{{Key: "at", Value: 1}}},
		{s.attempts, bson.D{{Key: "server", Value: 1}, {Key: "at", Value: 1}}},
		{s.attempts, bson.D{{Key: "at", Value: 1}}},
		{s.rollups, bson.D{{Key: "server", Value: 1}, {Key: "period", Value: 1}, {Key: "start", Value: 1}}},
		{s.rollups, bson.D{{Key: "start", Value: 1}}},
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
			if err := s.embedded.indexIDs(ctx, s.cfg.Database, name); err != nil {
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

// isOutage reports whether err means the database could not be reached or
// did not answer in time, so that the same write may succeed later. An error
// the database returned about the request itself (a bad document, an
// unsupported operator) is not an outage, except the codes a server sends
// while stepping down or shutting down.
func isOutage(err error) bool {
	if err == nil {
		return false
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
