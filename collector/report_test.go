package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
	"github.com/crawlerfleet/collector/store"
)

// TestReportKeywordFitFromRollups writes five days of hourly snapshots
// through the store's write path, where memory follows the python count
// exactly and a second keyword's count varies on its own, and reports them
// over a range long enough to read rollups only: with --keyword python the
// fit finds the python cost exactly; over all matched processes it cannot.
func TestReportKeywordFitFromRollups(t *testing.T) {
	h := newHarness(t)
	section, dataDir := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("crawl", "")+section)

	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	const hours = 5 * 24
	var results []store.Result
	for i := range hours {
		at := from.Add(time.Duration(i)*time.Hour + 20*time.Minute)
		python, node := 4+(i*5)%17, (i*3)%7
		results = append(results, store.Result{Server: "crawl", At: at, Duration: time.Second, Snapshot: &snapshot.Snapshot{
			Version: snapshot.Version, Time: at, Hostname: "crawl",
			CPU:    snapshot.CPU{Count: 4, LogicalCount: 8, Percent: 5 + 1.5*float64(python)},
			Memory: snapshot.Memory{Total: 16 << 30, UsedPercent: 10 + 2.5*float64(python)},
			Disk:   snapshot.Disk{Path: "/", Total: 100 << 30, UsedPercent: 40},
			Processes: snapshot.Processes{Total: 300, MatchedTotal: python + node, Matched: []snapshot.Match{
				{Keyword: "python", Count: python, PIDs: []int32{}}, {Keyword: "node", Count: node, PIDs: []int32{}}}},
		}})
	}
	if err := st.Write(ctx, results); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}

	fit := func(keyword string) (slope, r2 float64) {
		t.Helper()
		args := []string{"report", "--from", from.Format(time.RFC3339), "--to", from.Add(hours * time.Hour).Format(time.RFC3339), "--format", "json", "--out", "-"}
		if keyword != "" {
			args = append(args, "--keyword", keyword)
		}
		code, stdout, stderr := h.run(args...)
		if code != exitOK {
			t.Fatalf("report: exit %d\n%s", code, stderr)
		}
		var figures struct {
			Servers []struct {
				Mem struct {
					N     int     `json:"n"`
					Slope float64 `json:"slope"`
					R2    float64 `json:"r2"`
				} `json:"mem_fit"`
			} `json:"servers"`
		}
		if err := json.Unmarshal([]byte(stdout), &figures); err != nil || len(figures.Servers) != 1 {
			t.Fatalf("report JSON: %v\n%s", err, stdout)
		}
		m := figures.Servers[0].Mem
		if m.N != hours {
			t.Errorf("keyword %q: the fit has %d points, want one per hour (%d)", keyword, m.N, hours)
		}
		return m.Slope, m.R2
	}
	if slope, r2 := fit("python"); math.Abs(slope-2.5) > 1e-9 || math.Abs(r2-1) > 1e-9 {
		t.Errorf("--keyword python: memory slope %v, R² %v; want 2.5 and 1", slope, r2)
	}
	if _, r2 := fit(""); r2 > 0.99 {
		t.Errorf("all matched processes: R² %v; the node count should blur the fit", r2)
	}
}
