package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// scrape fetches /metrics from h and parses it with Prometheus' own text
// parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := do(t, h, "GET", "/metrics", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// value returns the value of the sample of name whose labels include
// labels (name, value pairs), and whether there is one.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.Label {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	s := New(f.opts)
	at := now.Add(-time.Minute)
	web1 := snap(at, 42.5, 61.25, 70, "python", 12, "node", 3)
	hostile := snap(at, 5, 6, 7, evil, 2)
	hostile.Disk.Error = "statfs /: permission denied"
	s.Observe([]monitor.Result{
		{Server: "web1", At: at.Add(-time.Minute), Duration: time.Second, Kind: monitor.KindTimeout},
		{Server: "web1", At: at, Duration: 1500 * time.Millisecond, Snapshot: web1},
		{Server: "web2", At: at.Add(-time.Hour), Duration: time.Second, Snapshot: snap(at, 1, 2, 3)},
		{Server: "web2", At: at, Duration: 10 * time.Second, Kind: monitor.KindUnreachable},
		{Server: "web2", At: at.Add(-30 * time.Second), Duration: 10 * time.Second, Kind: monitor.KindUnreachable},
		{Server: "web2", At: at.Add(-20 * time.Second), Duration: 10 * time.Second}, // no kind
		{Server: evil, At: at, Duration: time.Second, Snapshot: hostile},
		{Server: "gone", At: at, Duration: time.Second, Snapshot: snap(at, 1, 2, 3)}, // not in the inventory
	})
	s.ObserveRound(3 * time.Second)
	s.ObserveRound(45 * time.Second)
	spool := 4096.0
	s.SetGauges(Gauges{SpoolBytes: func() float64 { return spool }})
	s.SetGauges(Gauges{SpoolBytes: func() float64 { return spool }, OutboxPending: func() float64 { return 7 },
		StoreUp: func() float64 { return 0 }, ResultsLost: func() float64 { return 12 }}) // replaces the first

	mfs := scrape(t, s)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"collector_store_up", nil, 0},
		{"collector_results_lost_total", nil, 12},
		{"collector_up", []string{"server", "web1"}, 1},
		{"collector_up", []string{"server", "web2"}, 0},
		{"collector_up", []string{"server", evil}, 1},
		{"collector_cpu_busy_percent", []string{"server", "web1"}, 42.5},
		{"collector_cpu_logical", []string{"server", "web1"}, 8},
		{"collector_load1", []string{"server", "web1"}, 1.5},
		{"collector_load5", []string{"server", "web1"}, 1.25},
		{"collector_load15", []string{"server", "web1"}, 1},
		{"collector_memory_total_bytes", []string{"server", "web1"}, 16 << 30},
		{"collector_memory_used_bytes", []string{"server", "web1"}, float64(web1.Memory.Used)},
		{"collector_memory_available_bytes", []string{"server", "web1"}, float64(web1.Memory.Available)},
		{"collector_memory_used_percent", []string{"server", "web1"}, 61.25},
		{"collector_disk_total_bytes", []string{"server", "web1", "path", "/"}, 100 << 30},
		{"collector_disk_used_bytes", []string{"server", "web1", "path", "/"}, 70 << 30},
		{"collector_disk_used_percent", []string{"server", "web1", "path", "/"}, 70},
		{"collector_processes", []string{"server", "web1"}, 200},
		{"collector_processes_matched", []string{"server", "web1", "keyword", "python"}, 12},
		{"collector_processes_matched", []string{"server", "web1", "keyword", "node"}, 3},
		{"collector_processes_matched", []string{"server", evil, "keyword", evil}, 2},
		{"collector_probe_duration_seconds", []string{"server", "web1"}, 1.5},
		{"collector_probe_duration_seconds", []string{"server", "web2"}, 10},
		{"collector_failures_total", []string{"server", "web1", "kind", "timeout"}, 1},
		{"collector_failures_total", []string{"server", "web1", "kind", "auth"}, 0},
		{"collector_failures_total", []string{"server", "web2", "kind", "unreachable"}, 2},
		{"collector_failures_total", []string{"server", "web2", "kind", "unknown"}, 1},
		{"collector_last_success_timestamp_seconds", []string{"server", "web1"}, float64(at.Unix())},
		{"collector_last_success_timestamp_seconds", []string{"server", "web2"}, float64(at.Add(-time.Hour).Unix())},
		{"collector_spool_bytes", nil, 4096},
		{"collector_outbox_pending", nil, 7},
	} {
		got, ok := value(mfs, tc.name, tc.labels...)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}

	for _, tc := range []struct {
		name   string
		labels []string
	}{
		{"collector_cpu_busy_percent", []string{"server", "web2"}}, // down: no stale figures
		{"collector_disk_used_percent", []string{"server", evil}},  // the disk section failed
		{"collector_up", []string{"server", "web3"}},               // never observed
		{"collector_up", []string{"server", "gone"}},               // not in the inventory
		{"collector_failures_total", []string{"kind", "unknown", "server", "web1"}},
	} {
		if v, ok := value(mfs, tc.name, tc.labels...); ok {
			t.Errorf("%s%v = %v, want none", tc.name, tc.labels, v)
		}
	}
	if n := len(mfs["collector_failures_total"].Metric); n != 6+6+1+6 {
		t.Errorf("%d failure counters, want 6 kinds each for web1 and the hostile name, 7 for web2", n)
	}
	if mf := mfs["collector_failures_total"]; mf.GetType() != dto.MetricType_COUNTER {
		t.Errorf("collector_failures_total is a %v", mf.GetType())
	}

	round := mfs["collector_round_duration_seconds"]
	if round == nil || round.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("collector_round_duration_seconds: %v", round)
	}
	h := round.Metric[0].Histogram
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 48 {
		t.Errorf("round histogram count %d sum %v, want 2 and 48", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, b := range h.Bucket {
		want := uint64(0)
		switch {
		case b.GetUpperBound() >= 45:
			want = 2
		case b.GetUpperBound() >= 3:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("round bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Errorf("no Go runtime metrics")
	}

	// Reading at scrape time: the gauge follows its function.
	spool = 0
	if v, _ := value(scrape(t, s), "collector_spool_bytes"); v != 0 {
		t.Errorf("collector_spool_bytes = %v after the spool emptied", v)
	}
}

// TestMetricsUnknownKind: a failed result with no kind, or one not in
// monitor.Kinds, counts as "unknown", so labels stay bounded.
func TestMetricsUnknownKind(t *testing.T) {
	f := newFixture(t)
	s := New(f.opts)
	s.Observe([]monitor.Result{
		{Server: "web1", At: now, Err: errors.New("broken")},
		{Server: "web1", At: now.Add(time.Second), Kind: "error", Err: errors.New("old catch-all kind")},
		{Server: "web1", At: now.Add(2 * time.Second), Kind: monitor.KindProbe},
	})
	mfs := scrape(t, s)
	if v, ok := value(mfs, "collector_failures_total", "server", "web1", "kind", "unknown"); !ok || v != 2 {
		t.Errorf("unknown failures %v (%v), want 2", v, ok)
	}
	if v, ok := value(mfs, "collector_failures_total", "server", "web1", "kind", "probe"); !ok || v != 1 {
		t.Errorf("probe failures %v (%v), want 1", v, ok)
	}
	if _, ok := value(mfs, "collector_failures_total", "server", "web1", "kind", "error"); ok {
		t.Error(`a kind not in monitor.Kinds has its own label "error"`)
	}
	if n := len(mfs["collector_failures_total"].Metric); n != len(monitor.Kinds)+1 {
		t.Errorf("%d failure counters, want one per kind and unknown", n)
	}
}

func TestMetricsFollowInventory(t *testing.T) {
	f := newFixture(t)
	s := New(f.opts)
	at := now.Add(-time.Minute)
	s.Observe([]monitor.Result{
		{Server: "web1", At: at, Duration: time.Second, Snapshot: snap(at, 10, 20, 30, "python", 1)},
		{Server: "web2", At: at, Duration: time.Second, Snapshot: snap(at, 10, 20, 30, "python", 2)},
	})
	if _, ok := value(scrape(t, s), "collector_up", "server", "web1"); !ok {
		t.Fatal("web1 missing before its removal")
	}

	f.servers = f.servers[1:] // reload without web1
	mfs := scrape(t, s)
	for name, mf := range mfs {
		for _, m := range mf.Metric {
			if hasLabels(m, []string{"server", "web1"}) {
				t.Errorf("%s still has web1 after its removal", name)
			}
		}
	}
	if v, ok := value(mfs, "collector_processes_matched", "server", "web2", "keyword", "python"); !ok || v != 2 {
		t.Errorf("web2 python = %v (%v), want 2", v, ok)
	}

	// The next round forgets it; coming back, it starts afresh.
	s.Observe(nil)
	f.servers = newFixture(t).servers
	if _, ok := value(scrape(t, s), "collector_up", "server", "web1"); ok {
		t.Error("web1 kept its old figures across its removal")
	}
}

func TestMetricsNewestWins(t *testing.T) {
	f := newFixture(t)
	s := New(f.opts)
	at := now.Add(-time.Minute)
	// Out of order within and across rounds: the newest attempt decides.
	s.Observe([]monitor.Result{
		{Server: "web1", At: at, Duration: time.Second, Snapshot: snap(at, 80, 20, 30)},
		{Server: "web1", At: at.Add(-time.Minute), Duration: time.Second, Snapshot: snap(at, 10, 20, 30)},
	})
	s.Observe([]monitor.Result{{Server: "web1", At: at.Add(-2 * time.Minute), Kind: monitor.KindAuth}})
	mfs := scrape(t, s)
	if v, _ := value(mfs, "collector_cpu_busy_percent", "server", "web1"); v != 80 {
		t.Errorf("cpu %v, want 80 from the newest snapshot", v)
	}
	if v, _ := value(mfs, "collector_up", "server", "web1"); v != 1 {
		t.Errorf("up %v, want 1: the failure is older", v)
	}
	if v, _ := value(mfs, "collector_failures_total", "server", "web1", "kind", "auth"); v != 1 {
		t.Errorf("auth failures %v, want 1: an old failure still counts", v)
	}

	// A snapshot whose sections failed exports what it has.
	broken := &snapshot.Snapshot{Version: snapshot.Version, Time: now,
		CPU: snapshot.CPU{Error: "x"}, Memory: snapshot.Memory{Error: "x"}, Disk: snapshot.Disk{Error: "x"},
		Processes: snapshot.Processes{Error: "x", Matched: []snapshot.Match{{Keyword: "a"}, {Keyword: "a"}}}}
	s.Observe([]monitor.Result{{Server: "web1", At: now, Snapshot: broken}})
	mfs = scrape(t, s)
	if v, ok := value(mfs, "collector_up", "server", "web1"); !ok || v != 1 {
		t.Errorf("up %v (%v), want 1", v, ok)
	}
	for _, name := range []string{"collector_cpu_busy_percent", "collector_memory_used_percent", "collector_disk_used_percent", "collector_processes", "collector_processes_matched"} {
		if _, ok := value(mfs, name, "server", "web1"); ok {
			t.Errorf("%s exported from a failed section", name)
		}
	}

	// A keyword listed twice must not break the scrape.
	dup := snap(now, 1, 2, 3, "a", 1, "a", 2)
	s.Observe([]monitor.Result{{Server: "web1", At: now.Add(time.Second), Snapshot: dup}})
	if v, ok := value(scrape(t, s), "collector_processes_matched", "server", "web1", "keyword", "a"); !ok || v != 1 {
		t.Errorf("repeated keyword: %v (%v), want the first, 1", v, ok)
	}
}

// TestMetricsSaturation: the figures of schema version 2, every file
// system once, and none of them for a version-1 snapshot.
func TestMetricsSaturation(t *testing.T) {
	f := newFixture(t)
	s := New(f.opts)
	at := now.Add(-time.Minute)
	s.Observe([]monitor.Result{
		{Server: "web1", At: at, Duration: time.Second, Snapshot: withV2(snap(at, 42.5, 61.25, 70, "python", 12))},
		{Server: "web2", At: at, Duration: time.Second, Snapshot: snap(at, 1, 2, 3, "python", 1)},
	})
	mfs := scrape(t, s)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"collector_swap_pages_per_second", []string{"direction", "in", "server", "web1"}, 12},
		{"collector_swap_pages_per_second", []string{"direction", "out", "server", "web1"}, 3},
		{"collector_pressure_stall_percent", []string{"resource", "cpu", "server", "web1"}, 42},
		{"collector_pressure_stall_percent", []string{"resource", "memory", "server", "web1"}, 1.5},
		{"collector_pressure_stall_percent", []string{"resource", "io", "server", "web1"}, 4}, // the 10 s average
		{"collector_run_queue", []string{"server", "web1"}, 10},
		{"collector_blocked_tasks", []string{"server", "web1"}, 2},
		{"collector_network_bytes_per_second", []string{"direction", "rx", "server", "web1"}, 1e6},
		{"collector_file_handles_allocated", []string{"server", "web1"}, 3000},
		{"collector_file_handles_max", []string{"server", "web1"}, 100000},
		{"collector_tcp_sockets", []string{"server", "web1", "state", "time_wait"}, 7},
		{"collector_processes_matched_rss_bytes", []string{"keyword", "python", "server", "web1"}, 12 << 27},
		{"collector_processes_matched_cpu_percent", []string{"keyword", "python", "server", "web1"}, 90},
		{"collector_disk_used_percent", []string{"path", "/var/lib/crawl", "server", "web1"}, 20},
		{"collector_disk_used_percent", []string{"path", "/", "server", "web1"}, 70},
	} {
		got, ok := value(mfs, tc.name, tc.labels...)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if n := len(mfs["collector_disk_used_percent"].Metric); n != 3 {
		t.Errorf("%d disk series, want / and /var/lib/crawl of web1 and / of web2", n)
	}
	for _, name := range []string{"collector_swap_pages_per_second", "collector_run_queue", "collector_pressure_stall_percent"} {
		if _, ok := value(mfs, name, "server", "web2"); ok {
			t.Errorf("%s for web2, whose snapshot is of version 1", name)
		}
	}
}

// TestHistory: each server keeps its successful attempts of the last hour,
// in time order, each once, for the live page's sparklines.
func TestHistory(t *testing.T) {
	f := newFixture(t)
	s := New(f.opts)
	at := now.Add(-2 * time.Hour)
	var rs []monitor.Result
	for m := 0; m <= 120; m += 10 {
		rs = append(rs, monitor.Result{Server: "web1", At: at.Add(time.Duration(m) * time.Minute), Duration: time.Second,
			Snapshot: snap(at, float64(m)/2, 50, 60, "python", m/10)})
	}
	rs = append(rs, rs[len(rs)-1])                                                                            // again
	rs = append(rs, monitor.Result{Server: "web1", At: at.Add(115 * time.Minute), Kind: monitor.KindTimeout}) // failed
	rs[3], rs[9] = rs[9], rs[3]                                                                               // out of order
	s.Observe(rs)
	h := s.history("web1")
	if len(h) != 7 || !h[0].At.Equal(at.Add(60*time.Minute)) || !h[6].At.Equal(at.Add(120*time.Minute)) {
		t.Fatalf("history %d points from %v to %v, want 7 from 60 to 120 minutes", len(h), h[0].At, h[len(h)-1].At)
	}
	for i := 1; i < len(h); i++ {
		if !h[i].At.After(h[i-1].At) {
			t.Errorf("history out of order at %d", i)
		}
	}
	if *h[6].CPU != 60 || *h[6].Matched != 12 || *h[6].Memory != 50 {
		t.Errorf("newest point %+v", h[6])
	}
}
