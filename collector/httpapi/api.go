package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crawlerfleet/collector/collector/report"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// The statuses of a server in /api/servers.
const (
	StatusOK     = "ok"      // the newest attempt gave a snapshot
	StatusDown   = "down"    // the newest attempt failed
	StatusNoData = "no data" // nothing stored yet
)

// storeFailed is what a client reads when the store fails; the error
// itself goes to the log.
const storeFailed = "reading the store failed: see the collector's log"

// lookups bounds the store reads of /api/servers in flight.
const lookups = 8

// ServerSummary is one element of GET /api/servers.
type ServerSummary struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	// Status is StatusOK, StatusDown or StatusNoData.
	Status       string     `json:"status"`
	LastSnapshot *time.Time `json:"last_snapshot"`
	LastFailure  *Failure   `json:"last_failure"`
	// The figures of the latest snapshot; null when it has none (no
	// snapshot, or that section failed).
	CPUPercent        *float64 `json:"cpu_percent"`
	MemoryUsedPercent *float64 `json:"memory_used_percent"`
	DiskUsedPercent   *float64 `json:"disk_used_percent"`
	// Load1 is the 1-minute load, LogicalCPUs the CPUs it compares with.
	Load1       *float64 `json:"load1"`
	LogicalCPUs *int     `json:"logical_cpus"`
	// NetworkBytesPerSecond is received plus sent over all non-loopback
	// interfaces; null before probe schema version 2.
	NetworkBytesPerSecond *float64       `json:"network_bytes_per_second"`
	MatchedTotal          *int           `json:"matched_total"`
	Matched               []KeywordCount `json:"matched"`
	// Sampling says how those figures were seen; null without a snapshot.
	Sampling *Sampling `json:"sampling"`
	// History is the successful attempts the daemon made over the last
	// hour (HistoryLength), oldest first, for sparklines: since the
	// daemon started, and [] from a collector that is not running rounds.
	History []HistoryPoint `json:"history"`
	// Firing lists the server's firing alerts; null when they could not be
	// read (the error is logged), [] when there are none.
	Firing []Firing `json:"firing"`
	// Thresholds are where this server's alert rules fire (its effective
	// rules: [alerts] with [server.alerts] on top); null for a rule that is
	// off. The live page marks a figure at or above its threshold.
	Thresholds Thresholds `json:"thresholds"`
}

// Thresholds are a server's alert thresholds: percent, and load per
// logical CPU.
type Thresholds struct {
	CPU    *float64 `json:"cpu"`
	Memory *float64 `json:"memory"`
	Disk   *float64 `json:"disk"`
	Load   *float64 `json:"load"`
}

func thresholds(r inventory.AlertRules) Thresholds {
	above := func(t inventory.Threshold) *float64 {
		if !t.Enabled() {
			return nil
		}
		v := t.Above
		return &v
	}
	return Thresholds{CPU: above(r.CPU), Memory: above(r.Memory), Disk: above(r.Disk), Load: above(r.Load)}
}

// Failure is a failed attempt.
type Failure struct {
	At    time.Time `json:"at"`
	Kind  string    `json:"kind"`
	Error string    `json:"error"`
}

// KeywordCount is how many processes matched a keyword.
type KeywordCount struct {
	Keyword string `json:"keyword"`
	Count   int    `json:"count"`
}

// Firing is a firing alert.
type Firing struct {
	Rule    string    `json:"rule"`
	Summary string    `json:"summary"`
	Since   time.Time `json:"since"`
	// Silenced is set while a silence holds the alert's notifications;
	// SilencedUntil is then when the last such silence ends.
	Silenced      bool       `json:"silenced"`
	SilencedUntil *time.Time `json:"silenced_until,omitempty"`
}

// Snapshot is a stored snapshot: GET /api/servers/{name}/latest and each
// item of /snapshots.
type Snapshot struct {
	Server     string             `json:"server"`
	At         time.Time          `json:"at"`
	DurationMS int64              `json:"duration_ms"`
	Snapshot   *snapshot.Snapshot `json:"snapshot"`
}

// SnapshotPage is GET /api/servers/{name}/snapshots: the newest items in
// [since, until), oldest first. Next, when set, is the until of the next
// (older) page, to be asked with the same since; null on the last page.
type SnapshotPage struct {
	Server string     `json:"server"`
	Since  time.Time  `json:"since"`
	Until  time.Time  `json:"until"`
	Items  []Snapshot `json:"items"`
	Next   *time.Time `json:"next"`
}

func (s *Server) servers(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	out, err := s.summaries(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, storeFailed, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// summaries reads the latest snapshot and failure of every server in the
// inventory, in inventory order, and their firing alerts.
func (s *Server) summaries(ctx context.Context) ([]ServerSummary, error) {
	inv := s.o.Servers()
	out := make([]ServerSummary, len(inv))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lookups)
	for i, srv := range inv {
		g.Go(func() error {
			sum, err := s.summary(gctx, srv)
			out[i] = sum
			return err
		})
	}
	var firing map[string][]Firing
	if s.o.Alerts != nil {
		g.Go(func() error {
			states, err := s.o.Alerts.Firing(gctx)
			var silences []monitor.Silence
			if err == nil && s.o.Silences != nil {
				silences, err = s.o.Silences.Silences(gctx, s.o.Now())
			}
			if err != nil {
				// The rest of the answer is still worth having; when the
				// store failed, that error is the one to log.
				if gctx.Err() == nil {
					s.o.Logger.Error("read firing alerts", "err", err)
				}
				return nil
			}
			firing = byServer(states, silences, s.o.Now())
			return nil
		})
	} else {
		firing = map[string][]Firing{}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if firing != nil {
		for i := range out {
			out[i].Firing = firing[out[i].Name]
			if out[i].Firing == nil {
				out[i].Firing = []Firing{}
			}
		}
	}
	return out, nil
}

// byServer groups the firing states by server, each sorted by rule, and
// marks those that silences silence at now.
func byServer(states []monitor.AlertState, silences []monitor.Silence, now time.Time) map[string][]Firing {
	m := map[string][]Firing{}
	for _, st := range states {
		if st.Status != monitor.AlertFiring {
			continue
		}
		f := Firing{Rule: st.Rule, Summary: st.Summary, Since: st.Since.UTC()}
		if until, ok := monitor.SilencedUntil(silences, st.Server, st.Rule, now); ok {
			until = until.UTC()
			f.Silenced, f.SilencedUntil = true, &until
		}
		m[st.Server] = append(m[st.Server], f)
	}
	for _, fs := range m {
		sort.Slice(fs, func(i, j int) bool { return fs[i].Rule < fs[j].Rule })
	}
	return m
}

// summary reads one server's newest snapshot and failure.
func (s *Server) summary(ctx context.Context, srv inventory.Server) (ServerSummary, error) {
	sum := ServerSummary{Name: srv.Name, Description: srv.Description, Tags: srv.Tags, Status: StatusNoData, Matched: []KeywordCount{},
		Thresholds: thresholds(srv.Alerts), History: s.history(srv.Name)}
	if sum.Tags == nil {
		sum.Tags = []string{}
	}
	rec, fail, err := s.o.Store.Newest(ctx, srv.Name)
	if err != nil {
		return sum, err
	}
	if rec != nil {
		sum.Status = StatusOK
		at := rec.At.UTC()
		sum.LastSnapshot = &at
		if snap := rec.Snapshot; snap != nil {
			sum.Sampling = samplingOf(snap)
			if snap.CPU.Error == "" {
				sum.CPUPercent = &snap.CPU.Percent
				sum.Load1 = &snap.CPU.Load1
				if snap.CPU.LogicalCount > 0 {
					sum.LogicalCPUs = &snap.CPU.LogicalCount
				}
			}
			if n := snap.Network; n != nil && n.Error == "" {
				v := n.RxBytesPerSecond + n.TxBytesPerSecond
				sum.NetworkBytesPerSecond = &v
			}
			if snap.Memory.Error == "" {
				sum.MemoryUsedPercent = &snap.Memory.UsedPercent
			}
			if snap.Disk.Error == "" {
				sum.DiskUsedPercent = &snap.Disk.UsedPercent
			}
			if snap.Processes.Error == "" {
				sum.MatchedTotal = &snap.Processes.MatchedTotal
				for _, m := range snap.Processes.Matched {
					sum.Matched = append(sum.Matched, KeywordCount{Keyword: m.Keyword, Count: m.Count})
				}
			}
		}
	}
	if fail != nil {
		sum.LastFailure = &Failure{At: fail.At.UTC(), Kind: string(fail.Kind), Error: fail.Error()}
		if rec == nil || fail.At.After(rec.At) {
			sum.Status = StatusDown
		}
	}
	return sum, nil
}

// known returns the server called name in the current inventory, or
// answers 404.
func (s *Server) known(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	for _, srv := range s.o.Servers() {
		if srv.Name == name {
			return name, true
		}
	}
	s.fail(w, r, http.StatusNotFound, fmt.Sprintf("unknown server %q", name), nil)
	return "", false
}

func (s *Server) latestSnapshot(w http.ResponseWriter, r *http.Request) {
	name, ok := s.known(w, r)
	if !ok {
		return
	}
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	rec, err := s.o.Store.Latest(r.Context(), name)
	if errors.Is(err, monitor.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("no snapshot of %q yet", name), nil)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, storeFailed, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, snapshotJSON(*rec))
}

func snapshotJSON(rec monitor.Result) Snapshot {
	return Snapshot{Server: rec.Server, At: rec.At.UTC(), DurationMS: rec.Duration.Milliseconds(), Snapshot: rec.Snapshot}
}

func (s *Server) snapshots(w http.ResponseWriter, r *http.Request) {
	name, ok := s.known(w, r)
	if !ok {
		return
	}
	q, err := parseQuery(r.URL.RawQuery, "since", "until", "limit")
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	now := s.o.Now()
	since, until, err := q.rangeParams(now, time.Unix(0, 0), []string{"since"}, []string{"until"})
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	limit, err := q.limitParam()
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	// One more than asked tells whether an older page exists.
	recs, err := s.o.Store.Snapshots(r.Context(), name, since, until, limit+1)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, storeFailed, err)
		return
	}
	page := SnapshotPage{Server: name, Since: since.UTC(), Until: until.UTC(), Items: []Snapshot{}}
	if len(recs) > limit {
		recs = recs[len(recs)-limit:]
		next := recs[0].At.UTC()
		page.Next = &next
	}
	for _, rec := range recs {
		page.Items = append(page.Items, snapshotJSON(rec))
	}
	s.writeJSON(w, r, http.StatusOK, page)
}

// buildReport reads the range of /api/report and /report and builds the
// report, answering the request itself when it cannot.
func (s *Server) buildReport(w http.ResponseWriter, r *http.Request) (*report.Report, bool) {
	if s.o.Report == nil {
		s.fail(w, r, http.StatusNotImplemented, "the report is not available here", nil)
		return nil, false
	}
	q, err := parseQuery(r.URL.RawQuery, "since", "from", "until", "to")
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return nil, false
	}
	now := s.o.Now()
	from, to, err := q.rangeParams(now, now.Add(-DefaultReportSince), []string{"since", "from"}, []string{"until", "to"})
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return nil, false
	}
	rep, err := s.o.Report(r.Context(), from, to)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "building the report failed: see the collector's log", err)
		return nil, false
	}
	return rep, true
}

func (s *Server) reportJSON(w http.ResponseWriter, r *http.Request) {
	rep, ok := s.buildReport(w, r)
	if !ok {
		return
	}
	s.writeJSON(w, r, http.StatusOK, rep)
}

// reportCSP lets the report's own inline style and script run and nothing
// else load.
const reportCSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *Server) reportHTML(w http.ResponseWriter, r *http.Request) {
	rep, ok := s.buildReport(w, r)
	if !ok {
		return
	}
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "writing the report failed: see the collector's log", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", reportCSP)
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes())
}
