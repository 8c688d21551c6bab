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
	"sync"
	"time"
)

// sqliteReader reads rollups of the embedded store straight from FerretDB's
// SQLite file, bypassing FerretDB for the one read that is too slow through
// it: a range of rollups. FerretDB v1.24 cannot filter on anything but a lone
// _id inside SQLite, and decoding its stored form costs it a third of a
// millisecond per rollup, which made a 30-day report of 100 servers take 20
// seconds. Here one indexed range query per server reads the rows and Go
// decodes only their data.
//
// The layout it relies on is FerretDB v1.24's, pinned in go.mod:
// _ferretdb_collections maps a collection to its table; each row is one
// document in the column _ferretdb_sjson, a JSON object whose "$s" field
// (first) holds the schema and whose other fields hold the values, with
// dates as milliseconds since the epoch. The index on
// _ferretdb_sjson->'$._id' that Open adds (see indexIDs) orders the rows by
// their JSON-encoded _id. The reader never writes: its connections are
// query_only, and SQLite's WAL lets them read beside FerretDB's writers.
type sqliteReader struct {
	path string

	mu    sync.Mutex
	db    *sql.DB
	query string // the range query on the rollups table
}

func newSQLiteReader(dir, database string) *sqliteReader {
	return &sqliteReader{path: filepath.Join(dir, database+".sqlite")}
}

// open opens the file and finds the rollups table, unless done before; a
// failure is tried again on the next call.
func (r *sqliteReader) open(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db != nil {
		return nil
	}
	q := url.Values{"_pragma": {"busy_timeout(10000)", "query_only(1)"}}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: r.path, RawQuery: q.Encode()}).String())
	if err != nil {
		return fmt.Errorf("open %s: %w", r.path, err)
	}
	table, err := tableOf(ctx, db, rollupsName)
	if err != nil {
		db.Close()
		return fmt.Errorf("%s: %w", r.path, err)
	}
	r.db = db
	r.query = fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' >= ? AND _ferretdb_sjson->'$._id' < ?`, table)
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
// [from, to), in _id order, which is start order.
func (r *sqliteReader) rollups(ctx context.Context, server string, p Period, from, to time.Time) ([]Rollup, error) {
	if err := r.open(ctx); err != nil {
		return nil, err
	}
	// The index holds each _id as JSON text, as FerretDB wrote it with Go's
	// encoding/json; the bounds are encoded the same way. Ids of the same
	// server and period differ only in their time, so they sort by it; any
	// other id that falls between the bounds is dropped below.
	lo, err := json.Marshal(rollupID(server, p, from))
	if err != nil {
		return nil, err
	}
	hi, err := json.Marshal(rollupID(server, p, to))
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	db, query := r.db, r.query
	r.mu.Unlock()
	rows, err := db.QueryContext(ctx, query, string(lo), string(hi))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", r.path, err)
	}
	defer rows.Close()
	var out []Rollup
	var raw []byte
	for rows.Next() {
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("read %s: %w", r.path, err)
		}
		d, err := decodeSJSONRollup(raw)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", r.path, err)
		}
		ru := d.rollup()
		if ru.Server != server || ru.Period != p || ru.Start.Before(from) || !ru.Start.Before(to) {
			continue
		}
		out = append(out, ru)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", r.path, err)
	}
	return out, nil
}

// The stored form of a rollup: rollupDoc with dates as milliseconds.
type (
	sjsonRollup struct {
		ID      string      `json:"_id"`
		Server  string      `json:"server"`
		Period  Period      `json:"period"`
		Start   int64       `json:"start"`
		Count   int64       `json:"count"`
		Failed  int64       `json:"failed"`
		CPU     sjsonMetric `json:"cpu"`
		Mem     sjsonMetric `json:"mem"`
		Disk    sjsonMetric `json:"disk"`
		Load1   sjsonMetric `json:"load1"`
		Matched struct {
			Min int   `json:"min"`
			Max int   `json:"max"`
			Sum int64 `json:"sum"`
			N   int64 `json:"n"`
		} `json:"matched"`
	}
	sjsonMetric struct {
		Peak *sjsonPeak `json:"peak"`
		Sum  float64    `json:"sum"`
		N    int64      `json:"n"`
	}
	sjsonPeak struct {
		Value        float64 `json:"value"`
		At           int64   `json:"at"`
		ProcsKnown   bool    `json:"procs_known"`
		MatchedTotal int     `json:"matched_total"`
		Procs        []struct {
			Keyword string `json:"keyword"`
			Count   int    `json:"count"`
		} `json:"procs"`
	}
)

func (d *sjsonRollup) rollup() Rollup {
	return Rollup{
		Server:  d.Server,
		Period:  d.Period,
		Start:   time.UnixMilli(d.Start).UTC(),
		Count:   d.Count,
		Failed:  d.Failed,
		CPU:     d.CPU.metric(),
		Mem:     d.Mem.metric(),
		Disk:    d.Disk.metric(),
		Load1:   d.Load1.metric(),
		Matched: Matched(d.Matched),
	}
}

func (d *sjsonMetric) metric() Metric {
	m := Metric{Sum: d.Sum, N: d.N}
	if p := d.Peak; p != nil {
		m.Peak = Peak{Value: p.Value, At: time.UnixMilli(p.At).UTC(), ProcsKnown: p.ProcsKnown, MatchedTotal: p.MatchedTotal}
		if p.Procs != nil {
			m.Peak.Procs = make([]KeywordCount, len(p.Procs))
			for i, k := range p.Procs {
				m.Peak.Procs[i] = KeywordCount(k)
			}
		}
	}
	return m
}

// decodeSJSONRollup decodes one stored rollup, skipping its schema.
func decodeSJSONRollup(raw []byte) (*sjsonRollup, error) {
	data, err := withoutSchema(raw)
	if err != nil {
		return nil, fmt.Errorf("stored rollup %.80q: %w", raw, err)
	}
	var d sjsonRollup
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("stored rollup %.80q: %w", raw, err)
	}
	if d.ID == "" || d.Server == "" || d.Start == 0 {
		return nil, fmt.Errorf("stored rollup %.80q: no _id, server or start", raw)
	}
	return &d, nil
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
