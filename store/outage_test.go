package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// TestOutage writes while no database listens, restarts the collector with
// the spool still full, then brings a database up at the configured address:
// every result ends up stored exactly once, in order, and rollups count each
// once.
func TestOutage(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	ctx := context.Background()
	addr := freePort(t)
	dir := t.TempDir()
	cfg := Config{URI: "mongodb://" + addr + "/", DataDir: dir, Timeout: time.Second}
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	servers := []string{"web1", "web2", "web3"}
	round := func(i int) []Result {
		at := t0.Add(time.Duration(i) * time.Minute)
		var rs []Result
		for j, name := range servers {
			rs = append(rs, snapResult(name, at.Add(time.Duration(j)*time.Second), reading{cpu: float64(10 + i), mem: 50, disk: 60, load1: 1,
				procs: []KeywordCount{{"python", i}}}))
		}
		return append(rs, failResult("web4", at, KindUnreachable, "dial tcp: connection refused"))
	}
	var all []Result

	// The collector starts while the database is down.
	logger, logs := testLogger(t)
	s1, err := Open(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("Open with the database down: %v", err)
	}
	if !strings.Contains(logs.String(), "database unreachable") {
		t.Errorf("Open logged no warning about the unreachable database")
	}
	for i := 0; i < 2; i++ {
		if err := s1.Write(ctx, round(i)); err != nil {
			t.Fatalf("Write while down: %v", err)
		}
		all = append(all, round(i)...)
	}
	if !s1.spool.pending() {
		t.Fatal("nothing spooled")
	}
	if err := s1.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// The collector restarts; the database is still down.
	s2, err := Open(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close(ctx) // before the database stops, or FerretDB waits 3 s for the connections
	if !s2.spool.pending() {
		t.Fatal("the spool did not survive the restart")
	}
	if err := s2.Write(ctx, round(2)); err != nil {
		t.Fatalf("Write while down after restart: %v", err)
	}
	all = append(all, round(2)...)

	// The database comes up where the store looks for it.
	db, err := startEmbedded(ctx, filepath.Join(t.TempDir(), "db"), addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.stop)

	// Still inside the back-off after the last failure: spooled, in order.
	if err := s2.Write(ctx, round(3)); err != nil {
		t.Fatal(err)
	}
	all = append(all, round(3)...)
	n, err := s2.Replay(ctx)
	if err != nil || n != len(all) {
		t.Fatalf("Replay = %d, %v; want %d, nil", n, err, len(all))
	}
	// Back to direct writes.
	if err := s2.Write(ctx, round(4)); err != nil {
		t.Fatal(err)
	}
	all = append(all, round(4)...)
	if s2.spool.pending() {
		t.Error("spool pending after the database came back")
	}
	if fi, err := os.Stat(s2.spool.path); err != nil || fi.Size() != 0 {
		t.Errorf("spool file after replay: %v, %v; want it empty", fi, err)
	}

	// Every result exactly once.
	var snaps, fails int64
	for _, r := range all {
		coll := snapshotsName
		if r.Snapshot == nil {
			coll = attemptsName
			fails++
		} else {
			snaps++
		}
		r, _ := r.normalize()
		if n := count(t, s2, coll, bson.D{{Key: "_id", Value: resultID(r.Server, r.At)}}); n != 1 {
			t.Errorf("%s at %s stored %d times", r.Server, r.At.Format(time.TimeOnly), n)
		}
	}
	if n := count(t, s2, snapshotsName, nil); n != snaps {
		t.Errorf("%d snapshots stored, want %d", n, snaps)
	}
	if n := count(t, s2, attemptsName, nil); n != fails {
		t.Errorf("%d attempts stored, want %d", n, fails)
	}
	rollups, err := s2.Rollups(ctx, RollupQuery{Period: Hour, From: t0, To: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var counted, failed int64
	for _, r := range rollups {
		counted += r.Count
		failed += r.Failed
		if r.Server == "web1" && (r.Matched.Max != 4 || r.CPU.Peak.Value != 14) {
			t.Errorf("web1 rollup: matched max %d, cpu peak %v; want round 4's 4 and 14", r.Matched.Max, r.CPU.Peak.Value)
		}
	}
	if counted != snaps || failed != fails {
		t.Errorf("rollups count %d snapshots and %d failures, want %d and %d", counted, failed, snaps, fails)
	}
	latest, err := s2.Latest(ctx, "web3")
	if err != nil || !latest.At.Equal(t0.Add(4*time.Minute+2*time.Second)) {
		t.Errorf("Latest(web3) = %v, %v; want round 4", latest, err)
	}
	if !s2.ferret.Load() {
		t.Error("FerretDB behind a URI not recognised")
	}
}

// TestOutageStopServer stops the embedded server under a running store:
// writes spool, and replay after a restart on the same files loses nothing.
func TestOutageStopServer(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	ctx := context.Background()
	dir := t.TempDir()
	s, logs := openTest(t, Config{DataDir: dir, Timeout: time.Second})
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	series := func(from, to int) []Result {
		var rs []Result
		for m := from; m < to; m++ {
			rs = append(rs, snapResult("web1", t0.Add(time.Duration(m)*time.Minute), reading{cpu: float64(m)}))
		}
		return rs
	}
	if err := s.Write(ctx, series(0, 10)); err != nil {
		t.Fatal(err)
	}

	addr := strings.TrimSuffix(strings.TrimPrefix(s.embedded.uri, "mongodb://"), "/")
	s.embedded.stop()
	if err := s.Write(ctx, series(10, 20)); err != nil {
		t.Fatalf("Write with the server stopped: %v", err)
	}
	if !s.spool.pending() {
		t.Fatal("nothing spooled with the server stopped")
	}
	if !strings.Contains(logs.String(), "database unavailable; spooling results") {
		t.Error("no warning that results are being spooled")
	}

	e, err := startEmbedded(ctx, filepath.Join(dir, "db"), addr, s.logger)
	if err != nil {
		t.Fatal(err)
	}
	s.embedded = e // Close stops it
	s.retryAfter = 0
	s.retryAt = time.Time{}
	if err := s.Write(ctx, series(20, 30)); err != nil {
		t.Fatal(err)
	}
	if s.spool.pending() {
		t.Fatal("Write did not replay the spool once the server was back")
	}
	got, err := s.Snapshots(ctx, "web1", t0, t0.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 {
		t.Errorf("%d snapshots, want 30", len(got))
	}
	for i, r := range got {
		if !r.At.Equal(t0.Add(time.Duration(i) * time.Minute)) {
			t.Errorf("snapshot %d at %s", i, r.At.Format(time.TimeOnly))
		}
	}
	rs, err := s.Rollups(ctx, RollupQuery{Period: Day, From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(rs) != 1 || rs[0].Count != 30 || rs[0].CPU.Peak.Value != 29 {
		t.Errorf("daily rollup = %+v, %v; want 30 snapshots, CPU peak 29", rs, err)
	}
}

// TestReplayBacklog comes back from an outage with a backlog longer than
// Write replays at once: Write replays part and spools its own results
// behind the rest, so order holds; Replay finishes.
func TestReplayBacklog(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	ctx := context.Background()
	addr := freePort(t)
	dir := t.TempDir()
	logger, _ := testLogger(t)
	// Long enough for the driver to notice the database is back (it checks
	// at most every 500 ms).
	s, err := Open(ctx, Config{URI: "mongodb://" + addr + "/", DataDir: dir, Timeout: time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	s.chunkSize = 2 // Write replays writeReplayChunks*2 results at most
	s.retryAfter = 0

	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	var all []Result
	for m := 0; m < 20; m++ {
		all = append(all, snapResult("web1", t0.Add(time.Duration(m)*time.Minute), reading{cpu: float64(m)}))
	}
	if err := s.Write(ctx, all[:15]); err != nil {
		t.Fatal(err)
	}
	db, err := startEmbedded(ctx, filepath.Join(t.TempDir(), "db"), addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.stop)

	if err := s.Write(ctx, all[15:]); err != nil {
		t.Fatal(err)
	}
	replayed := int(count(t, s, snapshotsName, nil))
	if want := writeReplayChunks * 2; replayed != want {
		t.Errorf("Write replayed %d results, want %d", replayed, want)
	}
	if !s.spool.pending() {
		t.Fatal("Write's own results did not wait behind the backlog")
	}
	n, err := s.Replay(ctx)
	if err != nil || n != len(all)-replayed {
		t.Fatalf("Replay = %d, %v; want %d, nil", n, err, len(all)-replayed)
	}
	got, err := s.Snapshots(ctx, "web1", t0, t0.Add(time.Hour), 0)
	if err != nil || len(got) != len(all) {
		t.Fatalf("Snapshots = %d, %v; want %d", len(got), err, len(all))
	}
	rs, err := s.Rollups(ctx, RollupQuery{Period: Hour, From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(rs) != 1 || rs[0].Count != int64(len(all)) {
		t.Errorf("rollups = %+v, %v; want one counting %d", rs, err, len(all))
	}
}
