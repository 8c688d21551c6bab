package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/crawlerfleet/collector/monitor"
)

// The Grafana dashboard and the Prometheus rules that deploy/ ships.
const (
	dashboardFile = "../../deploy/grafana/collector.json"
	rulesFile     = "../../deploy/prometheus/collector-rules.yml"
	rulesTestFile = "../../deploy/prometheus/collector-rules.test.yml"
)

// servedMetrics scrapes /metrics of a real server over HTTP, fed with a
// round of results (successes and failures) like the daemon's, and returns
// the metric families by name.
func servedMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	f := newFixture(t)
	s := New(f.opts)
	at := now.Add(-time.Minute)
	s.Observe([]monitor.Result{
		{Server: "web1", At: at, Duration: time.Second, Snapshot: withV2(snap(at, 42.5, 61.25, 70, "python", 12))},
		{Server: "web2", At: at, Duration: 10 * time.Second, Kind: monitor.KindUnreachable},
	})
	s.ObserveRound(3 * time.Second)
	zero := func() float64 { return 0 }
	s.SetGauges(Gauges{SpoolBytes: zero, OutboxPending: zero, StoreUp: zero, ResultsLost: zero})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

var metricRE = regexp.MustCompile(`\bcollector_[a-z0-9_]+`)

// served reports whether name is a metric /metrics serves: a family, or a
// histogram's _bucket, _sum or _count series.
func served(mfs map[string]*dto.MetricFamily, name string) bool {
	if mfs[name] != nil {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && mfs[base] != nil && mfs[base].GetType() == dto.MetricType_HISTOGRAM {
			return true
		}
	}
	return false
}

// dashboardQueries returns every query and legend of the dashboard.
func dashboardQueries(t *testing.T) (exprs, legends []string) {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok {
					switch k {
					case "expr", "definition":
						exprs = append(exprs, s)
					case "legendFormat":
						legends = append(legends, s)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return exprs, legends
}

// TestDeployMetricNames checks that every metric the Grafana dashboard and
// the Prometheus rules (and their unit tests) use is one /metrics serves,
// and every label a legend shows is one it has.
func TestDeployMetricNames(t *testing.T) {
	mfs := servedMetrics(t)
	labels := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				labels[l.GetName()] = true
			}
		}
	}
	exprs, legends := dashboardQueries(t)
	if len(exprs) < 10 {
		t.Fatalf("the dashboard has %d queries", len(exprs))
	}
	used := map[string][]string{} // metric -> files using it
	for _, e := range exprs {
		for _, m := range metricRE.FindAllString(e, -1) {
			used[m] = append(used[m], dashboardFile)
		}
	}
	for _, file := range []string{rulesFile, rulesTestFile} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricRE.FindAllString(string(data), -1) {
			used[m] = append(used[m], file)
		}
	}
	for m, files := range used {
		if !served(mfs, m) {
			t.Errorf("%s uses %s, which /metrics does not serve", slices.Compact(files)[0], m)
		}
	}
	for _, want := range []string{"collector_up", "collector_cpu_busy_percent", "collector_memory_used_percent",
		"collector_disk_used_percent", "collector_processes_matched", "collector_failures_total"} {
		if !slices.Contains(used[want], dashboardFile) {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	for _, l := range legends {
		for _, m := range regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`).FindAllStringSubmatch(l, -1) {
			if !labels[m[1]] {
				t.Errorf("legend %q shows the label %s, which no metric has", l, m[1])
			}
		}
	}
}

// TestPrometheusRules runs promtool on the rules and their unit tests. It
// skips without promtool (Debian's prometheus package; make deps installs
// it), but fails instead under CI.
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found (install Debian's prometheus package, or run make deps)"
		if os.Getenv("CI") == "true" || os.Getenv("COLLECTOR_TEST_DISALLOW_SKIP") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
