package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the driver FerretDB uses; also opened directly by IndexIDs, Scan and CheckIndex
)

// A Server is a FerretDB server run in-process on loopback, keeping its
// data in SQLite files under a directory. Its methods are safe for
// concurrent use.
type Server struct {
	dir    string
	uri    string
	cancel context.CancelFunc
	done   chan struct{}
	stop   sync.Once

	mu      sync.Mutex
	stopped bool             // guarded by mu
	files   map[string]*file // by database; guarded by mu
}

// Start starts FerretDB with its SQLite backend on addr (host:port, port 0
// for any free one), keeping its files under dir, which it creates with
// mode 0700. FerretDB's logs go to logger at warning level and above. It
// returns once the server accepts connections; the server runs until Stop,
// whatever becomes of ctx.
func Start(ctx context.Context, dir, addr string, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start embedded database: %w", err)
	}
	// WAL with synchronous=NORMAL never corrupts the database; a power cut
	// can lose the last commits, like MongoDB's default 100 ms journal
	// interval. FULL (FerretDB's default) halves the write rate.
	q := url.Values{"_pragma": {"synchronous(normal)"}}
	sqliteURL := (&url.URL{Scheme: "file", Path: dir + "/", RawQuery: q.Encode()}).String()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    slog.New(ferretLogs{minLevel{h: logger.Handler(), min: slog.LevelWarn}}).With("component", "ferretdb"),
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded database in %s: %w", dir, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f.Run(runCtx); err != nil {
			logger.Error("embedded database stopped", "err", err)
		}
	}()
	// MongoDBURI waits until the listener is up.
	return &Server{dir: dir, uri: f.MongoDBURI(), cancel: cancel, done: done, files: map[string]*file{}}, nil
}

// URI returns the MongoDB URI the server listens on.
func (s *Server) URI() string { return s.uri }

// Stop shuts the server down, waits for it to close its files and closes
// the ones Scan opened. Scan and CheckIndex fail after it; calling it again
// does nothing.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.cancel()
		<-s.done
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stopped = true
		for _, f := range s.files {
			for _, st := range f.stmts {
				st.Close()
			}
			f.db.Close() // read-only: nothing to lose
		}
		s.files = nil
	})
}

// path returns the SQLite file of database.
func (s *Server) path(database string) string { return filepath.Join(s.dir, database+".sqlite") }

// IndexIDs adds to the SQLite table behind a collection an index on the
// exact expression FerretDB v1.24 uses to look a document up by _id
// (`_ferretdb_sjson->'$._id'`). FerretDB's own _id index is built on
// `_ferretdb_sjson->"_id"`, which SQLite cannot match to that expression,
// so without this every findOne, update and upsert by _id reads the whole
// table; Scan's range query uses the same index. The index changes no
// result, only the plan; FerretDB does not know of it and drops it with the
// table. The collection must exist. Adding the index again does nothing.
func (s *Server) IndexIDs(ctx context.Context, database, collection string) error {
	path := s.path(database)
	q := url.Values{"_pragma": {"busy_timeout(10000)"}}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String())
	if err != nil {
		return fmt.Errorf("index %s by _id: %w", collection, err)
	}
	defer db.Close()
	table, err := tableOf(ctx, db, collection)
	if err != nil {
		return fmt.Errorf("index %s by _id in %s: %w", collection, path, err)
	}
	stmt := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, table+indexSuffix, table, idExpr)
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("index %s by _id: %w", collection, err)
	}
	return nil
}

// The index IndexIDs adds: its name is the table's with indexSuffix, its
// expression idExpr, the one FerretDB v1.24 queries a lone _id by.
const (
	indexSuffix = "_collector_id"
	idExpr      = `_ferretdb_sjson->'$._id'`
)

// registryTable maps each FerretDB collection to its SQLite table.
const registryTable = "_ferretdb_collections"

// tableOf returns the SQLite table that holds a FerretDB collection.
func tableOf(ctx context.Context, db *sql.DB, collection string) (string, error) {
	var table string
	err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT table_name FROM %q WHERE name = ?`, registryTable), collection).Scan(&table)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("no collection %s in %s", collection, registryTable)
	}
	if err != nil {
		return "", fmt.Errorf("find the table of %s in %s: %w", collection, registryTable, err)
	}
	return table, nil
}
