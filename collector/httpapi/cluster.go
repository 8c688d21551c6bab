package httpapi

import "github.com/prometheus/client_golang/prometheus"

// ClusterFigures are what /metrics shows of this collector's part in a
// cluster of collectors.
type ClusterFigures struct {
	Members   int   // live members, as last read
	Owned     int   // servers this member owns now
	Fenced    bool  // it may not probe or notify now
	Scheduled int64 // probes its schedule asked of it since it started
	Done      int64 // of those, the ones that ended
}

// SetCluster exports the figures of f, read at each scrape, as
// collector_cluster_members, collector_cluster_owned_servers,
// collector_cluster_fenced, collector_cluster_probes_scheduled_total and
// collector_cluster_probes_done_total. Call it once, for a collector that
// is a member of a cluster.
func (s *Server) SetCluster(f func() ClusterFigures) {
	for _, m := range []struct {
		name, help string
		v          func(ClusterFigures) float64
		counter    bool
	}{
		{"collector_cluster_members", "Live members of the cluster of collectors, as this one last read them.",
			func(c ClusterFigures) float64 { return float64(c.Members) }, false},
		{"collector_cluster_owned_servers", "Servers this collector owns now, of the inventory's.",
			func(c ClusterFigures) float64 { return float64(c.Owned) }, false},
		{"collector_cluster_fenced", "1 while this collector may not probe or notify: its heartbeat was not renewed in time.",
			func(c ClusterFigures) float64 {
				if c.Fenced {
					return 1
				}
				return 0
			}, false},
		{"collector_cluster_probes_scheduled_total", "Probes the schedule asked of this collector (servers it owned at their slot) since it started.",
			func(c ClusterFigures) float64 { return float64(c.Scheduled) }, true},
		{"collector_cluster_probes_done_total", "Probes of those that ended, successful or not.",
			func(c ClusterFigures) float64 { return float64(c.Done) }, true},
	} {
		v := m.v
		read := func() float64 { return v(f()) }
		if m.counter {
			s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, read))
		} else {
			s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.name, Help: m.help}, read))
		}
	}
}
