package httpapi

import (
	"os"
	"strings"
	"testing"
)

// TestClusterMetrics: SetCluster's figures are read at each scrape, and
// every metric it adds is in the package doc's table.
func TestClusterMetrics(t *testing.T) {
	f := newFixture(t)
	s := New(f.opts)
	figures := ClusterFigures{Members: 3, Owned: 40, Scheduled: 400, Done: 398}
	s.SetCluster(func() ClusterFigures { return figures })
	check := func(want map[string]float64) {
		t.Helper()
		mfs := scrape(t, s)
		for name, w := range want {
			if got, ok := value(mfs, name); !ok || got != w {
				t.Errorf("%s = %v (present %v), want %v", name, got, ok, w)
			}
		}
	}
	check(map[string]float64{
		"collector_cluster_members": 3, "collector_cluster_owned_servers": 40, "collector_cluster_fenced": 0,
		"collector_cluster_probes_scheduled_total": 400, "collector_cluster_probes_done_total": 398,
	})
	figures = ClusterFigures{Members: 2, Fenced: true, Scheduled: 400, Done: 400}
	check(map[string]float64{"collector_cluster_members": 2, "collector_cluster_owned_servers": 0, "collector_cluster_fenced": 1,
		"collector_cluster_probes_done_total": 400})

	for name := range scrape(t, s) {
		if strings.HasPrefix(name, "collector_cluster_") && !strings.Contains(packageDoc(t), name) {
			t.Errorf("%s is not in the metrics table of doc.go", name)
		}
	}
}

// packageDoc returns doc.go's text.
func packageDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
