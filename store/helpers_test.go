package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// logBuffer collects a test's logs; they are printed when the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testLogger(tb testing.TB) (*slog.Logger, *logBuffer) {
	tb.Helper()
	lb := &logBuffer{}
	tb.Cleanup(func() {
		if tb.Failed() || os.Getenv("STORE_TEST_LOGS") != "" {
			tb.Logf("logs:\n%s", lb)
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// openTest opens a store on the embedded FerretDB in a temporary data dir
// (unless cfg names one) and closes it at the end of the test.
func openTest(tb testing.TB, cfg Config) (*Store, *logBuffer) {
	tb.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	logger, lb := testLogger(tb)
	s, err := Open(context.Background(), cfg, logger)
	if err != nil {
		tb.Fatalf("Open: %v\nlogs:\n%s", err, lb)
	}
	tb.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s, lb
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
	procs                 []KeywordCount
	cpuErr, procErr       bool
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
	return s
}

func snapResult(server string, at time.Time, r reading) Result {
	return Result{Server: server, At: at, Duration: 812 * time.Millisecond, Snapshot: makeSnapshot(at, server, r)}
}

func failResult(server string, at time.Time, kind ErrKind, msg string) Result {
	return Result{Server: server, At: at, Duration: 5 * time.Second, ErrKind: kind, Err: msg}
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
func allRollups(tb testing.TB, s *Store, from, to time.Time) []Rollup {
	tb.Helper()
	var out []Rollup
	for _, p := range []Period{Hour, Day} {
		rs, err := s.Rollups(context.Background(), RollupQuery{Period: p, From: from, To: to})
		if err != nil {
			tb.Fatalf("Rollups(%s): %v", p, err)
		}
		out = append(out, rs...)
	}
	return out
}

// roundSums rounds the float sums of rs, which depend on the order of
// addition, to 1e-6.
func roundSums(rs []Rollup) []Rollup {
	out := make([]Rollup, len(rs))
	for i, r := range rs {
		for _, m := range []*Metric{&r.CPU, &r.Mem, &r.Disk, &r.Load1} {
			m.Sum = math.Round(m.Sum*1e6) / 1e6
		}
		out[i] = r
	}
	return out
}

func describe(r Rollup) string {
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
