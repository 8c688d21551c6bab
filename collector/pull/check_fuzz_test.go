package pull

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/report"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// FuzzCheck feeds any probe output to the decoder and check, and what check
// lets through to the report, as a hostile or broken probe's output would
// go: nothing panics, and a snapshot check passes always makes a report
// that prints, as JSON (which has no NaN) and as HTML.
func FuzzCheck(f *testing.F) {
	testutil.AddFiles(f, filepath.Join("..", "..", "probe", "snapshot", "testdata", "*.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := snapshot.Unmarshal(data)
		if err != nil {
			return
		}
		// The clock is check's business, tested on its own.
		if err := check(s, []string{"python", "node"}, s.Time); err != nil {
			return
		}
		reportPrints(t, s, "python", 0)
	})
}

// reportPrints builds a report of three results holding s, for keyword and
// for all matched processes, and fails t unless it prints as JSON and HTML.
func reportPrints(t *testing.T, s *snapshot.Snapshot, keyword string, memTotal uint64) {
	t.Helper()
	var results []monitor.Result
	for i := range 3 {
		results = append(results, monitor.Result{Server: "s", At: s.Time.Add(time.Duration(i) * time.Minute), Snapshot: s})
	}
	for _, kw := range []string{keyword, ""} {
		r := report.Build(report.Input{
			From: s.Time.Add(-time.Hour), To: s.Time.Add(time.Hour), Generated: s.Time, Keyword: kw,
			Servers: []report.ServerInput{{Name: "s", Points: report.PointsFromResults(results, kw), Attempts: 3, MemTotalBytes: memTotal}},
		})
		if err := r.WriteJSON(io.Discard); err != nil {
			t.Fatalf("keyword %q: %v", kw, err)
		}
		if err := r.WriteHTML(io.Discard); err != nil {
			t.Fatalf("keyword %q: %v", kw, err)
		}
	}
}

// FuzzCheckFigures sets a real probe's snapshot's figures to any values
// (negative, NaN, infinite, huge, parts above their whole) and holds what
// check lets through to the same: the report prints it, as JSON and HTML.
func FuzzCheckFigures(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("..", "..", "probe", "snapshot", "testdata", "probe-output-v2.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(50.0, 1.5, 2.12, uint64(1<<34), uint64(1<<30), 3, uint64(1<<28), 12.5, 10, 4.4, 1e6, uint64(100), uint64(1000), 40.0, 2)
	f.Add(100.0, 0.0, 0.0, uint64(0), uint64(0), 0, uint64(0), 0.0, 0, 0.0, 0.0, uint64(0), uint64(0), 0.0, 0)
	f.Fuzz(func(t *testing.T, cpu, load1, memPct float64, total, used uint64, count int, rss uint64, groupCPU float64,
		running int, psi, net float64, fds, fdMax uint64, fsPct float64, cpus int) {
		s, err := snapshot.Unmarshal(data)
		if err != nil {
			t.Fatal(err)
		}
		s.CPU.Percent, s.CPU.Load1, s.CPU.LogicalCount, s.CPU.Count = cpu, load1, cpus, cpus
		s.Memory.UsedPercent, s.Memory.Total, s.Memory.Used = memPct, total, used
		m := &s.Processes.Matched[1]
		m.Count, m.RSSBytes, m.CPUPercent, m.FDs = count, rss, groupCPU, int(fds)
		s.Processes.MatchedTotal = count
		s.RunQueue.Running = running
		s.Pressure.CPU.SomeStallPercent, s.Pressure.Memory.SomeAvg10 = &psi, psi
		s.Network.RxBytesPerSecond = net
		s.FileDescriptors.Allocated, s.FileDescriptors.Max = fds, fdMax
		if len(s.Filesystems.Mounts) > 0 {
			s.Filesystems.Mounts[0].UsedPercent = fsPct
		}
		if err := check(s, []string{"python", "bash"}, s.Time); err != nil {
			return
		}
		reportPrints(t, s, "bash", total)
	})
}
