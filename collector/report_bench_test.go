package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
	"github.com/crawlerfleet/collector/store"
)

// BenchmarkReport30Days100Servers builds reports from 30 days of one-minute
// snapshots of 100 servers, 4.3 million of them, written through the normal
// write path into the embedded store (about 3 minutes and some GB of disk
// before the first report). Over the 30 days (30d) the report reads the
// 72,000 hourly rollups they make, never the raw snapshots; over the last
// 48 hours (last-48h) it reads the raw snapshots, 288,000 of them.
// COLLECTOR_BENCH_EVERY=1h writes one snapshot per server and hour instead:
// the same rollups from 72,000 snapshots, in 20 s. COLLECTOR_BENCH_SERVERS
// and COLLECTOR_BENCH_DAYS shrink the fleet and the range while developing
// (COLLECTOR_BENCH_SERVERS=10 COLLECTOR_BENCH_DAYS=3: about 20 s).
// COLLECTOR_BENCH_DIR keeps the store in that directory, and a later run
// with the same directory reads it again instead of writing it (the
// settings of the run that wrote it hold).
//
// The snapshots are of schema version 2, with every section a report
// reads. Targets: under 1 s per report, 30 days and last 48 hours alike,
// and under 200 MiB peak RSS.
func BenchmarkReport30Days100Servers(b *testing.B) {
	servers, days := benchSize(b, "COLLECTOR_BENCH_SERVERS", 100), benchSize(b, "COLLECTOR_BENCH_DAYS", 30)
	every := time.Minute
	if v := os.Getenv("COLLECTOR_BENCH_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > time.Hour {
			b.Fatalf("COLLECTOR_BENCH_EVERY=%q: want a duration up to 1h", v)
		}
		every = d
	}
	to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	from := to.AddDate(0, 0, -days)
	ctx := context.Background()
	dataDir := filepath.Join(b.TempDir(), "data")
	if dir := os.Getenv("COLLECTOR_BENCH_DIR"); dir != "" {
		dataDir = filepath.Join(dir, "data")
	}
	invPath := filepath.Join(dataDir, "..", "bench.toml")
	if _, err := os.Stat(invPath); err == nil {
		b.Logf("reusing the store written before in %s", dataDir)
	} else {
		writeBenchStore(ctx, b, dataDir, invPath, servers, from, to, every)
	}
	sealBenchStore(ctx, b, dataDir, to)
	// The report runs as users run it: the collector command in a process
	// of its own, so that its peak RSS is its own.
	bin := filepath.Join(b.TempDir(), "collector")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build the collector: %v\n%s", err, out)
	}
	for _, r := range []struct {
		name     string
		from, to time.Time
	}{
		{"30d", from, to},                         // 72,000 hourly rollups
		{"last-48h", to.Add(-48 * time.Hour), to}, // raw snapshots: 288,000 at one a minute
	} {
		b.Run(r.name, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "report.html")
			var maxRSS int64
			var wall time.Duration
			for b.Loop() {
				rss, w, err := peakRSS(bin, "--config", invPath, "report", "--from", r.from.Format(time.RFC3339), "--to", r.to.Format(time.RFC3339), "--out", out)
				if err != nil {
					b.Fatal(err)
				}
				maxRSS = max(maxRSS, rss)
				wall += w
			}
			html, err := os.ReadFile(out)
			if err != nil || !strings.Contains(string(html), fmt.Sprintf("crawler-%03d", servers-1)) {
				b.Fatalf("the report lacks the last server: %v", err)
			}
			b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MiB")
			// s/report is the report command's own wall time, from its
			// start to its exit; ns/op adds the measuring test binary's.
			b.ReportMetric(wall.Seconds()/float64(b.N), "s/report")
		})
	}
}

// writeBenchStore writes days of snapshots of servers, one every every,
// through the normal write path into the embedded store in dataDir, and the
// inventory that reads them to invPath (written last, so that a store
// whose writing was cut short is not taken for a whole one).
func writeBenchStore(ctx context.Context, b *testing.B, dataDir, invPath string, servers int, from, to time.Time, every time.Duration) {
	st, err := store.Open(ctx, store.Config{DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	var inv strings.Builder
	inv.WriteString("[defaults]\nuser = \"u\"\n")
	batch := make([]monitor.Result, 0, 5000)
	flush := func() {
		if err := writeResults(ctx, st, batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range servers {
		name := fmt.Sprintf("crawler-%03d", i)
		fmt.Fprintf(&inv, "[[server]]\nname = %q\naddress = \"10.0.%d.%d\"\n", name, i/250, i%250+1)
		for off := every / 2; off < to.Sub(from); off += every {
			at := from.Add(off)
			h := int(off / time.Hour)
			procs := 5 + (h*7+i)%20
			batch = append(batch, monitor.Result{Server: name, At: at, Duration: time.Second, Snapshot: benchSnapshot(at, procs)})
			if len(batch) == cap(batch) {
				flush()
			}
		}
	}
	flush()
	if err := st.Close(ctx); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(&inv, "[store]\ndata_dir = %q\n", dataDir)
	if err := os.WriteFile(invPath, []byte(inv.String()), 0o600); err != nil {
		b.Fatal(err)
	}

}

// sealBenchStore seals every day of the store in dataDir, as the hourly
// upkeep of a collector that ran over those days would have (a store
// sealed before is left as it is), and logs how long that took.
func sealBenchStore(ctx context.Context, b *testing.B, dataDir string, to time.Time) {
	st, err := store.Open(ctx, store.Config{DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close(ctx)
	start, days := time.Now(), 0
	for {
		n, err := st.SealDays(ctx, to.Add(2*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		days += n
	}
	if days > 0 {
		b.Logf("sealed %d server-days in %s", days, time.Since(start).Round(time.Millisecond))
	}
}

// benchSize reads a positive whole number from the environment variable
// name, def when it is unset.
func benchSize(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a whole number above 0", name, v)
	}
	return n
}

// measureEnv, set to a JSON argv, makes the test binary run that command and
// print its peak RSS (see TestMain).
const measureEnv = "COLLECTOR_TEST_MEASURE_RSS"

// peakRSS runs argv and returns its peak RSS in KiB and its wall time,
// from its start to its exit as its parent saw them. It starts the command
// from a fresh test binary, not from this process: os/exec starts children
// with vfork, and Linux then counts the parent's own peak RSS into the
// child's (exec records the peak of the memory it replaces), so a child of
// a benchmark that has just written gigabytes would report the benchmark's
// peak. The fresh binary's own peak (about 35 MiB) still bounds the figure
// from below.
func peakRSS(argv ...string) (kib int64, wall time.Duration, err error) {
	js, err := json.Marshal(argv)
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), measureEnv+"="+string(js))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %v\n%s", argv[0], err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var ns int64
	if n, err := fmt.Sscanf(lines[len(lines)-1], "peak-rss-kib %d wall-ns %d", &kib, &ns); n != 2 {
		return 0, 0, fmt.Errorf("%s: no peak RSS and wall time in its output (%v):\n%s", argv[0], err, out)
	}
	return kib, time.Duration(ns), nil
}

// measure is the fresh test binary's side of peakRSS: it runs the command
// in argvJSON, passes its output on, and prints its peak RSS last.
func measure(argvJSON string) int {
	var argv []string
	if err := json.Unmarshal([]byte(argvJSON), &argv); err != nil || len(argv) == 0 {
		fmt.Fprintf(os.Stderr, "%s=%q: want a JSON array of arguments\n", measureEnv, argvJSON)
		return 2
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	wall := time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "no rusage on this system")
		return 1
	}
	fmt.Printf("peak-rss-kib %d wall-ns %d\n", ru.Maxrss, wall.Nanoseconds())
	return 0
}

// benchSnapshot is a snapshot of schema version 2 whose memory, CPU and
// traffic follow the process count, with every section a report reads.
func benchSnapshot(at time.Time, procs int) *snapshot.Snapshot {
	mem := 10 + 3*float64(procs) + 2*math.Sin(float64(at.Unix()))
	stall := func(v float64) *snapshot.PSI { return &snapshot.PSI{SomeAvg10: v, SomeStallPercent: &v} }
	pids := make([]int32, procs)
	for i := range pids {
		pids[i] = int32(1000 + i)
	}
	return &snapshot.Snapshot{
		Version: snapshot.Version, Time: at, Hostname: "bench", SampleSeconds: 1,
		CPU:    snapshot.CPU{Count: 4, LogicalCount: 8, Percent: 4 + 2*float64(procs), Load1: float64(procs) / 4},
		Memory: snapshot.Memory{Total: 16 << 30, UsedPercent: mem, Available: uint64((95 - mem) / 100 * (16 << 30))},
		Disk:   snapshot.Disk{Path: "/", Total: 100 << 30, UsedPercent: 40},
		Processes: snapshot.Processes{Total: 200, MatchedTotal: procs, Matched: []snapshot.Match{{
			Keyword: "python", Count: procs, PIDs: pids, RSSBytes: uint64(procs) * (480 << 20), CPUPercent: 16 * float64(procs),
			Threads: 4 * procs, FDs: 30 * procs, Heaviest: &snapshot.Member{PID: 1000, RSSBytes: 500 << 20, CPUPercent: 17, Command: "python crawl.py"},
		}}},
		Swap:            &snapshot.Swap{Total: 4 << 30, Used: 1 << 20, UsedPercent: 0.02},
		Pressure:        &snapshot.Pressure{CPU: stall(float64(procs)), Memory: stall(0.5), IO: stall(1.5)},
		RunQueue:        &snapshot.RunQueue{Running: 1 + procs/3},
		Network:         &snapshot.Network{Interfaces: []snapshot.Interface{{Name: "eth0", RxBytesPerSecond: 1e5 * float64(procs), TxBytesPerSecond: 2e4}}, RxBytesPerSecond: 1e5 * float64(procs), TxBytesPerSecond: 2e4},
		Sockets:         &snapshot.Sockets{TCP: map[string]int{"established": 10 * procs, "time_wait": 40}},
		FileDescriptors: &snapshot.FileDescriptors{Allocated: uint64(2000 + 30*procs), Max: 1 << 20},
		Top: &snapshot.Top{
			ByCPU: []snapshot.Proc{{PID: 1000, User: "crawl", Name: "python", Command: "python crawl.py", CPUPercent: 17, RSSBytes: 500 << 20}},
			ByRSS: []snapshot.Proc{{PID: 1000, User: "crawl", Name: "python", Command: "python crawl.py", CPUPercent: 17, RSSBytes: 500 << 20}},
		},
		Filesystems: &snapshot.Filesystems{Mounts: []snapshot.Filesystem{
			{Path: "/", Device: "/dev/vda1", Type: "ext4", Total: 100 << 30, Used: 40 << 30, Free: 60 << 30, UsedPercent: 40, Inodes: 6 << 20, InodesUsed: 1 << 20, InodesUsedPercent: 16.7},
			{Path: "/var/lib/crawl", Device: "/dev/vdb1", Type: "xfs", Total: 500 << 30, Used: 200 << 30, Free: 300 << 30, UsedPercent: 40, Inodes: 6 << 20, InodesUsed: 1 << 20, InodesUsedPercent: 16.7},
		}},
	}
}
