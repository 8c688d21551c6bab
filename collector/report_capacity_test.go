package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
	"github.com/crawlerfleet/collector/store"
)

// crawlerBox is a server running n crawlers of one keyword, as the probe
// of schema version 2 would see it.
type crawlerBox struct {
	cpus     int
	memTotal uint64
	n        int
	// busy is the CPU busy percent; running the runnable tasks at the end
	// of the window (the probe included); cpuPressure the CPU "some"
	// stall percent.
	busy        float64
	running     int
	cpuPressure float64
	// used is memory used percent; avail the percent available.
	used, avail float64
	// rssPerProc is each crawler's resident memory in bytes, cpuPerProc
	// its CPU in percent of one CPU.
	rssPerProc uint64
	cpuPerProc float64
	netBytes   float64 // bytes received and sent per second
	version1   bool    // a snapshot of schema version 1: no saturation figures
}

func (b crawlerBox) snapshot(at time.Time) *snapshot.Snapshot {
	s := &snapshot.Snapshot{
		Version: snapshot.Version, Time: at, Hostname: "box",
		CPU:    snapshot.CPU{Count: b.cpus, LogicalCount: b.cpus, Percent: b.busy, Load1: float64(b.running)},
		Memory: snapshot.Memory{Total: b.memTotal, UsedPercent: b.used, Available: uint64(b.avail / 100 * float64(b.memTotal))},
		Disk:   snapshot.Disk{Path: "/", Total: 100 << 30, UsedPercent: 40},
		Processes: snapshot.Processes{Total: 200 + b.n, MatchedTotal: b.n, Matched: []snapshot.Match{{
			Keyword: "python", Count: b.n, PIDs: []int32{},
			RSSBytes: uint64(b.n) * b.rssPerProc, CPUPercent: float64(b.n) * b.cpuPerProc,
		}}},
	}
	if b.version1 {
		s.Version = 1
		return s
	}
	stall := func(v float64) *snapshot.PSI { return &snapshot.PSI{SomeAvg10: v, SomeStallPercent: &v} }
	s.SampleSeconds = 1
	s.Swap = &snapshot.Swap{}
	s.Pressure = &snapshot.Pressure{CPU: stall(b.cpuPressure), Memory: stall(0), IO: stall(0)}
	s.RunQueue = &snapshot.RunQueue{Running: b.running}
	s.Network = &snapshot.Network{Interfaces: []snapshot.Interface{}, RxBytesPerSecond: b.netBytes}
	s.FileDescriptors = &snapshot.FileDescriptors{Allocated: 2000, Max: 1 << 20}
	s.Filesystems = &snapshot.Filesystems{Mounts: []snapshot.Filesystem{{Path: "/", Type: "ext4", UsedPercent: 40}}}
	s.Processes.Matched[0].Threads = b.n
	return s
}

// capacityReport writes one snapshot of each box, five minutes apart from
// start, into a fresh embedded store, and returns the python capacity of
// the report over them (raw snapshots: the range is under 48 hours).
func capacityReport(t *testing.T, boxes []crawlerBox) goldenCapacity {
	t.Helper()
	h := newHarness(t)
	section, dataDir := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("box", "")+section)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var rs []monitor.Result
	for i, b := range boxes {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		rs = append(rs, monitor.Result{Server: "box", At: at, Duration: time.Second, Snapshot: b.snapshot(at)})
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeResults(ctx, st, rs); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	end := start.Add(time.Duration(len(boxes)) * 5 * time.Minute)
	code, stdout, stderr := h.run("report", "--from", start.Format(time.RFC3339), "--to", end.Format(time.RFC3339),
		"--format", "json", "--out", "-")
	if code != exitOK {
		t.Fatalf("report: exit %d\n%s", code, stderr)
	}
	var f goldenFigures
	if err := json.Unmarshal([]byte(stdout), &f); err != nil || len(f.Servers) != 1 || len(f.Servers[0].Capacity) != 1 {
		t.Fatalf("report JSON: %v\n%s", err, stdout)
	}
	return f.Servers[0].Capacity[0]
}

// ramp returns the boxes of counts, each repeated times.
func ramp(counts []int, times int, box func(n int) crawlerBox) []crawlerBox {
	var out []crawlerBox
	for _, n := range counts {
		for range times {
			out = append(out, box(n))
		}
	}
	return out
}

func countsFrom(lo, hi int) []int {
	var out []int
	for n := lo; n <= hi; n++ {
		out = append(out, n)
	}
	return out
}

func (c goldenCapacity) resource(name string) (r struct {
	ceiling    *int
	cost       float64
	satCount   int
	satFigures map[string]float64
	fitSlope   float64
	fitStatus  string
	measured   float64
	peak       float64
	peakProcs  *int
}, ok bool) {
	for _, res := range c.Resources {
		if res.Name != name {
			continue
		}
		r.ceiling, r.cost = res.Ceiling, res.Cost
		if res.Peak != nil {
			r.peak, r.peakProcs = res.Peak.Value, res.Peak.Procs
		}
		if res.Saturation != nil {
			r.satCount, r.satFigures = res.Saturation.Count, res.Saturation.Figures
		}
		if res.Fitted != nil {
			r.fitSlope, r.fitStatus = res.Fitted.Slope, res.Fitted.Status
		}
		if res.Measured != nil {
			r.measured = res.Measured.Median
		}
		return r, true
	}
	return r, false
}

// TestCapacityGolden runs the report's capacity through the store and the
// command's JSON on data whose answer is known.
func TestCapacityGolden(t *testing.T) {
	const gib = 1 << 30

	t.Run("CPU saturated with ample memory", func(t *testing.T) {
		// The box: 2 CPUs, 16 GiB, crawlers of 150 MiB each,
		// ramped from 6 to 16; the CPUs are pegged from 15 on, with the
		// run queue and CPU pressure high. Memory alone would allow ~90.
		boxes := ramp(countsFrom(6, 16), 4, func(n int) crawlerBox {
			b := crawlerBox{cpus: 2, memTotal: 16 * gib, n: n, busy: math.Min(3+6.5*float64(n), 100), running: 2, cpuPressure: 3,
				rssPerProc: 150 << 20, cpuPerProc: 13, netBytes: 1e5 * float64(n)}
			b.used = 10 + float64(n)*150/16/1024*100
			b.avail = 100 - b.used - 5
			if b.busy >= 100 {
				b.running, b.cpuPressure = 1+n*2/3, 42
			}
			return b
		})
		c := capacityReport(t, boxes)
		if !c.Known || c.Limit != "cpu" || !c.Saturated || c.Total != 15 || c.More != 0 || c.Now != 16 {
			t.Errorf("capacity = %+v, want CPU saturated at 15, none more", c)
		}
		if !strings.HasPrefix(c.Headline, "none: CPU saturated at 15 python (busy 100 %, run queue ") || !strings.Contains(c.Headline, "CPU pressure 42 %") {
			t.Errorf("headline = %q", c.Headline)
		}
		if strings.Contains(c.Headline, "memory") {
			t.Errorf("headline %q promises something from memory", c.Headline)
		}
		cpu, _ := c.resource("cpu")
		// 15 and 16 were saturated: runnable 11 and 11 (probe left out: 10
		// and 10, over 2 CPUs).
		if cpu.satCount != 15 || cpu.satFigures["run_queue_per_cpu"] != 5 || cpu.satFigures["busy_percent"] != 100 {
			t.Errorf("cpu saturation at %d with %v, want 15, run queue 5 per CPU, busy 100", cpu.satCount, cpu.satFigures)
		}
		mem, _ := c.resource("memory")
		if mem.ceiling == nil || *mem.ceiling < 80 {
			t.Errorf("memory's own ceiling %v, want well above the CPU's", mem.ceiling)
		}
	})

	t.Run("memory-bound", func(t *testing.T) {
		// 8 CPUs barely used; each crawler holds 3.5 % of memory, measured
		// and fitted alike: the peak of 76 % at 16 leaves (90 − 76) / 3.5
		// = 4 more, 20 in all; 12 run at the end.
		counts := append(countsFrom(4, 16), 12)
		boxes := ramp(counts, 3, func(n int) crawlerBox {
			return crawlerBox{cpus: 8, memTotal: 16 * gib, n: n, busy: 2 + 0.5*float64(n), running: 2,
				used: 20 + 3.5*float64(n), avail: 75 - 3.5*float64(n),
				rssPerProc: 601295421, cpuPerProc: 4, netBytes: 1e5 * float64(n)}
		})
		c := capacityReport(t, boxes)
		if !c.Known || c.Limit != "memory" || c.Saturated || c.Total != 20 || c.Now != 12 || c.More != 8 || c.Low != 8 || c.High != 8 {
			t.Errorf("capacity = %+v, want memory: 20 in all, 8 more", c)
		}
		if c.Headline != "+8 python, limited by memory" {
			t.Errorf("headline = %q", c.Headline)
		}
		mem, _ := c.resource("memory")
		if !near(mem.fitSlope, 3.5) || mem.fitStatus != "ok" || !near(mem.measured, 3.5) {
			t.Errorf("memory cost: fitted %v (%s), measured %v; want 3.5 %% each", mem.fitSlope, mem.fitStatus, mem.measured)
		}
		// A file system is judged by its latest reading, which has the
		// count of that reading.
		if disk, ok := c.resource("disk /"); !ok || disk.peak != 40 || disk.peakProcs == nil || *disk.peakProcs != 12 || disk.ceiling != nil {
			t.Errorf("disk / = %+v (found %v), want 40 %% at the latest reading's 12, no ceiling", disk, ok)
		}
	})

	t.Run("constant count: the measured cost alone", func(t *testing.T) {
		// Always 10 crawlers, so no line can be fitted; each holds 2.8 or
		// 3.2 % of memory (median 3, p95 3.2) and 2 % of the CPUs. Memory
		// peaks at 41 %: 10 + 49/3 = 26.3 → 26 in all, 25 at 3.2 %.
		boxes := make([]crawlerBox, 20)
		for i := range boxes {
			rss := 0.028
			if i%2 == 1 {
				rss = 0.032
			}
			boxes[i] = crawlerBox{cpus: 4, memTotal: 16 * gib, n: 10, busy: 30 + float64(i%2), running: 2,
				used: 40 + float64(i%2), avail: 55, rssPerProc: uint64(rss * 16 * float64(gib)), cpuPerProc: 8, netBytes: 1e6}
		}
		c := capacityReport(t, boxes)
		if !c.Known || c.Limit != "memory" || c.Total != 26 || c.More != 16 || c.Low != 15 || c.High != 16 {
			t.Errorf("capacity = %+v, want memory: 26 in all, 16 more (15–16)", c)
		}
		if c.Headline != "+16 python (15–16), limited by memory" {
			t.Errorf("headline = %q", c.Headline)
		}
		mem, _ := c.resource("memory")
		if mem.fitStatus != "thin" || !near(mem.measured, 3) {
			t.Errorf("memory: fit %s, measured %v; want no fit, 3 %% measured", mem.fitStatus, mem.measured)
		}
		if c.Throughput == nil || c.Throughput.Status != "thin" {
			t.Errorf("throughput %+v: one count cannot be fitted", c.Throughput)
		}
	})

	t.Run("flat-topped, version-1 snapshots", func(t *testing.T) {
		// CPU rises by 8 % a crawler and is pinned at 100 % from 12 on,
		// load1 well over one per CPU; schema version 1 has no run queue
		// or pressure, so load1 stands in. The fit runs over the readings
		// below the top: slope 8 exactly.
		boxes := ramp(countsFrom(4, 18), 3, func(n int) crawlerBox {
			b := crawlerBox{cpus: 4, memTotal: 16 * gib, n: n, busy: math.Min(4+8*float64(n), 100), running: 2,
				used: 20 + float64(n), avail: 70, rssPerProc: 100 << 20, cpuPerProc: 32, version1: true}
			if b.busy >= 100 {
				b.running = n
			}
			return b
		})
		c := capacityReport(t, boxes)
		if !c.Known || c.Limit != "cpu" || !c.Saturated || c.Total != 12 || c.More != 0 {
			t.Errorf("capacity = %+v, want CPU saturated at 12", c)
		}
		if !strings.HasPrefix(c.Headline, "none: CPU saturated at 12 python (busy 100 %, run queue 3.0 per CPU") {
			t.Errorf("headline = %q", c.Headline)
		}
		cpu, _ := c.resource("cpu")
		if cpu.fitStatus != "ok" || !near(cpu.fitSlope, 8) {
			t.Errorf("cpu fit %s slope %v, want 8 over the readings below the top", cpu.fitStatus, cpu.fitSlope)
		}
		if c.Throughput != nil {
			t.Errorf("throughput %+v from version-1 snapshots, which have no network figures", c.Throughput)
		}
	})

	t.Run("throughput knee", func(t *testing.T) {
		// Bytes/s follow the Universal Scalability Law with λ = 2 MB/s,
		// σ = 0.05 and κ = 0.02: the peak is at √(0.95/0.02) = 6.89
		// crawlers; 14 run at the end, CPU and memory idle.
		const lambda, sigma, kappa = 2e6, 0.05, 0.02
		boxes := ramp(countsFrom(1, 14), 2, func(n int) crawlerBox {
			x := float64(n)
			return crawlerBox{cpus: 8, memTotal: 16 * gib, n: n, busy: 5 + 0.2*x, running: 2, used: 20 + 0.1*x, avail: 70,
				rssPerProc: 16 << 20, cpuPerProc: 1, netBytes: lambda * x / (1 + sigma*(x-1) + kappa*x*(x-1))}
		})
		c := capacityReport(t, boxes)
		tp := c.Throughput
		if tp == nil || tp.Status != "ok" || !tp.KneeVisible || tp.Knee == nil || math.Abs(*tp.Knee-math.Sqrt(0.95/0.02)) > 1e-3 ||
			math.Abs(tp.Sigma-sigma) > 1e-4 || math.Abs(tp.Kappa-kappa) > 1e-4 {
			t.Fatalf("throughput = %+v, want the knee at 6.89 (σ 0.05, κ 0.02)", tp)
		}
		if !c.Known || c.Limit != "network" || c.Total != 6 || c.More != 0 {
			t.Errorf("capacity = %+v, want network throughput: 6 in all", c)
		}
		if !strings.HasPrefix(c.Headline, "none: network throughput peaked at about 6.9 processes") {
			t.Errorf("headline = %q", c.Headline)
		}

		// The same law seen only up to 5 crawlers: no knee yet.
		c = capacityReport(t, boxes[:10])
		if tp := c.Throughput; tp == nil || tp.Status != "ok" || tp.KneeVisible || !strings.HasPrefix(tp.Text, "no knee visible yet") {
			t.Errorf("throughput up to 5 = %+v, want no knee visible yet", tp)
		}
		if c.Limit == "network" {
			t.Errorf("capacity = %+v: network limits without a knee", c)
		}
	})

	t.Run("throughput falling from the first process", func(t *testing.T) {
		// All contention (σ = 1): bytes/s fall as crawlers are added.
		// The law's knee, √((1−σ)/κ), is 0 there and its throughput 0/0,
		// which once made the JSON report fail (NaN) and the HTML say
		// "peaked at about 0 processes (8192 PiB/s)".
		boxes := ramp(countsFrom(1, 12), 2, func(n int) crawlerBox {
			x := float64(n)
			return crawlerBox{cpus: 8, memTotal: 16 * gib, n: n, busy: 5 + 0.2*x, running: 2, used: 20 + 0.1*x, avail: 70,
				rssPerProc: 16 << 20, cpuPerProc: 1, netBytes: 1e6 / (1 + 0.05*(x-1))}
		})
		c := capacityReport(t, boxes)
		tp := c.Throughput
		if tp == nil || tp.Knee == nil || *tp.Knee != 1 || !tp.KneeVisible || !strings.HasPrefix(tp.Text, "network throughput peaked at the first process") {
			t.Fatalf("throughput = %+v, want the knee at the first process", tp)
		}
		if !c.Known || c.Limit != "network" || c.Total != 1 || c.More != 0 {
			t.Errorf("capacity = %+v, want network throughput: 1 in all", c)
		}
	})
}

// TestCapacityThroughTheRealProbe runs the real probe on this machine with
// more busy loops named like crawlers than it has CPUs, stores three
// snapshots and asks the report: CPU is saturated at that count, with the
// run queue and (where the kernel has /proc/pressure) CPU pressure that
// say so. The loops saturate the CPUs from their first instant, so the test
// waits for nothing; other load on the machine only adds to it.
func TestCapacityThroughTheRealProbe(t *testing.T) {
	h := newHarness(t)
	section, _ := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, "\n[[server]]\nname = \"box\"\naddress = \"local\"\nkeywords = [\"crawlbusy\"]\n"+section)
	n := runtime.NumCPU() + 1
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		cmd.Args[0] = "crawlbusy-worker"
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for range 3 {
		if code, stdout, stderr := h.run("once", "--store", "box"); code != exitOK {
			t.Fatalf("once --store: exit %d\n%s\n%s", code, stdout, stderr)
		}
	}
	code, stdout, stderr := h.run("report", "--since", "1h", "--format", "json", "--out", "-")
	if code != exitOK {
		t.Fatalf("report: exit %d\n%s", code, stderr)
	}
	var f goldenFigures
	if err := json.Unmarshal([]byte(stdout), &f); err != nil || len(f.Servers) != 1 || len(f.Servers[0].Capacity) != 1 {
		t.Fatalf("report JSON: %v\n%s", err, stdout)
	}
	c := f.Servers[0].Capacity[0]
	t.Logf("headline: %s", c.Headline)
	if c.Keyword != "crawlbusy" || c.Now != n || !c.Known || c.Limit != "cpu" || !c.Saturated || c.Total != n || c.More != 0 {
		t.Fatalf("capacity = %+v, want CPU saturated at %d crawlbusy", c, n)
	}
	want := fmt.Sprintf("none: CPU saturated at %d crawlbusy (busy ", n)
	if !strings.HasPrefix(c.Headline, want) || !strings.Contains(c.Headline, "per CPU") {
		t.Errorf("headline = %q, want it to start %q and give the run queue", c.Headline, want)
	}
	cpu, _ := c.resource("cpu")
	if cpu.satFigures["busy_percent"] < CPUBusySaturatedForTest || cpu.satFigures["run_queue_per_cpu"] < 1 {
		t.Errorf("saturation figures %v: want busy ≥ 95 %% and a run queue of 1 per CPU or more", cpu.satFigures)
	}
	if _, err := os.Stat("/proc/pressure/cpu"); err == nil {
		if p, ok := cpu.satFigures["cpu_pressure_percent"]; !ok || p < 20 || !strings.Contains(c.Headline, "CPU pressure") {
			t.Errorf("CPU pressure %v (%v) on a kernel with /proc/pressure: want it at 20 %% or more, in the headline %q", p, ok, c.Headline)
		}
	}
}

// CPUBusySaturatedForTest is report.CPUBusySaturated, spelled out so that a
// change of the criterion shows up here.
const CPUBusySaturatedForTest = 95
