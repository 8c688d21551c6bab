package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
	"github.com/crawlerfleet/collector/store"
)

// The golden data set of TestReportFiguresFromTheStore: five days of one
// snapshot an hour, at 20 past, where memory and CPU follow the python
// count exactly and a node count varies on its own.
const goldenHours = 5 * 24

var goldenFrom = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

func goldenPython(i int) int { return 4 + (i*5)%17 } // 4..20; 20 first at hour 10
func goldenNode(i int) int   { return (i * 3) % 7 }  // 2 at hour 10

func goldenResults() []monitor.Result {
	var out []monitor.Result
	for i := range goldenHours {
		out = append(out, goldenResult(i, goldenFrom.Add(time.Duration(i)*time.Hour+20*time.Minute)))
	}
	// A second snapshot in the first hour, on the same line: a raw series
	// has one point more than the hourly one.
	return append(out, goldenResult(0, goldenFrom.Add(40*time.Minute)))
}

func goldenResult(i int, at time.Time) monitor.Result {
	python, node := goldenPython(i), goldenNode(i)
	return monitor.Result{Server: "crawl", At: at, Duration: time.Second, Snapshot: &snapshot.Snapshot{
		Version: snapshot.Version, Time: at, Hostname: "crawl",
		CPU:    snapshot.CPU{Count: 4, LogicalCount: 8, Percent: 5 + 1.5*float64(python), Load1: float64(python) / 4},
		Memory: snapshot.Memory{Total: 16 << 30, UsedPercent: 10 + 2.5*float64(python), Available: uint64((85 - 2.5*float64(python)) / 100 * (16 << 30))},
		// 30 + hour of day: 53 at 23:20 each day, the first day's wins.
		Disk: snapshot.Disk{Path: "/", Total: 100 << 30, UsedPercent: 30 + float64(i%24)},
		Processes: snapshot.Processes{Total: 300, MatchedTotal: python + node, Matched: []snapshot.Match{
			{Keyword: "python", Count: python, PIDs: []int32{}}, {Keyword: "node", Count: node, PIDs: []int32{}}}},
	}}
}

// goldenFigures is what the test reads of the report's JSON.
type goldenFigures struct {
	Servers []struct {
		Peaks map[string]*struct {
			Value float64   `json:"value"`
			At    time.Time `json:"at"`
			Procs *int      `json:"procs"`
		} `json:"peaks"`
		Mem      goldenFit        `json:"mem_fit"`
		CPU      goldenFit        `json:"cpu_fit"`
		Capacity []goldenCapacity `json:"capacity"`
	} `json:"servers"`
}

// goldenCapacity is what the tests read of a capacity.
type goldenCapacity struct {
	Keyword   string `json:"keyword"`
	Headline  string `json:"headline"`
	Known     bool   `json:"known"`
	Now       int    `json:"now"`
	More      int    `json:"more"`
	Low       int    `json:"low"`
	High      int    `json:"high"`
	Total     int    `json:"total"`
	Limit     string `json:"limit"`
	Saturated bool   `json:"saturated"`
	Resources []struct {
		Name string `json:"name"`
		Peak *struct {
			Value float64 `json:"value"`
			Procs *int    `json:"procs"`
		} `json:"peak"`
		Measured *struct {
			Median float64 `json:"median"`
			P95    float64 `json:"p95"`
		} `json:"measured"`
		Fitted *struct {
			Status string  `json:"status"`
			Slope  float64 `json:"slope"`
			R2     float64 `json:"r2"`
		} `json:"fitted"`
		Cost       float64 `json:"cost"`
		Ceiling    *int    `json:"ceiling"`
		Saturation *struct {
			Count   int                `json:"count"`
			Figures map[string]float64 `json:"figures"`
			Detail  string             `json:"detail"`
		} `json:"saturation"`
	} `json:"resources"`
	Throughput *struct {
		Status      string   `json:"status"`
		Knee        *float64 `json:"knee"`
		KneeVisible bool     `json:"knee_visible"`
		Sigma       float64  `json:"sigma"`
		Kappa       float64  `json:"kappa"`
		Text        string   `json:"text"`
	} `json:"throughput"`
}

type goldenFit struct {
	Status    string  `json:"status"`
	N         int     `json:"n"`
	Slope     float64 `json:"slope"`
	Intercept float64 `json:"intercept"`
	R2        float64 `json:"r2"`
	Headroom  int     `json:"headroom"`
	Threshold float64 `json:"threshold"`
}

func (f goldenFit) near(g goldenFit) bool {
	return f.Status == g.Status && f.N == g.N && near(f.Slope, g.Slope) && near(f.Intercept, g.Intercept) &&
		near(f.R2, g.R2) && f.Headroom == g.Headroom && f.Threshold == g.Threshold
}

// TestReportFiguresFromTheStore writes the golden data set through the
// store's write path into the embedded store and checks the report's
// figures exactly: over the first 48 hours (raw snapshots) and over all
// five days (hourly rollups), counting python processes, and over all
// matched processes, where the node count blurs the fit.
func TestReportFiguresFromTheStore(t *testing.T) {
	h := newHarness(t)
	section, dataDir := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("crawl", "")+section+
		"\n[alerts]\nmemory = { above = 80 }\ncpu = { above = 95 }\n")

	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeResults(ctx, st, goldenResults()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}

	report := func(t *testing.T, hours int, keyword string) goldenFigures {
		t.Helper()
		args := []string{"report", "--from", goldenFrom.Format(time.RFC3339), "--to", goldenFrom.Add(time.Duration(hours) * time.Hour).Format(time.RFC3339),
			"--format", "json", "--out", "-"}
		if keyword != "" {
			args = append(args, "--keyword", keyword)
		}
		code, stdout, stderr := h.run(args...)
		if code != exitOK {
			t.Fatalf("report: exit %d\n%s", code, stderr)
		}
		var f goldenFigures
		if err := json.Unmarshal([]byte(stdout), &f); err != nil || len(f.Servers) != 1 {
			t.Fatalf("report JSON: %v\n%s", err, stdout)
		}
		return f
	}

	peakAt := goldenFrom.Add(10*time.Hour + 20*time.Minute)
	for _, tc := range []struct {
		name   string
		hours  int
		points int
		now    int // the python count of the last hour
	}{
		{"48 hours from raw snapshots", 48, 49, goldenPython(47)},
		{"5 days from hourly rollups", goldenHours, goldenHours, goldenPython(goldenHours - 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := report(t, tc.hours, "python").Servers[0]
			for _, p := range []struct {
				metric string
				value  float64
				at     time.Time
				procs  int
			}{
				{"cpu", 35, peakAt, 20},
				{"mem", 60, peakAt, 20},
				{"load1", 5, peakAt, 20},
				{"disk", 53, goldenFrom.Add(23*time.Hour + 20*time.Minute), goldenPython(23)},
			} {
				got := s.Peaks[p.metric]
				if got == nil || got.Value != p.value || !got.At.Equal(p.at) || got.Procs == nil || *got.Procs != p.procs {
					t.Errorf("%s peak = %+v, want %v at %s with %d python processes", p.metric, got, p.value, p.at, p.procs)
				}
			}
			for _, f := range []struct {
				name      string
				got, want goldenFit
			}{
				// (80 − 60) / 2.5 = 8 more before memory reaches 80 %.
				{"memory", s.Mem, goldenFit{"ok", tc.points, 2.5, 10, 1, 8, 80}},
				// (95 − 35) / 1.5 = 40 more before CPU reaches 95 %.
				{"CPU", s.CPU, goldenFit{"ok", tc.points, 1.5, 5, 1, 40, 95}},
			} {
				if !f.got.near(f.want) {
					t.Errorf("%s fit = %+v, want %+v", f.name, f.got, f.want)
				}
			}
			// 20 at the memory peak of 60 %, + 8 before 80 %: 28 in all.
			if len(s.Capacity) != 1 {
				t.Fatalf("capacity for %d keywords, want python alone", len(s.Capacity))
			}
			c := s.Capacity[0]
			if !c.Known || c.Keyword != "python" || c.Total != 28 || c.Limit != "memory" || c.Now != tc.now || c.More != 28-tc.now {
				t.Errorf("capacity = %+v, want 28 in all, limited by memory, %d now", c, tc.now)
			}
		})
	}

	t.Run("all matched processes", func(t *testing.T) {
		s := report(t, goldenHours, "").Servers[0]
		// At the peak, 20 python and 2 node processes ran.
		if p := s.Peaks["mem"]; p == nil || p.Procs == nil || *p.Procs != 22 {
			t.Errorf("memory peak = %+v, want 22 matched processes", p)
		}
		if s.Mem.R2 > 0.99 {
			t.Errorf("memory fit R² %v over all matched processes; the node count should blur it", s.Mem.R2)
		}
	})
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestReportRange: --since, --from and --to each take a duration or a
// date/time, as the API's since= and until= do.
func TestReportRange(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.Local)
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.Local) }
	for _, tc := range []struct {
		o        reportOptions
		from, to time.Time
	}{
		{reportOptions{since: "7d"}, now.Add(-7 * 24 * time.Hour), now},
		{reportOptions{since: "2026-03-01"}, day(1), now},
		{reportOptions{since: "24h", to: "2026-03-05"}, day(4), day(5)},
		{reportOptions{from: "2026-03-01", to: "2d"}, day(1), now.Add(-48 * time.Hour)},
		{reportOptions{from: "3d", to: "2026-03-10T00:00:00Z"}, now.Add(-72 * time.Hour), time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)},
	} {
		from, to, err := reportRange(tc.o, now)
		if err != nil || !from.Equal(tc.from) || !to.Equal(tc.to) {
			t.Errorf("%+v: %v to %v, %v; want %v to %v", tc.o, from, to, err, tc.from, tc.to)
		}
	}
	if _, _, err := reportRange(reportOptions{since: "soon"}, now); err == nil || !strings.Contains(err.Error(), "--since: \"soon\" is neither") {
		t.Errorf("bad --since: %v", err)
	}
}
