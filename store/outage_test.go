package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store/embedded"
	"github.com/crawlerfleet/collector/store/spool"
)

// The tests here run the spool in front of a real Store whose database goes
// down and comes back, as the collector does.

// TestOutage writes while no database listens, restarts the collector with
// the spool still full, then brings a database up at the configured address:
// every result ends up stored exactly once, in order, and rollups count each
// once.
func TestOutage(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	ctx := context.Background()
	addr := freePort(t)
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	cfg := Config{URI: "mongodb://" + addr + "/", DataDir: dir, Timeout: time.Second}
	clock := clockwork.NewFakeClock() // never advanced: the retry time after an outage never passes
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	servers := []string{"web1", "web2", "web3"}
	round := func(i int) []monitor.Result {
		at := t0.Add(time.Duration(i) * time.Minute)
		var rs []monitor.Result
		for j, name := range servers {
			rs = append(rs, snapResult(name, at.Add(time.Duration(j)*time.Second), reading{cpu: float64(10 + i), mem: 50, disk: 60, load1: 1,
				procs: []monitor.KeywordCount{{Keyword: "python", Count: i}}}))
		}
		return append(rs, failResult("web4", at, monitor.KindUnreachable, "dial tcp: connection refused"))
	}
	var all []monitor.Result

	// The collector starts while the database is down.
	logger, logs := testutil.Logger(t)
	s1, err := Open(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("Open with the database down: %v", err)
	}
	if _, err := s1.Servers(ctx); !errors.Is(err, monitor.ErrUnavailable) || !strings.Contains(logs.String(), "database not answering") {
		t.Errorf("Servers = %v; Open's setup logged no warning about the unreachable database", err)
	}
	sp1, err := spool.Open(spoolDir, 0, s1, logger, spool.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := sp1.Write(ctx, round(i)); err != nil {
			t.Fatalf("Write while down: %v", err)
		}
		all = append(all, round(i)...)
	}
	if sp1.Bytes() == 0 {
		t.Fatal("nothing spooled")
	}
	if err := sp1.Close(); err != nil {
		t.Fatal(err)
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
	sp2, err := spool.Open(spoolDir, 0, s2, logger, spool.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer sp2.Close()
	if sp2.Bytes() == 0 {
		t.Fatal("the spool did not survive the restart")
	}
	if err := sp2.Write(ctx, round(2)); err != nil {
		t.Fatalf("Write while down after restart: %v", err)
	}
	all = append(all, round(2)...)

	// The database comes up where the store looks for it.
	db, err := embedded.Start(ctx, filepath.Join(t.TempDir(), "db"), addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Stop)

	// Still inside the back-off after the last failure: spooled, in order.
	if err := sp2.Write(ctx, round(3)); err != nil {
		t.Fatal(err)
	}
	all = append(all, round(3)...)
	if n := count(t, s2, snapshotsName, nil); n != 0 {
		t.Fatalf("%d snapshots stored inside the back-off, want them spooled", n)
	}
	if err := sp2.Replay(ctx); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if n := count(t, s2, snapshotsName, nil) + count(t, s2, attemptsName, nil); n != int64(len(all)) {
		t.Fatalf("%d results stored after the replay, want %d", n, len(all))
	}
	// Back to writing at once.
	if err := sp2.Write(ctx, round(4)); err != nil {
		t.Fatal(err)
	}
	all = append(all, round(4)...)
	drainCtx, cancel := context.WithTimeout(ctx, testutil.Patience)
	defer cancel()
	if err := sp2.Drain(drainCtx); err != nil {
		t.Fatal(err)
	}
	if sp2.Bytes() != 0 {
		t.Errorf("spool file holds %d bytes after the database came back; want it empty", sp2.Bytes())
	}
	if fi, err := os.Stat(filepath.Join(spoolDir, "results.jsonl")); err != nil || fi.Size() != 0 {
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
		r := normalized(t, r)
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
	rollups, err := s2.Rollups(ctx, monitor.RollupFilter{Period: monitor.Hour, From: t0, To: t0.Add(time.Hour)})
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
// writes spool, and once the retry time has passed, a write on the same
// files, restarted, replays them first and loses nothing.
func TestOutageStopServer(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	ctx := context.Background()
	dir := t.TempDir()
	s, logs := openTest(t, Config{DataDir: dir, Timeout: time.Second})
	clock := clockwork.NewFakeClock()
	sp := openSpool(t, s, spool.WithClock(clock))
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	series := func(from, to int) []monitor.Result {
		var rs []monitor.Result
		for m := from; m < to; m++ {
			rs = append(rs, snapResult("web1", t0.Add(time.Duration(m)*time.Minute), reading{cpu: float64(m)}))
		}
		return rs
	}
	if err := sp.Write(ctx, series(0, 10)); err != nil {
		t.Fatal(err)
	}

	addr := strings.TrimSuffix(strings.TrimPrefix(s.embedded.URI(), "mongodb://"), "/")
	s.embedded.Stop()
	if err := sp.Write(ctx, series(10, 20)); err != nil {
		t.Fatalf("Write with the server stopped: %v", err)
	}
	if sp.Bytes() == 0 {
		t.Fatal("nothing spooled with the server stopped")
	}
	testutil.Eventually(t, testutil.Patience, "the outage noticed", func() bool {
		return strings.Contains(logs.String(), "database unavailable; results are kept in the spool")
	})

	e, err := embedded.Start(ctx, filepath.Join(dir, "db"), addr, s.logger)
	if err != nil {
		t.Fatal(err)
	}
	s.embedded, s.direct = e, e // Close stops it
	if err := sp.Write(ctx, series(20, 30)); err != nil {
		t.Fatal(err)
	}
	// The spool tries again each retry time; the store answers at once
	// while it still knows the server down (until a heartbeat or a try
	// every GateRetry finds it back), so it may take more than one.
	testutil.Eventually(t, testutil.Patience, "the spool written once the server was back", func() bool {
		if sp.Bytes() == 0 {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if clock.BlockUntilContext(ctx, 1) == nil { // the spool waits for its retry time
			clock.Advance(spool.DefaultRetryAfter)
		}
		return false
	})
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
	rs, err := s.Rollups(ctx, monitor.RollupFilter{Period: monitor.Day, From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(rs) != 1 || rs[0].Count != 30 || rs[0].CPU.Peak.Value != 29 {
		t.Errorf("daily rollup = %+v, %v; want 30 snapshots, CPU peak 29", rs, err)
	}
}

// TestReplayBacklog comes back from an outage with a backlog of many
// chunks and more results behind it: all are written, in order, each once,
// and the rollups count each once.
func TestReplayBacklog(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	ctx := context.Background()
	addr := freePort(t)
	dir := t.TempDir()
	logger, _ := testutil.Logger(t)
	s, err := Open(ctx, Config{URI: "mongodb://" + addr + "/", DataDir: dir, Timeout: time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	sp := openSpool(t, s, spool.WithChunkSize(2), spool.WithClock(clockwork.NewFakeClock()))

	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	var all []monitor.Result
	for m := 0; m < 20; m++ {
		all = append(all, snapResult("web1", t0.Add(time.Duration(m)*time.Minute), reading{cpu: float64(m)}))
	}
	if err := sp.Write(ctx, all[:15]); err != nil {
		t.Fatal(err)
	}
	db, err := embedded.Start(ctx, filepath.Join(t.TempDir(), "db"), addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Stop)
	if err := sp.Write(ctx, all[15:]); err != nil {
		t.Fatal(err)
	}
	if err := sp.Replay(ctx); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	got, err := s.Snapshots(ctx, "web1", t0, t0.Add(time.Hour), 0)
	if err != nil || len(got) != len(all) {
		t.Fatalf("Snapshots = %d, %v; want %d", len(got), err, len(all))
	}
	rs, err := s.Rollups(ctx, monitor.RollupFilter{Period: monitor.Hour, From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(rs) != 1 || rs[0].Count != int64(len(all)) {
		t.Errorf("rollups = %+v, %v; want one counting %d", rs, err, len(all))
	}
}

// TestReplayPreviousRelease replays into the store a spool that the release
// before package spool wrote (spool/testdata/spool-v1.jsonl: two snapshots,
// one of a server whose name JSON escapes, and a failure of each kind):
// everything is stored as it was spooled.
func TestReplayPreviousRelease(t *testing.T) {
	ctx := context.Background()
	old, err := os.ReadFile(filepath.Join("spool", "testdata", "spool-v1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "spool"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spool", "results.jsonl"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := openTest(t, Config{DataDir: dir})
	if err := openSpool(t, s).Replay(ctx); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if n := count(t, s, snapshotsName, nil) + count(t, s, attemptsName, nil); n != 8 {
		t.Fatalf("%d results stored, want the 8 of the old spool", n)
	}

	t0 := mustTime(t, "2024-05-01T10:17:00Z")
	web1, err := s.Latest(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if !web1.At.Equal(t0.Add(123*time.Millisecond)) || web1.Duration != 812*time.Millisecond ||
		web1.Snapshot.CPU.Percent != 12.5 || !web1.Snapshot.Time.Equal(t0.Add(-700*time.Millisecond)) ||
		len(web1.Snapshot.Processes.Matched) != 2 || web1.Snapshot.Processes.Matched[1].Keyword != "scrapy.crawl $HOME" {
		t.Errorf("Latest(web1) = %+v, %+v", web1, web1.Snapshot)
	}
	quoted, err := s.Latest(ctx, `web "quoted" <&>`)
	if err != nil {
		t.Fatal(err)
	}
	if quoted.Snapshot.CPU.Error != "read /proc/stat: permission denied" || quoted.Snapshot.Hostname != "w2" {
		t.Errorf("Latest of the quoted server = %+v", quoted.Snapshot)
	}
	attempts, err := s.Attempts(ctx, "web3", t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != len(monitor.Kinds) {
		t.Fatalf("%d attempts of web3, want one of each kind", len(attempts))
	}
	for i, a := range attempts {
		k := monitor.Kinds[i]
		want := `failure of kind ` + string(k) + `: "quoted" <tag> & done`
		if a.Kind != k || a.Error() != want || a.Duration != 5*time.Second || !a.At.Equal(t0.Add(time.Duration(i+2)*time.Minute)) {
			t.Errorf("attempt %d = %+v (%q), want kind %s, %q", i, a, a.Error(), k, want)
		}
	}
}
