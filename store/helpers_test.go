package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
	"github.com/crawlerfleet/collector/store/spool"
)

// openTest opens a store on the embedded FerretDB in a temporary data dir
// (unless cfg names one) and closes it at the end of the test.
func openTest(tb testing.TB, cfg Config) (*Store, *testutil.SyncBuffer) {
	tb.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	logger, logs := testutil.Logger(tb)
	s, err := Open(context.Background(), cfg, logger)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s, logs
}

// openSpool opens the spool of s, in <data_dir>/spool as the command keeps
// it, and closes it at the end of the test.
func openSpool(tb testing.TB, s *Store, opts ...spool.Option) *spool.Spool {
	tb.Helper()
	sp, err := spool.Open(filepath.Join(s.DataDir(), "spool"), 0, s, s.logger, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sp.Close() })
	return sp
}

// spoolWhileDown leaves results in the spool in dir as a Write during an
// outage does.
func spoolWhileDown(tb testing.TB, dir string, results []monitor.Result) {
	tb.Helper()
	logger, _ := testutil.Logger(tb)
	down := spool.WriterFunc(func(context.Context, []monitor.Result) ([]error, error) {
		return nil, fmt.Errorf("insert: %w", monitor.ErrUnavailable)
	})
	sp, err := spool.Open(dir, 0, down, logger)
	if err != nil {
		tb.Fatal(err)
	}
	defer sp.Close()
	if err := sp.Write(context.Background(), results); err != nil {
		tb.Fatal(err)
	}
}

// writeAll writes results and fails the test unless all were stored.
func writeAll(tb testing.TB, s *Store, results []monitor.Result) {
	tb.Helper()
	refused, err := s.WriteResults(context.Background(), results)
	if err != nil {
		tb.Fatalf("WriteResults: %v", err)
	}
	if err := errors.Join(refused...); err != nil {
		tb.Fatalf("WriteResults refused: %v", err)
	}
}

// freePort returns a loopback address nothing listens on.
func freePort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// reading is what a hand-made snapshot shows.
type reading struct {
	cpu, mem, disk, load1 float64
	procs                 []monitor.KeywordCount
	cpuErr, procErr       bool
	// v2 adds the sections of schema version 2, their figures made from
	// cpu and mem.
	v2 bool
}

func (r reading) matchedTotal() int {
	n := 0
	for _, p := range r.procs {
		n += p.Count
	}
	return n
}

func makeSnapshot(at time.Time, host string, r reading) *snapshot.Snapshot {
	s := &snapshot.Snapshot{
		Version:       snapshot.Version,
		Time:          at.Add(-700 * time.Millisecond).UTC(),
		Hostname:      host,
		UptimeSeconds: 86400,
		CPU: snapshot.CPU{
			Count: 4, LogicalCount: 8, Percent: r.cpu,
			Load1: r.load1, Load5: r.load1 / 2, Load15: r.load1 / 3,
		},
		Memory: snapshot.Memory{
			Total: 16 << 30, Used: uint64(r.mem / 100 * (16 << 30)),
			Available: uint64((100 - r.mem) / 100 * (16 << 30)), UsedPercent: r.mem,
		},
		Disk: snapshot.Disk{
			Path: "/", Total: 500 << 30, Used: uint64(r.disk / 100 * (500 << 30)),
			UsedPercent: r.disk,
		},
		Processes: snapshot.Processes{Total: 200, Matched: []snapshot.Match{}},
	}
	if r.cpuErr {
		s.CPU = snapshot.CPU{Error: "read /proc/stat: permission denied"}
	}
	if r.procErr {
		s.Processes = snapshot.Processes{Error: "list processes: permission denied"}
		return s
	}
	pid := int32(1000)
	for _, p := range r.procs {
		m := snapshot.Match{Keyword: p.Keyword, Count: p.Count, PIDs: []int32{}, RSSBytes: uint64(p.Count) << 27, CPUPercent: float64(p.Count) * 1.5}
		for i := 0; i < p.Count; i++ {
			m.PIDs = append(m.PIDs, pid)
			pid++
		}
		s.Processes.Matched = append(s.Processes.Matched, m)
	}
	s.Processes.MatchedTotal = r.matchedTotal()
	if r.v2 {
		addV2(s, r)
	}
	return s
}

// addV2 gives s the sections of schema version 2, with figures that follow
// r's CPU and memory.
func addV2(s *snapshot.Snapshot, r reading) {
	s.SampleSeconds = 1
	stall := func(v float64) *snapshot.PSI { return &snapshot.PSI{SomeAvg10: v, SomeStallPercent: &v} }
	s.Swap = &snapshot.Swap{Total: 1 << 30, PagesInPerSecond: r.mem, PagesOutPerSecond: r.mem / 2}
	s.Pressure = &snapshot.Pressure{CPU: stall(r.cpu / 2), Memory: stall(r.mem / 4), IO: stall(1)}
	s.RunQueue = &snapshot.RunQueue{Running: 1 + int(r.cpu/10)}
	s.Network = &snapshot.Network{Interfaces: []snapshot.Interface{}, RxBytesPerSecond: r.cpu * 1000, TxBytesPerSecond: 500}
	s.FileDescriptors = &snapshot.FileDescriptors{Allocated: uint64(r.mem * 10), Max: 10000}
	s.Filesystems = &snapshot.Filesystems{Mounts: []snapshot.Filesystem{
		{Path: "/", Type: "ext4", UsedPercent: r.disk},
		{Path: "/var/lib.data", Type: "xfs", UsedPercent: r.disk/2 + r.cpu/10},
	}}
	for i := range s.Processes.Matched {
		m := &s.Processes.Matched[i]
		m.Threads, m.FDs = 2*m.Count, 7*m.Count
	}
}

func snapResult(server string, at time.Time, r reading) monitor.Result {
	return monitor.Result{Server: server, At: at, Duration: 812 * time.Millisecond, Snapshot: makeSnapshot(at, server, r)}
}

func failResult(server string, at time.Time, kind monitor.Kind, msg string) monitor.Result {
	return monitor.Result{Server: server, At: at, Duration: 5 * time.Second, Kind: kind, Err: errors.New(msg)}
}

// normalized returns r as the store keeps it.
func normalized(tb testing.TB, r monitor.Result) monitor.Result {
	tb.Helper()
	r, err := r.Normalized()
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func count(tb testing.TB, s *Store, coll string, filter bson.D) int64 {
	tb.Helper()
	if filter == nil {
		filter = bson.D{}
	}
	n, err := s.db.Collection(coll).CountDocuments(context.Background(), filter)
	if err != nil {
		tb.Fatalf("count %s: %v", coll, err)
	}
	return n
}

// allRollups reads every rollup of both periods in [from, to).
func allRollups(tb testing.TB, s *Store, from, to time.Time) []monitor.Rollup {
	tb.Helper()
	var out []monitor.Rollup
	for _, p := range []monitor.Period{monitor.Hour, monitor.Day} {
		rs, err := s.Rollups(context.Background(), monitor.RollupFilter{Period: p, From: from, To: to})
		if err != nil {
			tb.Fatalf("Rollups(%s): %v", p, err)
		}
		out = append(out, rs...)
	}
	return out
}

// roundSums rounds the float sums of rs, which depend on the order of
// addition, to 1e-6.
func roundSums(rs []monitor.Rollup) []monitor.Rollup {
	out := make([]monitor.Rollup, len(rs))
	for i, r := range rs {
		for _, m := range []*monitor.Metric{&r.CPU, &r.Mem, &r.Disk, &r.Load1, &r.Unavailable, &r.SwapPages,
			&r.PressureCPU, &r.PressureMem, &r.PressureIO, &r.RunQueue, &r.NetBytes, &r.FDUsed} {
			m.Sum = math.Round(m.Sum*1e6) / 1e6
			m.Peak.Value = math.Round(m.Peak.Value*1e6) / 1e6
		}
		r.Filesystems = slices.Clone(r.Filesystems)
		for j := range r.Filesystems {
			m := &r.Filesystems[j].Metric
			m.Sum = math.Round(m.Sum*1e6) / 1e6
		}
		out[i] = r
	}
	return out
}

func describe(r monitor.Rollup) string {
	return fmt.Sprintf("%s %s %s count=%d failed=%d", r.Server, r.Period, r.Start.Format(time.RFC3339), r.Count, r.Failed)
}

func containsAll(s string, subs ...string) error {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return fmt.Errorf("missing %q", sub)
		}
	}
	return nil
}
