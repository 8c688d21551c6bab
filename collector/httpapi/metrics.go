package httpapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// kindUnknown labels the failures of a result whose Kind is empty or not
// one of monitor.Kinds.
const kindUnknown = "unknown"

// serverState is what /metrics shows of one server.
type serverState struct {
	at       time.Time // of the newest attempt
	duration time.Duration
	snap     *snapshot.Snapshot // of the newest attempt; nil when it failed
	success  time.Time          // of the newest successful attempt
	failures map[string]float64 // by kind, since the collector started
	// history holds the successful attempts of the last HistoryLength,
	// oldest first, for the live page's sparklines.
	history []HistoryPoint
}

// HistoryLength is how far back a server's history on /api/servers goes.
const HistoryLength = time.Hour

// maxHistory bounds the history kept per server (an attempt every 5 s).
const maxHistory = 720

// A HistoryPoint is one successful attempt in a server's recent history:
// CPU and memory percent and the matched processes, null where that
// section failed.
type HistoryPoint struct {
	At      time.Time `json:"at"`
	CPU     *float64  `json:"cpu"`
	Memory  *float64  `json:"memory"`
	Matched *int      `json:"matched"`
}

// record adds a successful attempt to the history and drops what is older
// than HistoryLength before it.
func (st *serverState) record(r monitor.Result) {
	p := HistoryPoint{At: r.At.UTC()}
	if s := r.Snapshot; s.CPU.Error == "" {
		v := s.CPU.Percent
		p.CPU = &v
	}
	if s := r.Snapshot; s.Memory.Error == "" {
		v := s.Memory.UsedPercent
		p.Memory = &v
	}
	if s := r.Snapshot; s.Processes.Error == "" {
		v := s.Processes.MatchedTotal
		p.Matched = &v
	}
	i := len(st.history)
	for i > 0 && st.history[i-1].At.After(p.At) {
		i--
	}
	if i > 0 && st.history[i-1].At.Equal(p.At) {
		return // the same attempt twice
	}
	st.history = append(st.history, HistoryPoint{})
	copy(st.history[i+1:], st.history[i:])
	st.history[i] = p
	cut := st.history[len(st.history)-1].At.Add(-HistoryLength)
	drop := 0
	for drop < len(st.history) && (st.history[drop].At.Before(cut) || len(st.history)-drop > maxHistory) {
		drop++
	}
	st.history = append(st.history[:0], st.history[drop:]...)
}

// roundBuckets suit rounds of a second to a few minutes.
var roundBuckets = []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300}

func (s *Server) initMetrics() {
	s.reg = prometheus.NewRegistry()
	s.round = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "collector_round_duration_seconds",
		Help:    "How long each round of the daemon took, probing and storing.",
		Buckets: roundBuckets,
	})
	s.reg.MustRegister(
		s.round,
		fleetCollector{s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	s.metrics = promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{s},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// promLogger sends promhttp's errors to the server's logger.
type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) {
	l.s.o.Logger.Error("serve metrics", "err", v)
}

// Observe records a round's results for /metrics: the newest attempt per
// server, the newest successful one, and failures counted by kind (a
// failed result whose Kind is empty or unknown counts as "unknown").
// Results older than what a server already has only count their failure.
// Servers no longer in the inventory are forgotten.
func (s *Server) Observe(results []monitor.Result) {
	inv := map[string]bool{}
	for _, srv := range s.o.Servers() {
		inv[srv.Name] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range results {
		st := s.latest[r.Server]
		if st == nil {
			st = &serverState{failures: map[string]float64{}}
			s.latest[r.Server] = st
		}
		if r.Failed() {
			kind := string(r.Kind)
			if !r.Kind.Valid() {
				kind = kindUnknown
			}
			st.failures[kind]++
		} else {
			if r.At.After(st.success) {
				st.success = r.At
			}
			st.record(r)
		}
		if !st.at.IsZero() && r.At.Before(st.at) {
			continue
		}
		st.at, st.duration, st.snap = r.At, r.Duration, r.Snapshot
	}
	for name := range s.latest {
		if !inv[name] {
			delete(s.latest, name)
		}
	}
}

// history returns a copy of server's recent history, oldest first.
func (s *Server) history(server string) []HistoryPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.latest[server]; st != nil {
		return append([]HistoryPoint{}, st.history...)
	}
	return []HistoryPoint{}
}

// ObserveRound records how long a round took.
func (s *Server) ObserveRound(d time.Duration) { s.round.Observe(d.Seconds()) }

// Gauges are the daemon-wide figures /metrics exports, read from the
// functions at each scrape; a nil function exports nothing.
type Gauges struct {
	// SpoolBytes: collector_spool_bytes, results in the spool waiting for
	// the database.
	SpoolBytes func() float64
	// OutboxPending: collector_outbox_pending, notifications not yet
	// delivered.
	OutboxPending func() float64
	// StoreUp: collector_store_up, 1 while the database takes writes.
	StoreUp func() float64
	// ResultsLost: collector_results_lost_total, a counter of results kept
	// nowhere (neither the database nor the spool took them).
	ResultsLost func() float64
}

// SetGauges exports the daemon-wide figures of g. A second call replaces
// the first.
func (s *Server) SetGauges(g Gauges) {
	s.gaugeMu.Lock()
	defer s.gaugeMu.Unlock()
	for _, c := range s.gauges {
		s.reg.Unregister(c)
	}
	s.gauges = nil
	for _, m := range []struct {
		name, help string
		f          func() float64
		counter    bool
	}{
		{"collector_spool_bytes", "Bytes of results in the spool, waiting for the database.", g.SpoolBytes, false},
		{"collector_outbox_pending", "Notifications queued in the outbox, not yet delivered.", g.OutboxPending, false},
		{"collector_store_up", "1 while the database takes writes, 0 while results wait in the spool for it.", g.StoreUp, false},
		{"collector_results_lost_total", "Results kept nowhere since the collector started: neither the database nor the spool took them.", g.ResultsLost, true},
	} {
		if m.f == nil {
			continue
		}
		var c prometheus.Collector
		if m.counter {
			c = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, m.f)
		} else {
			c = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.name, Help: m.help}, m.f)
		}
		s.reg.MustRegister(c)
		s.gauges = append(s.gauges, c)
	}
}

// The per-server metrics, emitted at scrape time by fleetCollector.
var (
	labelServer = []string{"server"}

	descUp            = desc("collector_up", "1 when the newest probe attempt of the server succeeded, 0 when it failed.", labelServer)
	descCPUBusy       = desc("collector_cpu_busy_percent", "CPU busy percent over the probe's sample window, all CPUs.", labelServer)
	descCPULogical    = desc("collector_cpu_logical", "Logical CPUs (hardware threads).", labelServer)
	descLoad1         = desc("collector_load1", "Load average over 1 minute.", labelServer)
	descLoad5         = desc("collector_load5", "Load average over 5 minutes.", labelServer)
	descLoad15        = desc("collector_load15", "Load average over 15 minutes.", labelServer)
	descMemTotal      = desc("collector_memory_total_bytes", "Memory size in bytes.", labelServer)
	descMemUsed       = desc("collector_memory_used_bytes", "Memory used in bytes.", labelServer)
	descMemAvailable  = desc("collector_memory_available_bytes", "Memory available to new processes in bytes.", labelServer)
	descMemUsedPct    = desc("collector_memory_used_percent", "Memory used percent.", labelServer)
	descDiskTotal     = desc("collector_disk_total_bytes", "File system size in bytes.", []string{"server", "path"})
	descDiskUsed      = desc("collector_disk_used_bytes", "File system space used in bytes.", []string{"server", "path"})
	descDiskUsedPct   = desc("collector_disk_used_percent", "File system space used percent.", []string{"server", "path"})
	descProcesses     = desc("collector_processes", "Processes on the server.", labelServer)
	descMatched       = desc("collector_processes_matched", "Processes whose name or command line contains the keyword.", []string{"server", "keyword"})
	descProbeDuration = desc("collector_probe_duration_seconds", "Duration of the newest probe attempt, connecting included.", labelServer)
	descFailures      = desc("collector_failures_total", "Failed probe attempts by kind since the collector started.", []string{"server", "kind"})
	descLastSuccess   = desc("collector_last_success_timestamp_seconds", "Unix time of the newest successful probe attempt.", labelServer)

	// Saturation figures of snapshot schema version 2.
	descSwapPages   = desc("collector_swap_pages_per_second", "Pages swapped in and out per second over the sample window.", []string{"server", "direction"})
	descPressure    = desc("collector_pressure_stall_percent", "Share of time some task stalled on the resource (pressure stall information), over the sample window where measured, else the kernel's 10-second average.", []string{"server", "resource"})
	descRunQueue    = desc("collector_run_queue", "Runnable tasks at the end of the sample window (procs_running), the probe itself left out.", labelServer)
	descBlocked     = desc("collector_blocked_tasks", "Tasks blocked waiting for I/O (procs_blocked).", labelServer)
	descNetBytes    = desc("collector_network_bytes_per_second", "Bytes received or sent per second over all non-loopback interfaces.", []string{"server", "direction"})
	descFDAllocated = desc("collector_file_handles_allocated", "File handles in use, system-wide.", labelServer)
	descFDMax       = desc("collector_file_handles_max", "The system's file handle limit (fs.file-max).", labelServer)
	descMatchedRSS  = desc("collector_processes_matched_rss_bytes", "Resident memory of the processes matching the keyword, summed.", []string{"server", "keyword"})
	descMatchedCPU  = desc("collector_processes_matched_cpu_percent", "CPU of the processes matching the keyword, summed, in percent of one CPU.", []string{"server", "keyword"})
	descTCPSockets  = desc("collector_tcp_sockets", "TCP sockets by state.", []string{"server", "state"})
)

func desc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// fleetCollector emits the newest result of each server in the
// current inventory at scrape time: a server removed from the inventory
// disappears at once. The resource gauges come only from a successful
// newest attempt: a server that is down has collector_up 0 and no stale
// figures.
type fleetCollector struct{ s *Server }

func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descUp, descCPUBusy, descCPULogical, descLoad1, descLoad5, descLoad15,
		descMemTotal, descMemUsed, descMemAvailable, descMemUsedPct,
		descDiskTotal, descDiskUsed, descDiskUsedPct, descProcesses, descMatched,
		descProbeDuration, descFailures, descLastSuccess,
		descSwapPages, descPressure, descRunQueue, descBlocked, descNetBytes, descFDAllocated, descFDMax,
		descMatchedRSS, descMatchedCPU, descTCPSockets,
	} {
		ch <- d
	}
}

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	servers := c.s.o.Servers()
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	seen := map[string]bool{}
	for _, srv := range servers {
		name := srv.Name
		st := c.s.latest[name]
		if st == nil || seen[name] {
			continue
		}
		seen[name] = true
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
		}
		up := 0.0
		if st.snap != nil {
			up = 1
		}
		gauge(descUp, up)
		gauge(descProbeDuration, st.duration.Seconds())
		if !st.success.IsZero() {
			gauge(descLastSuccess, float64(st.success.UnixMilli())/1e3)
		}
		// Every kind from 0, so that increase() sees a server's first
		// failure; "unknown" only once a result had no known kind.
		for _, kind := range monitor.Kinds {
			ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, st.failures[string(kind)], name, string(kind))
		}
		if n, ok := st.failures[kindUnknown]; ok {
			ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, n, name, kindUnknown)
		}
		if st.snap != nil {
			snapshotMetrics(st.snap, gauge)
		}
	}
}

// snapshotMetrics emits the figures of the sections of snap that were read.
func snapshotMetrics(snap *snapshot.Snapshot, gauge func(d *prometheus.Desc, v float64, labels ...string)) {
	if cpu := snap.CPU; cpu.Error == "" {
		gauge(descCPUBusy, cpu.Percent)
		gauge(descCPULogical, float64(cpu.LogicalCount))
		gauge(descLoad1, cpu.Load1)
		gauge(descLoad5, cpu.Load5)
		gauge(descLoad15, cpu.Load15)
	}
	if m := snap.Memory; m.Error == "" {
		gauge(descMemTotal, float64(m.Total))
		gauge(descMemUsed, float64(m.Used))
		gauge(descMemAvailable, float64(m.Available))
		gauge(descMemUsedPct, m.UsedPercent)
	}
	// Every local file system (schema version 2), else the root one.
	paths := map[string]bool{}
	if fs := snap.Filesystems; fs != nil && fs.Error == "" {
		for _, m := range fs.Mounts {
			if m.Error == "" && !paths[m.Path] { // a repeated path would break the scrape
				paths[m.Path] = true
				gauge(descDiskTotal, float64(m.Total), m.Path)
				gauge(descDiskUsed, float64(m.Used), m.Path)
				gauge(descDiskUsedPct, m.UsedPercent, m.Path)
			}
		}
	}
	if d := snap.Disk; d.Error == "" && !paths[d.Path] {
		gauge(descDiskTotal, float64(d.Total), d.Path)
		gauge(descDiskUsed, float64(d.Used), d.Path)
		gauge(descDiskUsedPct, d.UsedPercent, d.Path)
	}
	if p := snap.Processes; p.Error == "" {
		gauge(descProcesses, float64(p.Total))
		seen := map[string]bool{}
		for _, m := range p.Matched {
			if !seen[m.Keyword] { // a repeated keyword would break the scrape
				seen[m.Keyword] = true
				gauge(descMatched, float64(m.Count), m.Keyword)
				gauge(descMatchedRSS, float64(m.RSSBytes), m.Keyword)
				gauge(descMatchedCPU, m.CPUPercent, m.Keyword)
			}
		}
	}
	if sw := snap.Swap; sw != nil && sw.Error == "" {
		gauge(descSwapPages, sw.PagesInPerSecond, "in")
		gauge(descSwapPages, sw.PagesOutPerSecond, "out")
	}
	if pr := snap.Pressure; pr != nil {
		for _, r := range []struct {
			name string
			psi  *snapshot.PSI
		}{{"cpu", pr.CPU}, {"memory", pr.Memory}, {"io", pr.IO}} {
			switch p := r.psi; {
			case p == nil || p.Error != "":
			case p.SomeStallPercent != nil:
				gauge(descPressure, *p.SomeStallPercent, r.name)
			default:
				gauge(descPressure, p.SomeAvg10, r.name)
			}
		}
	}
	if q := snap.RunQueue; q != nil && q.Error == "" {
		gauge(descRunQueue, float64(max(q.Running-1, 0)))
		gauge(descBlocked, float64(q.Blocked))
	}
	if n := snap.Network; n != nil && n.Error == "" {
		gauge(descNetBytes, n.RxBytesPerSecond, "rx")
		gauge(descNetBytes, n.TxBytesPerSecond, "tx")
	}
	if f := snap.FileDescriptors; f != nil && f.Error == "" {
		gauge(descFDAllocated, float64(f.Allocated))
		gauge(descFDMax, float64(f.Max))
	}
	if s := snap.Sockets; s != nil && s.Error == "" {
		for _, state := range snapshot.TCPStates {
			if n, ok := s.TCP[state]; ok {
				gauge(descTCPSockets, float64(n), state)
			}
		}
	}
}
