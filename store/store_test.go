package store

import (
	"context"
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

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store/embedded"
	"github.com/crawlerfleet/collector/store/spool"
)

func TestWriteReadRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	t0 := mustTime(t, "2024-05-01T10:00:00Z")

	// Keywords with '.' and '$' must survive: they are values, never keys.
	procs := []monitor.KeywordCount{{Keyword: "python3.11", Count: 4}, {Keyword: "$crawler", Count: 2}, {Keyword: "a.b$c", Count: 1}}
	in := []monitor.Result{
		snapResult("web1", t0.Add(1*time.Minute+123456789*time.Nanosecond), reading{cpu: 12.5, mem: 40, disk: 55, load1: 0.7, procs: procs}),
		snapResult("web1", t0.Add(2*time.Minute), reading{cpu: 22.5, mem: 41, disk: 55, load1: 0.9, procs: procs[:1]}),
		snapResult("web1", t0.Add(3*time.Minute), reading{cpu: 32.5, mem: 42, disk: 56, load1: 1.1}),
		snapResult("db|1", t0.Add(1*time.Minute), reading{cpu: 5, mem: 10, disk: 20, load1: 0.1, procErr: true}),
		failResult("web2", t0.Add(1*time.Minute), monitor.KindUnreachable, "dial tcp 10.0.0.2:22: connect: connection refused"),
		failResult("web2", t0.Add(2*time.Minute), monitor.KindHostKey, "host key for web2 changed"),
	}
	in[0].Snapshot.Error = "hostname: not found"
	in[0].Platform, in[0].Dialed = "linux/amd64", true // not stored
	writeAll(t, s, in)

	// want is what reading back must give: the snapshot exactly, the time
	// and duration in UTC to the millisecond, nothing the store does not
	// keep.
	want := func(r monitor.Result) monitor.Result {
		return monitor.Result{
			Server:   r.Server,
			At:       r.At.UTC().Truncate(time.Millisecond),
			Duration: r.Duration.Truncate(time.Millisecond),
			Snapshot: r.Snapshot,
		}
	}

	t.Run("Snapshots", func(t *testing.T) {
		got, err := s.Snapshots(ctx, "web1", t0, t0.Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		wantAll := []monitor.Result{want(in[0]), want(in[1]), want(in[2])}
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

	t.Run("probe time stored", func(t *testing.T) {
		// The documents keep the probe's clock next to the collector's, to
		// the millisecond (the snapshot keeps it exactly).
		var d snapshotDoc
		if err := findOne(ctx, s.snapshots, resultID("web1", in[0].At), &d); err != nil {
			t.Fatal(err)
		}
		if w := in[0].Snapshot.Time.UTC().Truncate(time.Millisecond); !d.ProbeTime.utc().Equal(w) {
			t.Errorf("probe_time = %v, want %v", d.ProbeTime.utc(), w)
		}
	})

	t.Run("Latest", func(t *testing.T) {
		for _, tc := range []struct {
			server string
			want   *monitor.Result
		}{
			{"web1", ptr(want(in[2]))},
			{"db|1", ptr(want(in[3]))},
			{"web2", nil},
			{"nosuch", nil},
		} {
			got, err := s.Latest(ctx, tc.server)
			if tc.want == nil {
				if !errors.Is(err, monitor.ErrNotFound) || errors.Is(err, monitor.ErrUnavailable) {
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
		wantA := []monitor.Result{
			{Server: "web2", At: in[4].At, Duration: in[4].Duration, Kind: monitor.KindUnreachable, Err: errors.New(in[4].Error())},
			{Server: "web2", At: in[5].At, Duration: in[5].Duration, Kind: monitor.KindHostKey, Err: errors.New(in[5].Error())},
		}
		if !reflect.DeepEqual(got, wantA) {
			t.Errorf("Attempts:\n got %+v\nwant %+v", got, wantA)
		}
		last, err := s.LastFailure(ctx, "web2")
		if err != nil {
			t.Fatal(err)
		}
		if w := wantA[1]; !reflect.DeepEqual(*last, w) {
			t.Errorf("LastFailure(web2) = %+v, want the hostkey failure at %v", last, in[5].At)
		}
		if _, err := s.LastFailure(ctx, "web1"); !errors.Is(err, monitor.ErrNotFound) {
			t.Errorf("LastFailure(web1) error = %v, want ErrNotFound", err)
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
	both.Kind, both.Err = monitor.KindProbe, errors.New("exit 1")

	for _, tc := range []struct {
		name    string
		result  monitor.Result
		wantErr string
	}{
		{"no server", monitor.Result{At: t0, Kind: monitor.KindAuth}, "no server name"},
		{"no time", monitor.Result{Server: "web1", Kind: monitor.KindAuth}, "no time"},
		{"snapshot and error", both, "both a snapshot and an error"},
		{"unknown kind", monitor.Result{Server: "web1", At: t0, Kind: "oops"}, `error kind "oops"`},
		{"nothing", monitor.Result{Server: "web1", At: t0}, `error kind ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused, err := s.WriteResults(ctx, []monitor.Result{tc.result, good})
			if err != nil {
				t.Fatalf("WriteResults: %v", err)
			}
			if len(refused) != 2 || refused[0] == nil || !strings.Contains(refused[0].Error(), tc.wantErr) || refused[1] != nil {
				t.Errorf("refused = %v, want [error containing %q, nil]", refused, tc.wantErr)
			}
			if n := count(t, s, snapshotsName, nil); n != 1 {
				t.Errorf("snapshots stored = %d, want the 1 valid one", n)
			}
		})
	}
	if refused, err := s.WriteResults(ctx, []monitor.Result{good}); err != nil || refused != nil {
		t.Errorf("WriteResults of a stored result = %v, %v; want nil, nil", refused, err)
	}
}

// TestStoredKinds: the kinds of failure the attempts documents hold (see
// the package doc) are monitor.Kinds, and a result of another kind is
// refused with a message that lists them.
func TestStoredKinds(t *testing.T) {
	want := []monitor.Kind{monitor.KindUnreachable, monitor.KindAuth, monitor.KindHostKey, monitor.KindTimeout, monitor.KindProbe, monitor.KindConfig}
	if !slices.Equal(monitor.Kinds, want) {
		t.Errorf("Kinds = %q, want %q", monitor.Kinds, want)
	}
	for _, k := range monitor.Kinds {
		if !k.Valid() {
			t.Errorf("%q not valid", k)
		}
	}
	for _, k := range []monitor.Kind{"", "oops", "Auth", "auth ", "error"} {
		if k.Valid() {
			t.Errorf("%q valid", k)
		}
	}
	s, _ := openTest(t, Config{})
	refused, err := s.WriteResults(context.Background(), []monitor.Result{{Server: "web1", At: time.Unix(1, 0), Kind: "oops"}})
	if err != nil || len(refused) != 1 || refused[0] == nil ||
		!strings.Contains(refused[0].Error(), `error kind "oops" (want unreachable, auth, hostkey, timeout, probe or config)`) {
		t.Errorf("WriteResults of kind oops = %v, %v", refused, err)
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
			err := markOutage(tc.err)
			if got := errors.Is(err, monitor.ErrUnavailable); got != tc.want {
				t.Errorf("markOutage(%v) = %v: wraps ErrUnavailable %v, want %v", tc.err, err, got, tc.want)
			}
			if !strings.Contains(err.Error(), tc.err.Error()) {
				t.Errorf("markOutage(%v) = %v: lost the error", tc.err, err)
			}
		})
	}
	if err := markOutage(mongo.ErrNoDocuments); err != mongo.ErrNoDocuments {
		t.Errorf("markOutage(ErrNoDocuments) = %v, want it unchanged", err)
	}
}

// TestDatabaseDown: every operation on a database that does not answer
// fails with an error wrapping monitor.ErrUnavailable, and no read says
// ErrNotFound.
func TestDatabaseDown(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	ctx := context.Background()
	logger, logs := testutil.Logger(t)
	s, err := Open(ctx, Config{URI: "mongodb://" + freePort(t) + "/", DataDir: t.TempDir(), Timeout: 200 * time.Millisecond}, logger)
	if err != nil {
		t.Fatalf("Open with the database down: %v", err)
	}
	defer s.Close(ctx)
	if _, err := s.Servers(ctx); !errors.Is(err, monitor.ErrUnavailable) || !strings.Contains(logs.String(), "database not answering") {
		t.Errorf("Servers = %v; Open's setup logged no warning about the unreachable database", err)
	}
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"WriteResults", func() error {
			_, err := s.WriteResults(ctx, []monitor.Result{snapResult("web1", t0, reading{})})
			return err
		}},
		{"Ping", func() error { return s.Ping(ctx) }},
		{"Latest", func() error { _, err := s.Latest(ctx, "web1"); return err }},
		{"LastFailure", func() error { _, err := s.LastFailure(ctx, "web1"); return err }},
		{"Snapshots", func() error { _, err := s.Snapshots(ctx, "web1", t0, t0.Add(time.Hour), 0); return err }},
		{"Attempts", func() error { _, err := s.Attempts(ctx, "web1", t0, t0.Add(time.Hour)); return err }},
		{"Servers", func() error { _, err := s.Servers(ctx); return err }},
		{"Rollups", func() error {
			_, err := s.Rollups(ctx, monitor.RollupFilter{From: t0, To: t0.Add(time.Hour)})
			return err
		}},
		{"Prune", func() error { return s.Prune(ctx, t0) }},
		{"LoadStates", func() error { _, err := s.LoadStates(ctx, nil); return err }},
		{"SaveStates", func() error {
			return s.SaveStates(ctx, []monitor.AlertState{{Server: "web1", Rule: "down", Status: monitor.AlertFiring}})
		}},
		{"Silences", func() error { _, err := s.Silences(ctx, t0); return err }},
		{"OutboxDue", func() error { _, err := s.OutboxDue(ctx, t0, 0); return err }},
		{"OutboxPending", func() error { _, err := s.OutboxPending(ctx); return err }},
	} {
		err := op.run()
		if !errors.Is(err, monitor.ErrUnavailable) || errors.Is(err, monitor.ErrNotFound) {
			t.Errorf("%s with the database down: %v; want an error wrapping ErrUnavailable", op.name, err)
		}
		// Known to be down: the store answers at once, without asking the
		// database again within GateRetry (a round waits on it once, not
		// once an operation).
		if op.name != "Ping" && !strings.Contains(fmt.Sprint(err), "asked again every 5s") {
			t.Errorf("%s with the database known to be down: %v; want the gate's answer", op.name, err)
		}
	}
}

// TestEmbeddedIndexByID checks that every collection of the embedded store,
// those Open makes and those made on first use, has the index that serves
// FerretDB's lookup by _id and the direct range reads; without it SQLite
// reads the whole table for every findOne, update and upsert.
func TestEmbeddedIndexByID(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	writeAll(t, s, []monitor.Result{snapResult("web1", mustTime(t, "2024-05-01T10:00:00Z"), reading{cpu: 1})})
	if _, err := s.LoadStates(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Silences(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OutboxPending(ctx); err != nil {
		t.Fatal(err)
	}
	for _, coll := range []string{snapshotsName, attemptsName, rollupsName, serversName, alertStateName, silencesName, outboxName, layoutName} {
		if err := s.embedded.CheckIndex(ctx, s.cfg.Database, coll); err != nil {
			t.Errorf("%s: %v", coll, err)
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

// TestBulkWriteChunks sends more models than one command may carry: every
// chunk is sent; a refusal goes to onRefused, with its index in its chunk,
// and the next chunks still go; without onRefused it ends the write.
func TestBulkWriteChunks(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Config{})
	coll, err := s.collection(ctx, "bulk_test")
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
	logger, _ := testutil.Logger(t)
	s, err := Open(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("Open with the database down: %v", err)
	}
	defer s.Close(ctx)
	if s.ferret.Load() {
		t.Fatal("ferret set before the database answered")
	}
	db, err := embedded.Start(ctx, filepath.Join(t.TempDir(), "db"), addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Stop)

	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	q := monitor.RollupFilter{Servers: []string{"web1"}, Period: monitor.Hour, From: t0, To: t0.Add(time.Hour)}
	done := make(chan error, 1)
	go func() {
		var err error
		for range 20 {
			if _, err = s.Rollups(ctx, q); err != nil {
				break
			}
		}
		done <- err
	}()
	writeAll(t, s, []monitor.Result{snapResult("web1", t0, reading{cpu: 5})})
	if err := <-done; err != nil {
		t.Errorf("Rollups during setup: %v", err)
	}
	if !s.ferret.Load() {
		t.Error("FerretDB behind a URI not recognised")
	}
	rs, err := s.Rollups(ctx, q)
	if err != nil || len(rs) != 1 || rs[0].Count != 1 {
		t.Errorf("Rollups after the write = %v, %v; want one rollup of one snapshot", rs, err)
	}
}

// A Store is the writer behind the spool.
var _ spool.Writer = (*Store)(nil)

func TestDataDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s, _ := openTest(t, Config{DataDir: "data"})
	if want := filepath.Join(dir, "data"); s.DataDir() != want {
		t.Errorf("DataDir() = %q, want %q", s.DataDir(), want)
	}
}
