package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// maxSnapshot is the size budget of a snapshot (issue 12).
const maxSnapshot = 16 << 10

// TestProbeSaturation runs the real probe beside busy loops named like
// crawlers: it shows the CPU saturated, the run queue, CPU pressure where
// the kernel has it, and the crawlers' group and top entries.
func TestProbeSaturation(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the probe targets linux")
	}
	key := "python-crawler-" + randomKeyword(t)
	loops := max(2, runtime.NumCPU())
	stop := burst(t, loops, key)
	defer stop()
	r := runProbe(t, "-sample", "1s", "--", key)
	s := r.decode(t)
	if len(r.stdout) > maxSnapshot {
		t.Errorf("snapshot is %d bytes, want at most %d", len(r.stdout), maxSnapshot)
	}
	if s.CPU.Percent < 90 {
		t.Errorf("cpu busy = %v with %d busy loops on %d CPUs, want at least 90", s.CPU.Percent, loops, runtime.NumCPU())
	}
	if s.RunQueue == nil || s.RunQueue.Error != "" || s.RunQueue.Running < 2 {
		t.Errorf("run queue = %+v, want at least 2 running", s.RunQueue)
	}
	if s.SampleSeconds != 1 {
		t.Errorf("sample_seconds = %v, want 1", s.SampleSeconds)
	}
	switch p := s.Pressure; {
	case p == nil:
		t.Error("no pressure section")
	case p.CPU == nil && strings.HasPrefix(p.Error, "unsupported: "):
		t.Logf("no pressure stall information here: %s", p.Error)
	case p.CPU == nil || p.CPU.Error != "" || p.CPU.SomeStallPercent == nil:
		t.Errorf("cpu pressure = %+v, error %q", p.CPU, p.Error)
	case *p.CPU.SomeStallPercent <= 0:
		t.Errorf("cpu stall = %v %% with the CPUs saturated, want above 0", *p.CPU.SomeStallPercent)
	}
	m := matchOf(t, s, key)
	// Each loop gets a share of the CPUs, however small beside other load.
	if m.Count != loops || m.CPUPercent < 5 || m.Threads < loops || m.Heaviest == nil || !slices.Contains(m.PIDs, m.Heaviest.PID) || m.Heaviest.Command == "" {
		t.Errorf("crawlers = %+v, want %d busy ones and the heaviest of them with its command", m, loops)
	}
	if m.FDs < loops || m.FDsUnreadable != 0 {
		t.Errorf("crawlers' descriptors = %d (%d unreadable), want at least one each, all readable as root or their owner", m.FDs, m.FDsUnreadable)
	}
	checkTop(t, s.Top.ByCPU, m)
	for name, e := range map[string]string{"swap": s.Swap.Error, "network": s.Network.Error, "sockets": s.Sockets.Error,
		"file descriptors": s.FileDescriptors.Error, "top": s.Top.Error, "filesystems": s.Filesystems.Error} {
		if e != "" {
			t.Errorf("%s error: %s", name, e)
		}
	}
	if s.FileDescriptors.Allocated == 0 || s.FileDescriptors.Max == 0 || len(s.Sockets.TCP) != 11 {
		t.Errorf("file descriptors %+v, sockets %+v", s.FileDescriptors, s.Sockets)
	}
	if len(s.Filesystems.Mounts) == 0 {
		t.Errorf("no local file system: %+v", s.Filesystems)
	}
	for _, f := range s.Filesystems.Mounts {
		if f.Error == "" && (f.Total == 0 || f.Used > f.Total) {
			t.Errorf("file system %+v", f)
		}
	}
}

// checkTop checks that a busy group m is in the top list by CPU, or that
// the processes in it are at least as busy as m's busiest.
func checkTop(t *testing.T, top []snapshot.Proc, m snapshot.Match) {
	t.Helper()
	for i, p := range top {
		if p.User == "" || p.Name == "" || (i > 0 && p.CPUPercent > top[i-1].CPUPercent) {
			t.Errorf("top by cpu = %+v: want users, names, most CPU first", top)
		}
		if slices.Contains(m.PIDs, p.PID) {
			if p.Command == "" {
				t.Errorf("crawler in the top list without its command: %+v", p)
			}
			return
		}
	}
	// None of the crawlers is listed: then the list is full of processes
	// busier than they are (one of them used at least the mean).
	if mean := m.CPUPercent / float64(m.Count); len(top) != snapshot.TopN || top[len(top)-1].CPUPercent < mean-1 {
		t.Errorf("top by cpu = %+v, leaves out crawlers using %.2f %% each on average", top, mean)
	}
}

// TestSnapshotSizeWorstCase builds a snapshot as large as the caps allow
// for a host with many interfaces and mounts and keywords matching many
// processes, with long names everywhere, and checks it stays within the
// budget.
func TestSnapshotSizeWorstCase(t *testing.T) {
	const keywords = 5
	long := func(prefix string, n int) string { return (prefix + strings.Repeat("x", n))[:n] }
	at := time.Date(2026, 12, 5, 17, 0, 0, 123000000, time.UTC)

	// Keywords matching a thousand processes each, through groups().
	var kw []string
	for i := range keywords {
		kw = append(kw, long(fmt.Sprintf("crawler-%d-", i), 24))
	}
	var uses []procUse
	for pid := int32(100000); pid < 101000; pid++ {
		uses = append(uses, procUse{PID: pid, Keys: []int{0, 1, 2, 3, 4}, RSSBytes: 123456789, CPUPercent: 12.34, Threads: 17})
	}
	matches, all := groups(kw, uses)
	for i := range matches {
		matches[i].FDs, matches[i].FDsUnreadable = 123456, 1000
		matches[i].Heaviest.Command = long("/usr/bin/python3 ", snapshot.MaxCommand)
	}
	// Interfaces and mounts past the caps.
	var many counters
	for i := range 300 {
		many.Net = append(many.Net, ifCounters{Name: fmt.Sprintf("veth%011d", i), RxBytes: 1 << 40, TxBytes: 1 << 40, RxPackets: 1 << 30, TxPackets: 1 << 30})
	}
	network := deriveNetwork(counters{}, many, 1)
	var mounts []snapshot.Filesystem
	for i := range snapshot.MaxFilesystems {
		mounts = append(mounts, snapshot.Filesystem{
			Path: long(fmt.Sprintf("/srv/data/%d/", i), 64), Device: long("/dev/mapper/", 40), Type: "btrfs",
			Total: 1 << 50, Used: 1 << 49, Free: 1 << 49, UsedPercent: 50.55, Inodes: 1 << 40, InodesUsed: 1 << 39, InodesUsedPercent: 50.55,
		})
	}
	proc := snapshot.Proc{PID: 4194304, User: long("a-long-user-name", 32), Name: long("a-long-name", 15),
		Command: long("/usr/lib/jvm/bin/java ", snapshot.MaxCommand), CPUPercent: 199.99, RSSBytes: 1 << 40}
	var procs []snapshot.Proc
	for range snapshot.TopN {
		procs = append(procs, proc)
	}
	stat := &snapshot.Stat{Max: 100, Mean: 99.99, MaxAt: at}
	var kstats []snapshot.KeywordStat
	var counts []snapshot.KeywordCount
	for _, k := range kw {
		kstats = append(kstats, snapshot.KeywordStat{Keyword: k, Stat: *stat})
		counts = append(counts, snapshot.KeywordCount{Keyword: k, Count: 1000})
	}
	psi := &snapshot.PSI{SomeAvg10: 99.99, FullAvg10: ptr(99.99), SomeStallPercent: ptr(99.99), FullStallPercent: ptr(99.99)}
	s := snapshot.Snapshot{
		Version: snapshot.Version, Time: at, Hostname: long("crawler-host-", 63), UptimeSeconds: 1 << 40, SampleSeconds: 3600, ProcessCPUSeconds: 599.99,
		CPU:             snapshot.CPU{Count: 256, LogicalCount: 512, Percent: 99.99, Load1: 512.5, Load5: 512.5, Load15: 512.5},
		Memory:          snapshot.Memory{Total: 1 << 42, Used: 1 << 41, Free: 1 << 40, Available: 1 << 40, Buffers: 1 << 40, Cached: 1 << 40, UsedPercent: 50.55},
		Disk:            snapshot.Disk{Path: "/", Total: 1 << 50, Used: 1 << 49, Free: 1 << 49, UsedPercent: 50.55},
		Processes:       snapshot.Processes{Total: 100000, Matched: matches, MatchedTotal: len(all)},
		Swap:            &snapshot.Swap{Total: 1 << 40, Used: 1 << 39, UsedPercent: 50.55, PagesInPerSecond: 123456.78, PagesOutPerSecond: 123456.78},
		Pressure:        &snapshot.Pressure{CPU: psi, Memory: psi, IO: psi},
		RunQueue:        &snapshot.RunQueue{Running: 1000, Blocked: 1000},
		Network:         &network,
		Sockets:         &snapshot.Sockets{TCP: tcpStateMap(&[12]int{0, 100000, 100000, 100000, 100000, 100000, 100000, 100000, 100000, 100000, 100000, 100000})},
		FileDescriptors: &snapshot.FileDescriptors{Allocated: 1 << 40, Max: 1 << 63},
		Top:             &snapshot.Top{ByCPU: procs, ByRSS: procs},
		Filesystems:     &snapshot.Filesystems{Mounts: mounts, Omitted: 1000},
		Interval: &snapshot.Interval{
			Start: at, End: at, ResolutionSeconds: 1, Samples: 3600,
			CPU: stat, Memory: stat, Load1: stat, Disk: stat, PressureCPU: stat, PressureMemory: stat, PressureIO: stat, NetworkBytesPerSecond: stat,
			Keywords: kstats, MatchedAtCPUMax: &snapshot.MatchedAt{Keywords: counts, MatchedTotal: 1000}, MatchedAtMemoryMax: &snapshot.MatchedAt{Keywords: counts, MatchedTotal: 1000},
		},
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Unmarshal(data); err != nil {
		t.Fatalf("the worst case does not decode: %v", err)
	}
	t.Logf("worst case with %d keywords: %d bytes", keywords, len(data))
	if len(data) > maxSnapshot {
		t.Errorf("worst case is %d bytes, want at most %d", len(data), maxSnapshot)
	}
}
