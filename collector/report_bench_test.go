package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
	"github.com/crawlerfleet/collector/store"
)

// BenchmarkReport30Days100Servers builds the report over 30 days of
// one-minute snapshots of 100 servers, 4.3 million of them, written through
// the normal write path into the embedded store (about 3 minutes and some
// GB of disk before the timer starts). The report reads the 72,000 hourly
// rollups they make, never the raw snapshots. COLLECTOR_BENCH_EVERY=1h
// writes one snapshot per server and hour instead: the same rollups from
// 72,000 snapshots, in 20 s.
//
// Targets: under 3 s per report and under 200 MiB peak RSS.
func BenchmarkReport30Days100Servers(b *testing.B) {
	const servers, days = 100, 30
	every := time.Minute
	if v := os.Getenv("COLLECTOR_BENCH_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > time.Hour {
			b.Fatalf("COLLECTOR_BENCH_EVERY=%q: want a duration up to 1h", v)
		}
		every = d
	}
	ctx := context.Background()
	dataDir := filepath.Join(b.TempDir(), "data")
	st, err := store.Open(ctx, store.Config{DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}

	to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	from := to.AddDate(0, 0, -days)
	var inv strings.Builder
	inv.WriteString("[defaults]\nuser = \"u\"\n")
	batch := make([]store.Result, 0, 5000)
	flush := func() {
		if err := st.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range servers {
		name := fmt.Sprintf("crawler-%03d", i)
		fmt.Fprintf(&inv, "[[server]]\nname = %q\naddress = \"10.0.%d.%d\"\n", name, i/250, i%250+1)
		for off := every / 2; off < days*24*time.Hour; off += every {
			at := from.Add(off)
			h := int(off / time.Hour)
			procs := 5 + (h*7+i)%20
			batch = append(batch, store.Result{Server: name, At: at, Duration: time.Second, Snapshot: benchSnapshot(at, procs)})
			if len(batch) == cap(batch) {
				flush()
			}
		}
	}
	flush()
	if err := st.Close(ctx); err != nil {
		b.Fatal(err)
	}
	invPath := filepath.Join(dataDir, "..", "bench.toml")
	fmt.Fprintf(&inv, "[store]\ndata_dir = %q\n", dataDir)
	if err := os.WriteFile(invPath, []byte(inv.String()), 0o600); err != nil {
		b.Fatal(err)
	}

	// The report runs as users run it: the collector command in a process
	// of its own, so that its peak RSS is its own.
	bin := filepath.Join(b.TempDir(), "collector")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build the collector: %v\n%s", err, out)
	}
	out := filepath.Join(b.TempDir(), "report.html")
	var maxRSS int64
	b.ResetTimer()
	for b.Loop() {
		cmd := exec.Command(bin, "--config", invPath, "report", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--out", out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("report: %v\n%s", err, msg)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			maxRSS = max(maxRSS, ru.Maxrss)
		}
	}
	b.StopTimer()
	html, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(html), "crawler-099") {
		b.Fatalf("the report lacks the last server: %v", err)
	}
	b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MiB")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/report")
}

// benchSnapshot is a snapshot whose memory and CPU follow the process count.
func benchSnapshot(at time.Time, procs int) *snapshot.Snapshot {
	mem := 10 + 3*float64(procs) + 2*math.Sin(float64(at.Unix()))
	return &snapshot.Snapshot{
		Version: snapshot.Version, Time: at, Hostname: "bench",
		CPU:       snapshot.CPU{Count: 4, LogicalCount: 8, Percent: 4 + 2*float64(procs), Load1: float64(procs) / 4},
		Memory:    snapshot.Memory{Total: 16 << 30, UsedPercent: mem},
		Disk:      snapshot.Disk{Path: "/", Total: 100 << 30, UsedPercent: 40},
		Processes: snapshot.Processes{Total: 200, MatchedTotal: procs, Matched: []snapshot.Match{{Keyword: "python", Count: procs, PIDs: []int32{}}}},
	}
}
