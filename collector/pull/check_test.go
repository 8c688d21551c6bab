package pull

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	valid := func() *snapshot.Snapshot {
		return &snapshot.Snapshot{
			Version: snapshot.Version, Time: now.Add(-time.Second), Hostname: "web1",
			CPU:    snapshot.CPU{Count: 2, LogicalCount: 4, Percent: 37.5, Load1: 1.5, Load5: 1, Load15: 0.5},
			Memory: snapshot.Memory{Total: 8 << 30, Used: 3 << 30, Free: 1 << 30, Available: 5 << 30, Buffers: 1 << 20, Cached: 2 << 30, UsedPercent: 37.5},
			Disk:   snapshot.Disk{Path: "/", Total: 100 << 30, Used: 40 << 30, Free: 60 << 30, UsedPercent: 40},
			Processes: snapshot.Processes{Total: 200, MatchedTotal: 3, Matched: []snapshot.Match{
				{Keyword: "python", Count: 3, PIDs: []int32{1, 2, 3}, RSSBytes: 1 << 30, CPUPercent: 150},
			}},
		}
	}
	for _, tc := range []struct {
		name   string
		mangle func(s *snapshot.Snapshot)
		want   string // "" for valid
	}{
		{"valid", func(*snapshot.Snapshot) {}, ""},
		{"idle and empty", func(s *snapshot.Snapshot) {
			s.CPU.Percent, s.Memory.UsedPercent, s.Disk.UsedPercent = 0, 100, 100
			s.Processes = snapshot.Processes{Total: 1, Matched: []snapshot.Match{}}
		}, ""},
		{"cpu 1e308", func(s *snapshot.Snapshot) { s.CPU.Percent = 1e308 }, "cpu.percent = 1e+308 (want 0 to 100)"},
		{"memory -50 %", func(s *snapshot.Snapshot) { s.Memory.UsedPercent = -50 }, "memory.used_percent = -50 (want 0 to 100)"},
		{"used 10 × total", func(s *snapshot.Snapshot) { s.Memory.Used = 10 * s.Memory.Total }, "memory.used = 85899345920 is more than memory.total = 8589934592"},
		{"disk free > total", func(s *snapshot.Snapshot) { s.Disk.Free = s.Disk.Total + 1 }, "disk.free = 107374182401 is more than disk.total"},
		{"NaN load", func(s *snapshot.Snapshot) { s.CPU.Load5 = math.NaN() }, "cpu.load5 = NaN"},
		{"huge load", func(s *snapshot.Snapshot) { s.CPU.Load1 = 1e308 }, "cpu.load1 = 1e+308 (want 0 to 1e+06)"},
		{"year 9999", func(s *snapshot.Snapshot) { s.Time = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }, "time = 9999-01-01T00:00:00Z"},
		{"clock a day behind", func(s *snapshot.Snapshot) { s.Time = now.Add(-25 * time.Hour) }, "-25h0m0s from the collector's clock (at most 24h0m0s)"},
		{"clock an hour off is kept", func(s *snapshot.Snapshot) { s.Time = now.Add(time.Hour) }, ""},
		{"keyword never asked for", func(s *snapshot.Snapshot) {
			s.Processes.Matched = append(s.Processes.Matched, snapshot.Match{Keyword: "bitcoin", Count: 1})
		}, `processes.matched keyword "bitcoin" was not asked for`},
		{"more matched than processes", func(s *snapshot.Snapshot) { s.Processes.MatchedTotal = 201 }, "processes.matched_total = 201 is more than processes.total = 200"},
		{"negative count", func(s *snapshot.Snapshot) { s.Processes.Matched[0].Count = -1 }, `processes.matched["python"].count = -1`},
		{"pids past the count", func(s *snapshot.Snapshot) { s.Processes.Matched[0].Count = 2 }, `processes.matched["python"] lists 3 pids for a count of 2`},
		{"per-process cpu over a minute", func(s *snapshot.Snapshot) { s.ProcessCPUSeconds = 61.02 }, ""},
		{"per-process cpu over negative time", func(s *snapshot.Snapshot) { s.ProcessCPUSeconds = -3 }, "process_cpu_seconds = -3 (want a finite number, 0 or more)"},
		{"per-process cpu over infinite time", func(s *snapshot.Snapshot) { s.ProcessCPUSeconds = math.Inf(1) }, "process_cpu_seconds = +Inf"},
		{"a failed section is not checked", func(s *snapshot.Snapshot) {
			s.Memory = snapshot.Memory{UsedPercent: -1, Error: "read /proc/meminfo: permission denied"}
		}, ""},
		{"several at once", func(s *snapshot.Snapshot) {
			s.CPU.Percent, s.Memory.UsedPercent, s.Disk.UsedPercent, s.CPU.Load1, s.CPU.Load5 = 101, 101, 101, -1, -1
		}, "; and 2 more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := valid()
			tc.mangle(s)
			err := check(s, []string{"python", "node"}, now)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "implausible snapshot: ")):
				t.Errorf("check = %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckVersion2Sections(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	pct := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name string
		s    snapshot.Snapshot
		want string
	}{
		{"valid", snapshot.Snapshot{Time: now,
			Swap:     &snapshot.Swap{Total: 10, Used: 5, UsedPercent: 50},
			Pressure: &snapshot.Pressure{CPU: &snapshot.PSI{SomeAvg10: 42, SomeStallPercent: pct(40)}},
			Interval: &snapshot.Interval{CPU: &snapshot.Stat{Max: 100, Mean: 37}}}, ""},
		{"unsupported pressure is not checked", snapshot.Snapshot{Time: now,
			Pressure: &snapshot.Pressure{Error: "unsupported: no /proc/pressure"}}, ""},
		{"swap over total", snapshot.Snapshot{Time: now, Swap: &snapshot.Swap{Total: 10, Used: 50, UsedPercent: 50}}, "swap.used = 50 is more than swap.total = 10"},
		{"pressure 250", snapshot.Snapshot{Time: now, Pressure: &snapshot.Pressure{IO: &snapshot.PSI{SomeAvg10: 250}}}, "pressure.io.some_avg10 = 250"},
		{"interval cpu 1e308", snapshot.Snapshot{Time: now, Interval: &snapshot.Interval{CPU: &snapshot.Stat{Max: 1e308}}}, "interval.cpu.max = 1e+308"},
		{"filesystem -1 %", snapshot.Snapshot{Time: now, Filesystems: &snapshot.Filesystems{Mounts: []snapshot.Filesystem{{Path: "/data", UsedPercent: -1}}}}, `filesystems["/data"].used_percent = -1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.CPU.Error, s.Memory.Error, s.Disk.Error, s.Processes.Error = "x", "x", "x", "x"
			err := check(&s, nil, now)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("check = %v; want %q", err, tc.want)
			}
		})
	}
}
