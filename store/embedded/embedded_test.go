package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/crawlerfleet/collector/internal/testutil"
)

const testDB = "test"

// startTest starts a server in a temporary directory and connects the
// driver to its database testDB; both stop at the end of the test.
func startTest(t *testing.T) (*Server, *mongo.Database) {
	t.Helper()
	ctx := context.Background()
	logger, _ := testutil.Logger(t)
	s, err := Start(ctx, t.TempDir(), "127.0.0.1:0", logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(s.URI()).SetTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(ctx) }) // before Stop: cleanups run last first
	return s, client.Database(testDB)
}

// insert stores docs in collection and adds the _id index.
func insert(t *testing.T, s *Server, db *mongo.Database, collection string, docs ...bson.D) {
	t.Helper()
	ctx := context.Background()
	var many []any
	for _, d := range docs {
		many = append(many, d)
	}
	if _, err := db.Collection(collection).InsertMany(ctx, many); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexIDs(ctx, testDB, collection); err != nil {
		t.Fatal(err)
	}
}

// scanIDs returns the _ids Scan hands over for [from, to).
func scanIDs(t *testing.T, s *Server, collection, from, to string, desc bool) []string {
	t.Helper()
	var ids []string
	err := s.Scan(context.Background(), testDB, collection, from, to, desc, func(doc []byte) (bool, error) {
		var d struct {
			ID string `json:"_id"`
		}
		if err := json.Unmarshal(doc, &d); err != nil {
			return false, err
		}
		ids = append(ids, d.ID)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestScan reads ranges of _ids, in both orders, of documents whose _ids
// and values need escaping in JSON, and gets each document without its
// schema, with its date as milliseconds.
func TestScan(t *testing.T) {
	s, db := startTest(t)
	at := time.Date(2024, 5, 1, 10, 0, 0, 123_000_000, time.UTC)
	ids := []string{"a|1", "a|2", "a|3", "a|4", "a|5", "ab|1", `<b>"q"|1`, `<b>"q"|2`, "爬虫\u2028|1"}
	var docs []bson.D
	for i, id := range ids {
		docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "at", Value: at.Add(time.Duration(i) * time.Minute)}, {Key: "n", Value: int64(i)},
			{Key: "nested", Value: bson.D{{Key: "list", Value: bson.A{bson.D{{Key: "k", Value: `"v" <&>`}}}}}}})
	}
	insert(t, s, db, "docs", docs...)

	for _, tc := range []struct {
		from, to string
		desc     bool
		want     []string
	}{
		{"a|2", "a|4", false, []string{"a|2", "a|3"}},
		{"a|2", "a|4", true, []string{"a|3", "a|2"}},
		{"a|", "a|\x7f", false, []string{"a|1", "a|2", "a|3", "a|4", "a|5"}},
		{`<b>"q"|`, `<b>"q"|3`, false, []string{`<b>"q"|1`, `<b>"q"|2`}},
		{"爬虫\u2028|", "爬虫\u2028|9", true, []string{"爬虫\u2028|1"}},
		{"b", "c", false, nil},
	} {
		if got := scanIDs(t, s, "docs", tc.from, tc.to, tc.desc); !slices.Equal(got, tc.want) {
			t.Errorf("Scan [%q, %q) desc %v = %q, want %q", tc.from, tc.to, tc.desc, got, tc.want)
		}
	}

	var got []string
	err := s.Scan(context.Background(), testDB, "docs", "a|1", "a|9", false, func(doc []byte) (bool, error) {
		got = append(got, string(doc))
		return len(got) < 2, nil
	})
	if err != nil || len(got) != 2 {
		t.Fatalf("Scan stopped by each = %d documents, %v; want 2", len(got), err)
	}
	if want := fmt.Sprintf(`{"_id":"a|2","at":%d,"n":1,"nested":{"list":[{"k":"\"v\" \u003c\u0026\u003e"}]}}`, at.Add(time.Minute).UnixMilli()); got[1] != want {
		t.Errorf("document:\n got %s\nwant %s", got[1], want)
	}

	err = s.Scan(context.Background(), testDB, "docs", "a|1", "a|9", false, func([]byte) (bool, error) {
		return false, fmt.Errorf("each failed")
	})
	if err == nil || !strings.Contains(err.Error(), "scan docs in ") || !strings.Contains(err.Error(), "each failed") {
		t.Errorf("Scan with a failing each = %v", err)
	}
	if err := s.Scan(context.Background(), testDB, "nosuch", "a", "b", false, nil); err == nil || !strings.Contains(err.Error(), "no collection nosuch in _ferretdb_collections") {
		t.Errorf("Scan of a missing collection = %v", err)
	}
	db.Client().Disconnect(context.Background()) // or FerretDB waits for the connection
	s.Stop()
	if err := s.Scan(context.Background(), testDB, "docs", "a", "b", false, nil); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Scan after Stop = %v", err)
	}
	s.Stop() // again: nothing happens
}

// TestIndexIDs checks that the index IndexIDs adds serves the lookup
// FerretDB v1.24 runs for a filter on _id alone, and Scan's range queries;
// without it SQLite reads the whole table for every findOne, update and
// upsert, and CheckIndex says so.
func TestIndexIDs(t *testing.T) {
	ctx := context.Background()
	s, db := startTest(t)
	if _, err := db.Collection("docs").InsertOne(ctx, bson.D{{Key: "_id", Value: "a|1"}}); err != nil {
		t.Fatal(err)
	}
	err := s.CheckIndex(ctx, testDB, "docs")
	if err == nil || !strings.Contains(err.Error(), "does not use the index") {
		t.Errorf("CheckIndex before IndexIDs = %v; want a complaint about the plan", err)
	}
	for range 2 { // adding it again does nothing
		if err := s.IndexIDs(ctx, testDB, "docs"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CheckIndex(ctx, testDB, "docs"); err != nil {
		t.Errorf("CheckIndex after IndexIDs: %v", err)
	}

	// The plans themselves, read on a connection of the test's own.
	f, err := sql.Open("sqlite", "file:"+filepath.Join(s.dir, testDB+".sqlite")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table, err := tableOf(ctx, f, "docs")
	if err != nil {
		t.Fatal(err)
	}
	// The statement FerretDB's sqlite backend builds in collection.Query.
	q := fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table)
	var id, parent, notused int
	var detail string
	if err := f.QueryRow(q, `"x"`).Scan(&id, &parent, &notused, &detail); err != nil {
		t.Fatalf("plan: %v", err)
	}
	if !strings.Contains(detail, "USING INDEX") {
		t.Errorf("lookup by _id: plan %q, want an index search", detail)
	}
	fh, err := s.file(testDB)
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range []bool{false, true} {
		query, err := fh.rangeQuery(ctx, "docs", desc)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := explain(ctx, f, query, `"a"`, `"b"`)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan) != 1 || !strings.Contains(plan[0], "USING INDEX") || !strings.Contains(plan[0], "_collector_id") {
			t.Errorf("range query (descending %v) does not use the _id index alone: %q", desc, plan)
		}
	}
}

// TestCanary writes the canary through the driver and reads it back as
// the store's layout check does.
func TestCanary(t *testing.T) {
	ctx := context.Background()
	s, db := startTest(t)
	c := NewCanary(time.Date(2024, 5, 1, 10, 0, 0, 123_456_789, time.UTC))
	insert(t, s, db, "layout", append(bson.D{{Key: "_id", Value: c.ID}}, c.Fields()...))
	found := 0
	err := s.Scan(ctx, testDB, "layout", c.ID, c.ID+"\x00", false, func(doc []byte) (bool, error) {
		found++
		return true, c.Verify(doc)
	})
	if err != nil || found != 1 {
		t.Fatalf("Scan of the canary = %d documents, %v; want 1, nil", found, err)
	}
	if later := NewCanary(c.At.Add(time.Second + time.Millisecond)); later.ID != c.ID || later.Text == c.Text || later.N == c.N {
		t.Errorf("a later canary %+v: want the same _id, other values than %+v", later, c)
	}
}

// TestCanaryVerify refuses the stored forms the reads would misread.
func TestCanaryVerify(t *testing.T) {
	c := NewCanary(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC))
	doc := func(at string, n any) string {
		id, _ := json.Marshal(c.ID)
		text, _ := json.Marshal(c.Text)
		return fmt.Sprintf(`{"_id":%s,"at":%s,"text":%s,"n":%v,"x":%v,"list":[{"text":%s,"n":%v}]}`, id, at, text, n, c.X, text, n)
	}
	ms := fmt.Sprint(c.At.UnixMilli())
	if err := c.Verify([]byte(doc(ms, c.N))); err != nil {
		t.Fatalf("Verify of the canary as stored: %v", err)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"date as a string", doc(`"2024-05-01T10:00:00Z"`, c.N), "canary date stored as"},
		{"date in seconds", doc(fmt.Sprint(c.At.Unix()), c.N), "canary date stored as"},
		{"integer as a double", doc(ms, float64(c.N)), "not the stored form"},
		{"integer rounded to a double", doc(ms, int64(float64(c.N))), "canary 64-bit integer"},
		{"schema left in", `{"$s":{},` + doc(ms, c.N)[1:], "unknown field"},
		{"not JSON", `{"_id":`, "not the stored form"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Verify([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify(%s) = %v; want an error with %q", tc.doc, err, tc.want)
			}
		})
	}
}

// TestScanRefusesOtherLayouts points Scan at SQLite files that FerretDB
// v1.24 did not write: without the collections table, and with documents
// that carry no schema.
func TestScanRefusesOtherLayouts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := &Server{dir: dir, files: map[string]*file{}} // no FerretDB: the file alone
	build := func(database string, stmts ...string) {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, database+".sqlite"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, stmt := range stmts {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	build("noregistry", `CREATE TABLE docs (_ferretdb_sjson TEXT)`)
	build("noschema",
		`CREATE TABLE _ferretdb_collections (name TEXT, table_name TEXT, settings TEXT)`,
		`INSERT INTO _ferretdb_collections VALUES ('docs', 'docs_1', '{}')`,
		`CREATE TABLE docs_1 (_ferretdb_sjson TEXT)`,
		`INSERT INTO docs_1 VALUES ('{"_id":"a|1","at":1}')`)
	for _, tc := range []struct{ database, want string }{
		{"noregistry", "find the table of docs in _ferretdb_collections"},
		{"noschema", `no leading "$s" schema`},
	} {
		err := s.Scan(ctx, tc.database, "docs", "a", "b", false, func([]byte) (bool, error) { return true, nil })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Scan of %s = %v; want an error with %q", tc.database, err, tc.want)
		}
	}
	if err := s.CheckIndex(ctx, "noschema", "docs"); err == nil || !strings.Contains(err.Error(), "does not use the index") {
		t.Errorf("CheckIndex without the index = %v", err)
	}
	for _, f := range s.files {
		f.db.Close()
	}
}

func TestWithoutSchema(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{"fields", `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"a":1}`, `{"a":1}`, ""},
		{"braces in strings", `{"$s":{"p":{"}{[\"":{"t":"string"}},"$k":["}{[\""]},"}{[\"":"}"}`, `{"}{[\"":"}"}`, ""},
		{"escaped backslash before quote", `{"$s":{"k":"a\\"},"a":"x"}`, `{"a":"x"}`, ""},
		{"no fields", `{"$s":{"p":{},"$k":[]}}`, `{}`, ""},
		{"no schema", `{"a":1}`, "", "no leading"},
		{"unterminated", `{"$s":{"p":{"a"`, "", "unterminated"},
		{"unbalanced", `{"$s":]`, "", "unbalanced"},
		{"nothing after", `{"$s":{}`, "", "no field after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := withoutSchema([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("withoutSchema(%s) = %s, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("withoutSchema(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestStartCreatesPrivateDir: the database directory is the collector's
// alone.
func TestStartCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	logger, _ := testutil.Logger(t)
	s, err := Start(context.Background(), dir, "127.0.0.1:0", logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !strings.HasPrefix(s.URI(), "mongodb://127.0.0.1:") {
		t.Errorf("URI = %q", s.URI())
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("database dir: %v, %v; want mode 700", fi, err)
	}
}
