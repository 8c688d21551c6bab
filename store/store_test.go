package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

func TestWriteReadRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := mustTime(t, "2024-05-01T10:00:00Z")

	// Keywords with '.' and '$' must survive: they are values, never keys.
	procs := []KeywordCount{{"python3.11", 4}, {"$crawler", 2}, {"a.b$c", 1}}
	in := []Result{
		snapResult("web1", t0.Add(1*time.Minute+123456789*time.Nanosecond), reading{cpu: 12.5, mem: 40, disk: 55, load1: 0.7, procs: procs}),
		snapResult("web1", t0.Add(2*time.Minute), reading{cpu: 22.5, mem: 41, disk: 55, load1: 0.9, procs: procs[:1]}),
		snapResult("web1", t0.Add(3*time.Minute), reading{cpu: 32.5, mem: 42, disk: 56, load1: 1.1}),
		snapResult("db|1", t0.Add(1*time.Minute), reading{cpu: 5, mem: 10, disk: 20, load1: 0.1, procErr: true}),
		failResult("web2", t0.Add(1*time.Minute), KindUnreachable, "dial tcp 10.0.0.2:22: connect: connection refused"),
		failResult("web2", t0.Add(2*time.Minute), KindHostKey, "host key for web2 changed"),
	}
	in[0].Snapshot.Error = "hostname: not found"
	if err := s.Write(ctx, in); err != nil {
		t.Fatalf("Write: %v", err)
	}

	// want is what reading back must give: the snapshot exactly, the times
	// of the record in UTC to the millisecond.
	want := func(r Result) Record {
		return Record{
			Server:    r.Server,
			At:        r.At.UTC().Truncate(time.Millisecond),
			ProbeTime: r.Snapshot.Time.UTC().Truncate(time.Millisecond),
			Duration:  r.Duration.Truncate(time.Millisecond),
			Snapshot:  r.Snapshot,
		}
	}

	t.Run("Snapshots", func(t *testing.T) {
		got, err := s.Snapshots(ctx, "web1", t0, t0.Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		wantAll := []Record{want(in[0]), want(in[1]), want(in[2])}
		if !reflect.DeepEqual(got, wantAll) {
			t.Errorf("Snapshots:\n got %+v\nwant %+v", got, wantAll)
		}
		got, err = s.Snapshots(ctx, "web1", t0, t0.Add(time.Hour), 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !got[0].At.Equal(in[1].At) || !got[1].At.Equal(in[2].At) {
			t.Errorf("Snapshots limit 2: want the newest two, oldest first; got %v", got)
		}
		got, err = s.Snapshots(ctx, "web1", t0.Add(2*time.Minute), t0.Add(3*time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !got[0].At.Equal(in[1].At) {
			t.Errorf("Snapshots [10:02, 10:03): got %v", got)
		}
	})

	t.Run("Latest", func(t *testing.T) {
		for _, tc := range []struct {
			server string
			want   *Record
		}{
			{"web1", ptr(want(in[2]))},
			{"db|1", ptr(want(in[3]))},
			{"web2", nil},
			{"nosuch", nil},
		} {
			got, err := s.Latest(ctx, tc.server)
			if tc.want == nil {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("Latest(%s) = %v, %v; want ErrNotFound", tc.server, got, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("Latest(%s): %v", tc.server, err)
				continue
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Latest(%s):\n got %+v\nwant %+v", tc.server, got, tc.want)
			}
		}
	})

	t.Run("Attempts", func(t *testing.T) {
		got, err := s.Attempts(ctx, "web2", t0, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		wantA := []Attempt{
			{Server: "web2", At: in[4].At, Duration: in[4].Duration, Kind: KindUnreachable, Err: in[4].Err},
			{Server: "web2", At: in[5].At, Duration: in[5].Duration, Kind: KindHostKey, Err: in[5].Err},
		}
		if !reflect.DeepEqual(got, wantA) {
			t.Errorf("Attempts:\n got %+v\nwant %+v", got, wantA)
		}
		last, err := s.LastFailure(ctx, "web2")
		if err != nil {
			t.Fatal(err)
		}
		if w := (Attempt{Server: "web2", At: in[5].At, Duration: in[5].Duration, Kind: KindHostKey, Err: in[5].Err}); *last != w {
			t.Errorf("LastFailure(web2) = %+v, want the hostkey failure at %v", last, in[5].At)
		}
	})

	t.Run("Servers", func(t *testing.T) {
		got, err := s.Servers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w := []string{"db|1", "web1", "web2"}; !reflect.DeepEqual(got, w) {
			t.Errorf("Servers = %q, want %q", got, w)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestWriteInvalidResults(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	good := snapResult("web1", t0, reading{cpu: 1})
	both := snapResult("web1", t0.Add(time.Minute), reading{cpu: 1})
	both.ErrKind, both.Err = KindProbe, "exit 1"

	for _, tc := range []struct {
		name    string
		result  Result
		wantErr string
	}{
		{"no server", Result{At: t0, ErrKind: KindAuth}, "no server name"},
		{"no time", Result{Server: "web1", ErrKind: KindAuth}, "no time"},
		{"snapshot and error", both, "both a snapshot and an error"},
		{"unknown kind", Result{Server: "web1", At: t0, ErrKind: "oops"}, `error kind "oops"`},
		{"nothing", Result{Server: "web1", At: t0}, `error kind ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Write(ctx, []Result{tc.result, good})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Write error = %v, want one containing %q", err, tc.wantErr)
			}
			if n := count(t, s, snapshotsName, nil); n != 1 {
				t.Errorf("snapshots stored = %d, want the 1 valid one", n)
			}
		})
	}
}

func TestIsOutage(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"cancelled", fmt.Errorf("insert: %w", context.Canceled), true},
		{"deadline", context.DeadlineExceeded, true},
		{"client disconnected", mongo.ErrClientDisconnected, true},
		{"shutting down", mongo.CommandError{Code: 91, Message: "shutdown in progress"}, true},
		{"not primary", mongo.CommandError{Code: 10107, Message: "not primary"}, true},
		{"retryable label", mongo.CommandError{Code: 1, Labels: []string{"RetryableWriteError"}}, true},
		{"network label", mongo.CommandError{Code: 1, Labels: []string{"NetworkError"}}, true},
		{"bad value", mongo.CommandError{Code: 2, Message: "bad value"}, false},
		{"not implemented", mongo.CommandError{Code: 238, Message: "not implemented"}, false},
		{"document invalid", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 121}}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isOutage(tc.err); got != tc.want {
				t.Errorf("isOutage(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestEmbeddedIndexByID checks that the index added to FerretDB's tables
// serves the lookup FerretDB v1.24 runs for a filter on _id alone; without
// it SQLite reads the whole table for every findOne, update and upsert.
func TestEmbeddedIndexByID(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, Config{DataDir: dir})
	if err := s.Write(context.Background(), []Result{snapResult("web1", mustTime(t, "2024-05-01T10:00:00Z"), reading{cpu: 1})}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collection(context.Background(), "alerts"); err != nil {
		t.Fatalf("Collection: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "db", DefaultDatabase+".sqlite")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, coll := range []string{snapshotsName, attemptsName, rollupsName, serversName, "alerts"} {
		var table string
		if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table); err != nil {
			t.Fatalf("table of %s: %v", coll, err)
		}
		// The statement FerretDB's sqlite backend builds in collection.Query.
		q := fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table)
		var id, parent, notused int
		var detail string
		if err := db.QueryRow(q, `"x"`).Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatalf("plan for %s: %v", coll, err)
		}
		if !strings.Contains(detail, "USING INDEX") {
			t.Errorf("lookup by _id in %s: plan %q, want an index search", coll, detail)
		}
	}
}

func TestOpenCreatesPrivateDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	openTest(t, Config{DataDir: dir})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode %o, want 700", perm)
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{EnvURI: "mongodb://db.example:27017"}
	got := Config{URI: "mongodb://file.example"}.ApplyEnv(func(k string) string { return env[k] })
	if got.URI != env[EnvURI] {
		t.Errorf("URI = %q, want the environment's %q", got.URI, env[EnvURI])
	}
	got = Config{URI: "mongodb://file.example"}.ApplyEnv(func(string) string { return "" })
	if got.URI != "mongodb://file.example" {
		t.Errorf("URI = %q, want the file's when the variable is unset", got.URI)
	}
}

// TestKinds: Kinds is what Valid accepts, and the message for a bad kind
// lists them.
func TestKinds(t *testing.T) {
	want := []ErrKind{KindUnreachable, KindAuth, KindHostKey, KindTimeout, KindProbe, KindConfig}
	if !slices.Equal(Kinds, want) {
		t.Errorf("Kinds = %q, want %q", Kinds, want)
	}
	for _, k := range Kinds {
		if !k.Valid() {
			t.Errorf("%q not valid", k)
		}
	}
	for _, k := range []ErrKind{"", "oops", "Auth", "auth "} {
		if k.Valid() {
			t.Errorf("%q valid", k)
		}
	}
	_, err := Result{Server: "web1", At: time.Unix(1, 0), ErrKind: "oops"}.normalize()
	if err == nil || !strings.Contains(err.Error(), `error kind "oops" (want unreachable, auth, hostkey, timeout, probe or config)`) {
		t.Errorf("normalize error = %v", err)
	}
}

// TestBulkWriteChunks sends more models than one command may carry: every
// chunk is sent; a refusal goes to onRefused, with its index in its chunk,
// and the next chunks still go; without onRefused it ends the write.
func TestBulkWriteChunks(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	coll, err := s.Collection(ctx, "bulk_test")
	if err != nil {
		t.Fatal(err)
	}
	models := func(prefix string, n int, dup int) []mongo.WriteModel {
		var ms []mongo.WriteModel
		for i := range n {
			id := fmt.Sprintf("%s%03d", prefix, i)
			if i == dup {
				id = prefix + "000" // refused: a duplicate of the first
			}
			ms = append(ms, mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: id}}))
		}
		return ms
	}

	n := 2*maxStatements + 3
	if err := bulkWrite(ctx, coll, models("a", n, -1), nil); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, "bulk_test", nil); got != int64(n) {
		t.Fatalf("%d stored, want %d", got, n)
	}

	// A refusal in the second chunk: reported there, the third chunk goes.
	var refusedIn []int
	var chunks [][]mongo.WriteModel
	err = bulkWrite(ctx, coll, models("b", n, maxStatements+5), func(chunk []mongo.WriteModel, refused []mongo.BulkWriteError) error {
		chunks = append(chunks, chunk)
		for _, we := range refused {
			refusedIn = append(refusedIn, we.Index)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("bulkWrite with onRefused: %v", err)
	}
	if len(chunks) != 1 || len(chunks[0]) != maxStatements || !slices.Equal(refusedIn, []int{5}) {
		t.Errorf("onRefused got %d chunks, refusals at %v; want 1 chunk of %d, refusal at [5]", len(chunks), refusedIn, maxStatements)
	}
	if got := count(t, s, "bulk_test", bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: "b"}}}}); got != int64(n-1) {
		t.Errorf("%d stored, want %d (all but the duplicate)", got, n-1)
	}

	// Without onRefused the refusal is the error, and the chunks after it
	// are not sent.
	err = bulkWrite(ctx, coll, models("c", n, 1), nil)
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) {
		t.Fatalf("bulkWrite without onRefused = %v, want the BulkWriteException", err)
	}
	if got := count(t, s, "bulk_test", bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: "c"}}}}); got != maxStatements-1 {
		t.Errorf("%d stored, want %d (the first chunk but the duplicate)", got, maxStatements-1)
	}
}

// TestFerretFlagConcurrentSetup reads while a write's setup finds out, for
// a store opened while its database was down, that the database is
// FerretDB. Run with -race: the flag is shared without setupMu on reads.
func TestFerretFlagConcurrentSetup(t *testing.T) {
	t.Parallel() // mostly waiting for a timeout
	ctx := context.Background()
	addr := freePort(t)
	cfg := Config{URI: "mongodb://" + addr + "/", DataDir: t.TempDir(), Timeout: time.Second}
	logger, _ := testLogger(t)
	s, err := Open(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("Open with the database down: %v", err)
	}
	defer s.Close(ctx)
	if s.ferret.Load() {
		t.Fatal("ferret set before the database answered")
	}
	db, err := startEmbedded(ctx, filepath.Join(t.TempDir(), "db"), addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.stop)

	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	done := make(chan error, 1)
	go func() {
		var err error
		for range 20 {
			if _, err = s.Rollups(ctx, RollupQuery{Servers: []string{"web1"}, Period: Hour, From: t0, To: t0.Add(time.Hour)}); err != nil {
				break
			}
		}
		done <- err
	}()
	if err := s.Write(ctx, []Result{snapResult("web1", t0, reading{cpu: 5})}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Rollups during setup: %v", err)
	}
	if !s.ferret.Load() {
		t.Error("FerretDB behind a URI not recognised")
	}
	rs, err := s.Rollups(ctx, RollupQuery{Servers: []string{"web1"}, Period: Hour, From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(rs) != 1 || rs[0].Count != 1 {
		t.Errorf("Rollups after the write = %v, %v; want one rollup of one snapshot", rs, err)
	}
}
