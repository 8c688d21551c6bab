package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// sqliteReader reads ranges of documents of the embedded store straight
// from FerretDB's SQLite file, bypassing FerretDB for the reads that are too
// slow through it: the rollups, snapshots and failed attempts of one server
// over a time range. FerretDB v1.24 cannot filter on anything but a lone _id
// inside SQLite (a range query reads the whole collection), and decoding its
// stored form costs it a third of a millisecond per rollup, which made a
// 30-day report of 100 servers take 20 seconds. Here one indexed range query
// per server reads the rows, and Go decodes only their data.
//
// Every _id the store writes starts with the server name and ends with a
// fixed-width time, so a server's documents over a time range are one range
// of _ids. The layout it relies on is FerretDB v1.24's, pinned in go.mod:
// _ferretdb_collections maps a collection to its table; each row is one
// document in the column _ferretdb_sjson, a JSON object whose "$s" field
// (first) holds the schema and whose other fields hold the values, with
// dates as milliseconds since the epoch. The index on
// _ferretdb_sjson->'$._id' that Open adds (see indexIDs) orders the rows by
// their JSON-encoded _id. The reader never writes: its connections are
// query_only, and SQLite's WAL lets them read beside FerretDB's writers.
type sqliteReader struct {
	path string

	mu      sync.Mutex
	db      *sql.DB
	queries map[string]string // by collection and direction: the range query
}

func newSQLiteReader(dir, database string) *sqliteReader {
	return &sqliteReader{path: filepath.Join(dir, database+".sqlite")}
}

// open opens the file unless done before; a failure is tried again on the
// next call.
func (r *sqliteReader) open() (*sql.DB, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db != nil {
		return r.db, nil
	}
	q := url.Values{"_pragma": {"busy_timeout(10000)", "query_only(1)"}}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: r.path, RawQuery: q.Encode()}).String())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", r.path, err)
	}
	r.db = db
	r.queries = map[string]string{}
	return db, nil
}

// rangeQuery returns the query that reads a collection's documents whose _id
// is in [?, ?), in _id order (descending with desc).
func (r *sqliteReader) rangeQuery(ctx context.Context, collection string, desc bool) (*sql.DB, string, error) {
	db, err := r.open()
	if err != nil {
		return nil, "", err
	}
	key := fmt.Sprint(collection, desc)
	r.mu.Lock()
	q, ok := r.queries[key]
	r.mu.Unlock()
	if ok {
		return db, q, nil
	}
	table, err := tableOf(ctx, db, collection)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", r.path, err)
	}
	const id = `_ferretdb_sjson->'$._id'`
	q = fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q WHERE %s >= ? AND %s < ? ORDER BY %s`, table, id, id, id)
	if desc {
		q += " DESC"
	}
	r.mu.Lock()
	r.queries[key] = q
	r.mu.Unlock()
	return db, q, nil
}

// scan calls each with the stored form of every document of collection whose
// _id is in [from, to), in _id order (descending with desc), until each
// returns false. The bounds are encoded as FerretDB wrote the _ids, with Go's
// encoding/json: the index holds each _id as that JSON text. Ids that share
// the server name differ only in their fixed-width time, so they sort by it;
// an id of another server can still fall between the bounds, and each must
// skip it. Like a BSON date, an _id keeps time to the millisecond: times in
// the bounds are cut to the millisecond, as a query through the driver cuts
// them.
func (r *sqliteReader) scan(ctx context.Context, collection, from, to string, desc bool, each func(raw []byte) (bool, error)) error {
	db, query, err := r.rangeQuery(ctx, collection, desc)
	if err != nil {
		return err
	}
	lo, err := json.Marshal(from)
	if err != nil {
		return err
	}
	hi, err := json.Marshal(to)
	if err != nil {
		return err
	}
	rows, err := db.QueryContext(ctx, query, string(lo), string(hi))
	if err != nil {
		return fmt.Errorf("query %s: %w", r.path, err)
	}
	defer rows.Close()
	var raw []byte
	for rows.Next() {
		if err := rows.Scan(&raw); err != nil {
			return fmt.Errorf("read %s: %w", r.path, err)
		}
		more, err := each(raw)
		if err != nil {
			return fmt.Errorf("read %s: %w", r.path, err)
		}
		if !more {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", r.path, err)
	}
	return nil
}

func (r *sqliteReader) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db == nil {
		return nil
	}
	err := r.db.Close()
	r.db = nil
	return err
}

// tableOf returns the SQLite table that holds a FerretDB collection.
func tableOf(ctx context.Context, db *sql.DB, collection string) (string, error) {
	var table string
	err := db.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = ?`, collection).Scan(&table)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("no collection %s", collection)
	}
	if err != nil {
		return "", fmt.Errorf("find the table of %s: %w", collection, err)
	}
	return table, nil
}

// rollups returns the rollups of server and period whose start is in
// [from, to), in start order.
func (r *sqliteReader) rollups(ctx context.Context, server string, p Period, from, to time.Time) ([]Rollup, error) {
	var out []Rollup
	err := r.scan(ctx, rollupsName, rollupID(server, p, from), rollupID(server, p, to), false, func(raw []byte) (bool, error) {
		var d rollupDoc
		if err := decodeStored(raw, &d); err != nil {
			return false, err
		}
		if d.Server == "" || time.Time(d.Start).IsZero() {
			return false, fmt.Errorf("stored rollup %q: no server or start", d.ID)
		}
		if ru := d.rollup(); ru.Server == server && ru.Period == p {
			out = append(out, ru)
		}
		return true, nil
	})
	return out, err
}

// attempts returns the failed attempts of server with from <= At < to,
// oldest first.
func (r *sqliteReader) attempts(ctx context.Context, server string, from, to time.Time) ([]Attempt, error) {
	var out []Attempt
	err := r.scan(ctx, attemptsName, resultID(server, from), resultID(server, to), false, func(raw []byte) (bool, error) {
		var d attemptDoc
		if err := decodeStored(raw, &d); err != nil {
			return false, err
		}
		if d.Server == server {
			out = append(out, d.attempt())
		}
		return true, nil
	})
	return out, err
}

// snapshots returns the snapshots of server with from <= At < to, oldest
// first; with limit > 0 the newest limit of them.
func (r *sqliteReader) snapshots(ctx context.Context, server string, from, to time.Time, limit int) ([]Record, error) {
	var out []Record
	err := r.scan(ctx, snapshotsName, resultID(server, from), resultID(server, to), true, func(raw []byte) (bool, error) {
		var d snapshotDoc
		if err := decodeStored(raw, &d); err != nil {
			return false, err
		}
		if d.Server != server {
			return true, nil
		}
		rec, err := d.record()
		if err != nil {
			return false, err
		}
		out = append(out, *rec)
		return limit <= 0 || len(out) < limit, nil
	})
	slices.Reverse(out)
	return out, err
}

// decodeStored decodes the stored form of a document into v, skipping its
// schema.
func decodeStored(raw []byte, v any) error {
	data, err := withoutSchema(raw)
	if err != nil {
		return fmt.Errorf("stored document %.80q: %w", raw, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("stored document %.80q: %w", data, err)
	}
	return nil
}

// withoutSchema returns the document raw (`{"$s":{...},"k":v,...}`) without
// its leading "$s" field, as `{"k":v,...}`, reusing raw's memory. Skipping
// the schema by scanning for the end of its object is three times cheaper
// than letting encoding/json parse it as an unknown field.
func withoutSchema(raw []byte) ([]byte, error) {
	const prefix = `{"$s":`
	if !bytes.HasPrefix(raw, []byte(prefix)) {
		return nil, errors.New(`not a FerretDB document: no leading "$s" schema`)
	}
	depth, inString, escaped := 0, false, false
	for i := len(prefix); i < len(raw); i++ {
		c := raw[i]
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth < 0 {
				return nil, errors.New("unbalanced schema")
			}
			if depth > 0 {
				continue
			}
			// raw[i] closes the schema: what follows is ",field..." or "}".
			rest := raw[i+1:]
			switch {
			case len(rest) > 0 && rest[0] == ',':
				rest[0] = '{'
				return rest, nil
			case len(rest) > 0 && rest[0] == '}':
				return []byte("{}"), nil
			}
			return nil, errors.New("no field after the schema")
		}
	}
	return nil, errors.New("unterminated schema")
}
