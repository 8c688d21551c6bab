package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the driver FerretDB uses; also opened directly by indexIDs and sqliteReader
)

// embedded is a FerretDB server run in-process on loopback, keeping its data
// in SQLite files under dir.
type embedded struct {
	dir    string
	uri    string
	cancel context.CancelFunc
	done   chan struct{}
}

// startEmbedded starts FerretDB with the SQLite backend on addr (host:port,
// port 0 for any free one). Its logs go to logger at warning level and above.
func startEmbedded(ctx context.Context, dir, addr string, logger *slog.Logger) (*embedded, error) {
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
	return &embedded{dir: dir, uri: f.MongoDBURI(), cancel: cancel, done: done}, nil
}

// stop shuts the server down and waits for it to close its files.
func (e *embedded) stop() {
	e.cancel()
	<-e.done
}

// indexIDs adds to the SQLite table behind a FerretDB collection an index on
// the exact expression FerretDB v1.24 uses to look a document up by _id
// (`_ferretdb_sjson->'$._id'`). FerretDB's own _id index is built on
// `_ferretdb_sjson->"_id"`, which SQLite cannot match to that expression, so
// without this every findOne, update and upsert by _id reads the whole
// table. The index changes no result, only the plan; FerretDB does not know
// of it and drops it with the table.
func (e *embedded) indexIDs(ctx context.Context, database, collection string) error {
	path := filepath.Join(e.dir, database+".sqlite")
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
	stmt := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, table+"_collector_id", table)
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("index %s by _id: %w", collection, err)
	}
	return nil
}

// minLevel passes on records at level min and above. It applies WithAttrs
// and WithGroup only when a record passes: FerretDB derives a logger per
// request, and eager formatting of attributes that are then never logged
// cost a tenth of the write path.
type minLevel struct {
	h   slog.Handler
	min slog.Level
	ops []func(slog.Handler) slog.Handler
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error {
	h := m.h
	for _, op := range m.ops {
		h = op(h)
	}
	return h.Handle(ctx, r)
}

func (m minLevel) with(op func(slog.Handler) slog.Handler) minLevel {
	m.ops = append(m.ops[:len(m.ops):len(m.ops)], op)
	return m
}

func (m minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return m.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return m.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

// ferretLogs drops FerretDB's dumps of failed responses that carry nothing
// for us: the header half of each dump, and the refusal of endSessions,
// which FerretDB v1.24 lacks and the driver sends on every Disconnect.
type ferretLogs struct{ h slog.Handler }

func (f ferretLogs) Enabled(ctx context.Context, l slog.Level) bool { return f.h.Enabled(ctx, l) }

func (f ferretLogs) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "Response header: ") ||
		strings.HasPrefix(r.Message, "Response message:") && strings.Contains(r.Message, "'endSessions'") {
		return nil
	}
	return f.h.Handle(ctx, r)
}

func (f ferretLogs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ferretLogs{f.h.WithAttrs(attrs)}
}

func (f ferretLogs) WithGroup(name string) slog.Handler { return ferretLogs{f.h.WithGroup(name)} }

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
