package scale

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/crawlerfleet/collector/collector/alerting"
	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/collector/round"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store"
	"github.com/crawlerfleet/collector/store/embedded"
	"github.com/crawlerfleet/collector/store/spool"
)

// The children this test binary runs as: the fake SSH server and FerretDB.
const (
	fakeEnv   = "SCALE_FAKE_SSHD"
	ferretEnv = "SCALE_FERRETDB" // "dir": serve FerretDB, its files in dir, on a port it prints
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(fakeEnv); spec != "" {
		os.Exit(fakeMain(spec))
	}
	if dir := os.Getenv(ferretEnv); dir != "" {
		os.Exit(ferretMain(dir))
	}
	os.Exit(m.Run())
}

func ferretMain(dir string) int {
	srv, err := embedded.Start(context.Background(), dir, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		return 1
	}
	fmt.Println(srv.URI())
	select {}
}

// The targets: a fleet of fleetSize at one round a minute on at most one
// core and 2 GiB; a warm round of 1,000 servers within the sample window
// and a second.
const (
	fleetSize   = 10_000
	roundEvery  = time.Minute
	maxCores    = 1.0
	maxRSS      = 2 << 30
	sample      = time.Second
	concurrency = 1024 // [schedule] concurrency: the servers probed at once
)

// child starts this test binary as a child with env set, and returns the
// first line it prints.
func child(tb testing.TB, name, env string) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return strings.TrimSpace(line)
}

// world is a member ready to probe n servers of a fake fleet.
type world struct {
	servers []inventory.Server
	runner  *round.Runner
	fleet   *fleet.Fleet
	spool   *spool.Spool
	db      *store.Store
}

// A sink is where the spool writes the results: the database, or nowhere.
type sink int

const (
	// toDatabase: the spool writes to FerretDB, as `collector run` does.
	toDatabase sink = iota
	// toNowhere: the spool reads the results back and parses them as it
	// does for the database, then drops them. FerretDB on SQLite takes
	// about 45 ms per result here (upserts of the rollups included), far
	// from 10,000 a minute, and would take this machine's CPUs from the
	// member; the member's share of writing (the database client) is
	// measured apart, on a sample (see BenchmarkMember10k).
	toNowhere
)

// setUp starts the fake SSH server and FerretDB, records a snapshot with
// the real probe, and wires a member over n servers as `collector run`
// does: fleet, round, spool (writing to out), store and alerting.
func setUp(tb testing.TB, n int, out sink) *world {
	tb.Helper()
	dir := tb.TempDir()
	// The real probe, built as the release builds are, records the
	// snapshot the fake fleet answers with.
	probe := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", probe, "github.com/crawlerfleet/collector/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build the probe: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(probe)
	if err != nil {
		tb.Fatal(err)
	}
	pb := probebin.NewBuild("linux", runtime.GOARCH, bin)
	probes := probebin.Set{pb.Platform(): pb}
	rec, err := exec.Command(probe, append([]string{"-sample", "0s", "--"}, inventory.DefaultKeywords()...)...).Output()
	if err != nil {
		tb.Fatalf("record a snapshot: %v", err)
	}
	uname, err := exec.Command("uname", "-sm").Output()
	if err != nil {
		tb.Fatal(err)
	}

	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	clientPub, clientKey, _ := ed25519.GenerateKey(rand.Reader)
	clientSSH, _ := ssh.NewPublicKey(clientPub)
	hostSigner, _ := ssh.NewSignerFromKey(hostKey)
	spec, _ := json.Marshal(fakeSpec{HostKey: hostKey.Seed(), ClientKey: clientSSH.Marshal(), Snapshot: rec,
		Uname: strings.TrimSpace(string(uname))})
	addr := child(tb, "fake sshd", fakeEnv+"="+string(spec))
	uri := child(tb, "ferretdb", ferretEnv+"="+filepath.Join(dir, "db"))

	keyFile := filepath.Join(dir, "id_ed25519")
	block, err := ssh.MarshalPrivateKey(clientKey, "")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		tb.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := remote.AddKnownHost(knownHosts, addr, hostSigner.PublicKey()); err != nil {
		tb.Fatal(err)
	}

	var text strings.Builder
	fmt.Fprintf(&text, "[defaults]\nssh_config = \"\"\nuser = \"bench\"\nidentity_file = %q\nknown_hosts = %q\nsample = %q\ntimeout = \"30s\"\nconnect_timeout = \"20s\"\n",
		keyFile, knownHosts, sample)
	fmt.Fprintf(&text, "[schedule]\nconcurrency = %d\nsplay = \"0s\"\n", concurrency)
	for i := range n {
		fmt.Fprintf(&text, "[[server]]\nname = \"crawler-%05d\"\naddress = %q\n", i, addr)
	}
	inv, err := inventory.Parse(strings.NewReader(text.String()), "servers.toml")
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("SCALE_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	db, err := store.Open(context.Background(), store.Config{URI: uri, DataDir: filepath.Join(dir, "data")}, logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close(context.Background()) })
	var w spool.Writer = db
	if out == toNowhere {
		w = spool.WriterFunc(func(context.Context, []monitor.Result) ([]error, error) { return nil, nil })
	}
	sp, err := spool.Open(filepath.Join(dir, "data", "spool"), inventory.DefaultSpoolMax, w, logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sp.Close() })
	al, err := alerting.New(context.Background(), alerting.Options{Alerts: inv.Alerts, Store: db, Dir: filepath.Join(dir, "data", "alerts"),
		Host: "bench", Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	f := fleet.New(inv, fleet.Options{Probes: probes, Logger: logger, Concurrency: inv.Schedule.Concurrency})
	tb.Cleanup(func() { f.Close() })
	return &world{servers: inv.Servers, fleet: f, spool: sp, db: db,
		runner: &round.Runner{Prober: f, Writer: sp, Alerts: al, Logger: logger, Member: "bench"}}
}

// round runs one round over every server at slot and returns its wall
// time and results, and an error that counts the failed probes and names
// the first.
func (w *world) round(slot time.Time) (time.Duration, []monitor.Result, error) {
	start := time.Now()
	results := w.runner.RunSlot(context.Background(), slot, w.servers, nil)
	took := time.Since(start)
	failed := 0
	var first monitor.Result
	for _, r := range results {
		if r.Failed() {
			if failed == 0 {
				first = r
			}
			failed++
		}
	}
	if failed > 0 {
		return took, results, fmt.Errorf("%d of %d probes failed; the first: %s: %v", failed, len(results), first.Server, first.Err)
	}
	return took, results, nil
}

// mustRound is round, failing tb on any failed probe.
func (w *world) mustRound(tb testing.TB, slot time.Time) (time.Duration, []monitor.Result) {
	tb.Helper()
	took, results, err := w.round(slot)
	if err != nil {
		tb.Fatal(err)
	}
	return took, results
}

// drain waits until the spool has written everything to the database, and
// returns how long that took.
func (w *world) drain(tb testing.TB) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := w.spool.Drain(ctx); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// usage is the CPU time this process has used.
func usage() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS returns this process's VmHWM in bytes.
func peakRSS(tb testing.TB) float64 {
	tb.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	tb.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// TestFakeFleet checks, quickly, that the benchmark's fake fleet still
// speaks the probe protocol as collector/pull does: a cold and a warm
// round of a few servers succeed and reach the database.
func TestFakeFleet(t *testing.T) {
	w := setUp(t, 5, toDatabase)
	slot := time.Now().Truncate(time.Minute)
	w.mustRound(t, slot)
	w.mustRound(t, slot.Add(roundEvery))
	w.drain(t)
	for _, s := range w.servers {
		snaps, err := w.db.Snapshots(context.Background(), s.Name, slot.Add(-time.Hour), slot.Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(snaps) != 2 {
			t.Errorf("%s: %d snapshots stored, want 2", s.Name, len(snaps))
		}
	}
}

// writeSample is how many results BenchmarkMember10k writes to the
// database to measure the client's CPU per result.
const writeSample = 500

// writeCost returns the CPU this process spends per result written to the
// database in the steady state (the rollups exist): writeSample servers are
// probed (at slots before slot), their results written twice as new slots,
// the second time measured. It runs first, in a quiet process: measured
// later, the write would also count the runtime giving the memory of
// 10,000 connections back to the system. The connections are closed
// again, so that the cold round that follows dials every server.
func (w *world) writeCost(b *testing.B, slot time.Time) time.Duration {
	b.Helper()
	servers := w.servers
	w.servers = servers[:writeSample]
	_, results := w.mustRound(b, slot.Add(-time.Hour))
	w.servers = servers
	w.drain(b)
	w.fleet.Close()
	var cost time.Duration
	for range 2 {
		for i := range results {
			results[i].Slot = results[i].Slot.Add(roundEvery)
			results[i].At = results[i].At.Add(roundEvery)
		}
		debug.FreeOSMemory()
		c := usage()
		refused, err := w.db.WriteResults(context.Background(), results)
		if err != nil || refused != nil {
			b.Fatalf("write %d results: %v %v", len(results), err, refused)
		}
		cost = (usage() - c) / time.Duration(len(results))
	}
	return cost
}

// BenchmarkMember10k: one member probes 10,000 servers at one round a
// minute, as `collector run` does: a cold round (10,000 handshakes), then
// b.N minutes, each a warm round at its start, journalled in the spool,
// read back from it, judged by the alert rules, and then the connections
// kept alive until the minute is over. Its CPU over those minutes, per
// snapshot, includes everything the member does but the database client's
// work, which is measured apart first (writeCost) and added. Reported: the
// member's CPU per snapshot, the cores that takes at one round a minute
// (and the ratio to the target of one core), the peak RSS per server (and
// the ratio of the whole to 2 GiB), wall times.
func BenchmarkMember10k(b *testing.B) {
	w := setUp(b, fleetSize, toNowhere)
	slot := time.Now().Truncate(time.Minute)
	perWrite := w.writeCost(b, slot)

	cpu0 := usage()
	cold, _, err := w.round(slot)
	w.drain(b)
	coldCPU := usage() - cpu0
	if err != nil {
		// 10,000 handshakes at once against one fake server on this
		// machine's few cores: some may time out. The next round dials
		// them again.
		b.Logf("cold round: %v", err)
		w.mustRound(b, slot.Add(roundEvery))
		w.drain(b)
	}

	b.ResetTimer()
	start, cpu1 := time.Now(), usage()
	var wall time.Duration
	for i := range b.N {
		time.Sleep(time.Until(start.Add(time.Duration(i) * roundEvery)))
		d, _ := w.mustRound(b, slot.Add(time.Duration(i+2)*roundEvery))
		wall += d
		w.drain(b)
	}
	time.Sleep(time.Until(start.Add(time.Duration(b.N) * roundEvery)))
	minutesCPU := usage() - cpu1
	b.StopTimer()
	rss := peakRSS(b)

	perSnap := minutesCPU/time.Duration(b.N*fleetSize) + perWrite
	cores := float64(perSnap*fleetSize) / float64(roundEvery)
	b.ReportMetric(float64(perSnap.Microseconds())/1000, "cpu-ms/snapshot")
	b.ReportMetric(float64(perWrite.Microseconds())/1000, "cpu-ms/write")
	b.ReportMetric(cores, "cores@1/min")
	b.ReportMetric(cores/maxCores, "cores-ratio")
	b.ReportMetric(rss/fleetSize/1024, "KiB/server")
	b.ReportMetric(rss/maxRSS, "rss-ratio")
	b.ReportMetric(wall.Seconds()/float64(b.N), "s/warm-round")
	b.ReportMetric(cold.Seconds(), "s/cold-round")
	b.ReportMetric(float64(coldCPU.Microseconds())/1000/fleetSize, "cpu-ms/cold-snapshot")
	b.Logf("%d servers: cold round %v (%v CPU); a minute with a warm round of %v: %v CPU; writing a result %v CPU; peak RSS %.0f MiB",
		fleetSize, cold.Round(time.Millisecond), coldCPU.Round(time.Millisecond), (wall / time.Duration(b.N)).Round(time.Millisecond),
		(minutesCPU / time.Duration(b.N)).Round(time.Millisecond), perWrite.Round(time.Microsecond), rss/(1<<20))
}

// BenchmarkWarmRound1k: the wall time of a warm round of 1,000 servers,
// against the target of the sample window and a second.
func BenchmarkWarmRound1k(b *testing.B) {
	const n = 1000
	w := setUp(b, n, toNowhere)
	slot := time.Now().Truncate(time.Minute)
	w.mustRound(b, slot)
	w.drain(b)
	b.ResetTimer()
	var wall, worst time.Duration
	for i := range b.N {
		d, _ := w.mustRound(b, slot.Add(time.Duration(i+1)*roundEvery))
		wall += d
		worst = max(worst, d)
		b.StopTimer()
		w.drain(b) // the spool behind the round keeps out of the next
		b.StartTimer()
	}
	b.StopTimer()
	target := sample + time.Second
	b.ReportMetric(wall.Seconds()/float64(b.N), "s/warm-round")
	b.ReportMetric(worst.Seconds(), "s/worst-round")
	b.ReportMetric(float64(worst)/float64(target), "worst-ratio")
}
