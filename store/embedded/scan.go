package embedded

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
)

// file is a query-only handle on one database's SQLite file, with the range
// queries prepared so far.
type file struct {
	path string
	db   *sql.DB

	mu    sync.Mutex
	stmts map[rangeKey]*sql.Stmt // the range queries prepared, guarded by mu
}

type rangeKey struct {
	collection string
	desc       bool
}

// file returns the handle on database's file, opening it on first use.
func (s *Server) file(database string) (*file, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, errors.New("embedded database stopped")
	}
	if f := s.files[database]; f != nil {
		return f, nil
	}
	path := s.path(database)
	q := url.Values{"_pragma": {"busy_timeout(10000)", "query_only(1)"}}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f := &file{path: path, db: db, stmts: map[rangeKey]*sql.Stmt{}}
	s.files[database] = f
	return f, nil
}

// rangeQuery returns the query that reads a collection's documents whose
// _id is in [?, ?), in _id order (descending with desc), by the index
// IndexIDs adds.
func (f *file) rangeQuery(ctx context.Context, collection string, desc bool) (string, error) {
	table, err := tableOf(ctx, f.db, collection)
	if err != nil {
		return "", err
	}
	q := fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q WHERE %s >= ? AND %s < ? ORDER BY %s`, table, idExpr, idExpr, idExpr)
	if desc {
		q += " DESC"
	}
	return q, nil
}

// rangeStmt returns rangeQuery prepared, once for all scans: a report
// scans a few ranges a server, and SQLite would parse and plan each one.
func (f *file) rangeStmt(ctx context.Context, collection string, desc bool) (*sql.Stmt, error) {
	key := rangeKey{collection, desc}
	f.mu.Lock()
	st, ok := f.stmts[key]
	f.mu.Unlock()
	if ok {
		return st, nil
	}
	q, err := f.rangeQuery(ctx, collection, desc)
	if err != nil {
		return nil, err
	}
	st, err = f.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if prev, ok := f.stmts[key]; ok { // prepared meanwhile
		st.Close()
		return prev, nil
	}
	f.stmts[key] = st
	return st, nil
}

// Scan calls each with every document of collection in database whose _id
// is a string in [fromID, toID), in _id order (descending with desc), until
// each returns false or an error; each's error is returned wrapped.
//
// A document is handed over as FerretDB stores it, less its schema: a JSON
// object of its fields, with dates as milliseconds since the epoch, 64-bit
// integers and doubles as JSON numbers, nested documents and arrays as plain
// JSON (see the package doc). each must not keep doc after it returns.
//
// The order is that of the _ids' JSON texts, as FerretDB wrote them and as
// the bounds are encoded here (Go's encoding/json). Ids that share a prefix
// and end in a fixed-width time sort by that time; an id with another prefix
// can still fall between the bounds, and each must skip it.
func (s *Server) Scan(ctx context.Context, database, collection, fromID, toID string, desc bool, each func(doc []byte) (more bool, err error)) error {
	f, err := s.file(database)
	if err != nil {
		return fmt.Errorf("scan %s: %w", collection, err)
	}
	stmt, err := f.rangeStmt(ctx, collection, desc)
	if err != nil {
		return fmt.Errorf("scan %s in %s: %w", collection, f.path, err)
	}
	lo, err := json.Marshal(fromID)
	if err != nil {
		return fmt.Errorf("scan %s: %w", collection, err)
	}
	hi, err := json.Marshal(toID)
	if err != nil {
		return fmt.Errorf("scan %s: %w", collection, err)
	}
	rows, err := stmt.QueryContext(ctx, string(lo), string(hi))
	if err != nil {
		return fmt.Errorf("scan %s in %s: %w", collection, f.path, err)
	}
	defer rows.Close()
	var raw sql.RawBytes // one buffer for all rows: each must not keep doc
	for rows.Next() {
		if err := rows.Scan(&raw); err != nil {
			return fmt.Errorf("scan %s in %s: %w", collection, f.path, err)
		}
		doc, err := withoutSchema(raw)
		if err != nil {
			return fmt.Errorf("scan %s in %s: stored document %.80q: %w", collection, f.path, raw, err)
		}
		more, err := each(doc)
		if err != nil {
			return fmt.Errorf("scan %s in %s: %w", collection, f.path, err)
		}
		if !more {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan %s in %s: %w", collection, f.path, err)
	}
	return nil
}

// CheckIndex returns an error, naming the plan, unless SQLite answers both
// queries that matter for collection with the index IndexIDs adds alone:
// FerretDB's lookup of a lone _id, and Scan's range query in either order
// (no full read, no sort).
func (s *Server) CheckIndex(ctx context.Context, database, collection string) error {
	f, err := s.file(database)
	if err != nil {
		return fmt.Errorf("check the _id index of %s: %w", collection, err)
	}
	table, err := tableOf(ctx, f.db, collection)
	if err != nil {
		return fmt.Errorf("check the _id index of %s in %s: %w", collection, f.path, err)
	}
	// The statement FerretDB's sqlite backend builds for a filter on _id
	// alone (collection.Query).
	lookup := fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q WHERE %s = ?`, table, idExpr)
	asc, err := f.rangeQuery(ctx, collection, false)
	if err != nil {
		return fmt.Errorf("check the _id index of %s in %s: %w", collection, f.path, err)
	}
	desc, err := f.rangeQuery(ctx, collection, true)
	if err != nil {
		return fmt.Errorf("check the _id index of %s in %s: %w", collection, f.path, err)
	}
	for _, q := range []struct {
		what, query string
		args        []any
	}{
		{"lookup by _id", lookup, []any{`"a"`}},
		{"range read", asc, []any{`"a"`, `"b"`}},
		{"descending range read", desc, []any{`"a"`, `"b"`}},
	} {
		plan, err := explain(ctx, f.db, q.query, q.args...)
		if err != nil {
			return fmt.Errorf("check the _id index of %s in %s: %w", collection, f.path, err)
		}
		if len(plan) != 1 || !strings.Contains(plan[0], "USING INDEX") || !strings.Contains(plan[0], table+indexSuffix) {
			return fmt.Errorf("check the _id index of %s in %s: the %s does not use the index %s alone: plan %q",
				collection, f.path, q.what, table+indexSuffix, plan)
		}
	}
	return nil
}

// explain returns the detail of each step of SQLite's plan for query.
func explain(ctx context.Context, db *sql.DB, query string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return nil, fmt.Errorf("explain %q: %w", query, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, fmt.Errorf("explain %q: %w", query, err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("explain %q: %w", query, err)
	}
	return plan, nil
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
