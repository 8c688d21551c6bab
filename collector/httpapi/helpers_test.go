package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/collector/report"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// now is the clock of every test server.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// evil is a server name that would run script if a page parsed it as HTML.
const evil = `<script>alert(1)</script>`

// fakeStore keeps snapshots and failures in memory with the semantics Store
// asks for.
type fakeStore struct {
	mu    sync.Mutex
	recs  map[string][]monitor.Result // successful, oldest first
	fails map[string]monitor.Result
	err   error // returned by every read when set

	lastFrom, lastTo time.Time
	lastLimit        int
}

var _ Store = (*fakeStore)(nil)

func (f *fakeStore) Latest(_ context.Context, server string) (*monitor.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	rs := f.recs[server]
	if len(rs) == 0 {
		return nil, fmt.Errorf("latest snapshot of %s: %w", server, monitor.ErrNotFound)
	}
	r := rs[len(rs)-1]
	return &r, nil
}

func (f *fakeStore) Newest(ctx context.Context, server string) (latest, failure *monitor.Result, err error) {
	latest, err = f.Latest(ctx, server)
	if err != nil && !errors.Is(err, monitor.ErrNotFound) {
		return nil, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.fails[server]; ok {
		failure = &a
	}
	return latest, failure, nil
}

func (f *fakeStore) Snapshots(_ context.Context, server string, from, to time.Time, limit int) ([]monitor.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastFrom, f.lastTo, f.lastLimit = from, to, limit
	if f.err != nil {
		return nil, f.err
	}
	var out []monitor.Result
	for _, r := range f.recs[server] {
		if !r.At.Before(from) && r.At.Before(to) {
			out = append(out, r)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// snap returns a snapshot with the given readings, keyword counts as
// keyword, count pairs.
func snap(at time.Time, cpu, mem, disk float64, procs ...any) *snapshot.Snapshot {
	s := &snapshot.Snapshot{
		Version:  snapshot.Version,
		Time:     at,
		Hostname: "host",
		CPU:      snapshot.CPU{Count: 4, LogicalCount: 8, Percent: cpu, Load1: 1.5, Load5: 1.25, Load15: 1},
		Memory: snapshot.Memory{Total: 16 << 30, Used: uint64(mem / 100 * (16 << 30)), Available: uint64((100 - mem) / 100 * (16 << 30)),
			UsedPercent: mem},
		Disk:      snapshot.Disk{Path: "/", Total: 100 << 30, Used: uint64(disk / 100 * (100 << 30)), UsedPercent: disk},
		Processes: snapshot.Processes{Total: 200},
	}
	for i := 0; i+1 < len(procs); i += 2 {
		m := snapshot.Match{Keyword: procs[i].(string), Count: procs[i+1].(int)}
		s.Processes.Matched = append(s.Processes.Matched, m)
		s.Processes.MatchedTotal += m.Count
	}
	return s
}

// withV2 gives s the sections of schema version 2.
func withV2(s *snapshot.Snapshot) *snapshot.Snapshot {
	stall := func(v float64) *snapshot.PSI { return &snapshot.PSI{SomeAvg10: v + 1, SomeStallPercent: &v} }
	s.SampleSeconds = 1
	s.Swap = &snapshot.Swap{Total: 1 << 30, PagesInPerSecond: 12, PagesOutPerSecond: 3}
	s.Pressure = &snapshot.Pressure{CPU: stall(42), Memory: stall(1.5), IO: &snapshot.PSI{SomeAvg10: 4}}
	s.RunQueue = &snapshot.RunQueue{Running: 11, Blocked: 2}
	s.Network = &snapshot.Network{Interfaces: []snapshot.Interface{}, RxBytesPerSecond: 1e6, TxBytesPerSecond: 2e5}
	s.Sockets = &snapshot.Sockets{TCP: map[string]int{"established": 40, "time_wait": 7}}
	s.FileDescriptors = &snapshot.FileDescriptors{Allocated: 3000, Max: 100000}
	s.Filesystems = &snapshot.Filesystems{Mounts: []snapshot.Filesystem{
		{Path: "/", Total: 100 << 30, Used: 70 << 30, UsedPercent: 70},
		{Path: "/var/lib/crawl", Total: 500 << 30, Used: 100 << 30, UsedPercent: 20},
	}}
	for i := range s.Processes.Matched {
		s.Processes.Matched[i].RSSBytes = uint64(s.Processes.Matched[i].Count) << 27
		s.Processes.Matched[i].CPUPercent = 7.5 * float64(s.Processes.Matched[i].Count)
	}
	return s
}

// fixture is a fleet of four servers: web1 up, web2 down since its last
// snapshot, web3 without data, and one with a hostile name, up.
type fixture struct {
	servers []inventory.Server
	store   *fakeStore
	firing  []monitor.AlertState
	alerts  Alerts
	logs    *testutil.SyncBuffer
	reports []reportCall
	opts    Options
}

type reportCall struct{ from, to time.Time }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	logger, logs := testutil.Logger(t)
	f := &fixture{
		servers: []inventory.Server{
			{Name: "web1", Description: "front end", Tags: []string{"web"}},
			{Name: "web2"},
			{Name: "web3"},
			{Name: evil, Description: evil, Alerts: inventory.DefaultAlertRules()},
		},
		store: &fakeStore{
			recs: map[string][]monitor.Result{
				"web1": {{Server: "web1", At: now.Add(-time.Minute), Duration: 1500 * time.Millisecond, Snapshot: snap(now.Add(-time.Minute), 42.5, 61.25, 70, "python", 12, "node", 3)}},
				"web2": {{Server: "web2", At: now.Add(-time.Hour), Duration: time.Second, Snapshot: snap(now.Add(-time.Hour), 10, 20, 30)}},
				evil:   {{Server: evil, At: now.Add(-2 * time.Minute), Duration: time.Second, Snapshot: snap(now.Add(-2*time.Minute), 95, 50, 91, evil, 2)}},
			},
			fails: map[string]monitor.Result{
				"web1": {Server: "web1", At: now.Add(-time.Hour), Kind: monitor.KindTimeout, Err: errors.New("probe timed out")},
				"web2": {Server: "web2", At: now.Add(-30 * time.Second), Kind: monitor.KindUnreachable, Err: errors.New("dial tcp 10.0.0.2:22: connection refused")},
			},
		},
		firing: []monitor.AlertState{
			{Server: "web2", Rule: alerts.RuleDown, Status: monitor.AlertFiring, Since: now.Add(-10 * time.Minute), Summary: "down: 3 failed attempts"},
			{Server: evil, Rule: alerts.RuleDisk, Status: monitor.AlertFiring, Since: now.Add(-5 * time.Minute), Summary: "disk 91.0 % ≥ 90 %"},
			{Server: evil, Rule: alerts.RuleCPU, Status: monitor.AlertFiring, Since: now.Add(-3 * time.Minute), Summary: "cpu 95.0 % ≥ 95 %"},
		},
		logs: logs,
	}
	f.alerts = AlertsFunc(func(context.Context) ([]monitor.AlertState, error) { return f.firing, nil })
	f.opts = Options{
		Servers: func() []inventory.Server { return f.servers },
		Store:   f.store,
		Alerts:  f.alerts,
		Report: func(_ context.Context, from, to time.Time) (*report.Report, error) {
			f.reports = append(f.reports, reportCall{from, to})
			in := report.Input{From: from, To: to, Generated: now}
			for _, s := range f.servers {
				in.Servers = append(in.Servers, report.ServerInput{Name: s.Name, Description: s.Description})
			}
			return report.Build(in), nil
		},
		Now:    func() time.Time { return now },
		Logger: logger,
	}
	return f
}

// do sends a GET to path with an optional bearer token ("" for none).
func do(t *testing.T, h http.Handler, method, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// decode checks that rec answered status with JSON and decodes its body.
func decode(t *testing.T, rec *httptest.ResponseRecorder, status int, v any) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, rec.Body)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
}

// wantError checks that rec is a JSON error with status and message.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, msg string) {
	t.Helper()
	var e errorBody
	decode(t, rec, status, &e)
	if e.Error != msg {
		t.Errorf("error %q, want %q", e.Error, msg)
	}
}

var errBroken = errors.New("connection(127.0.0.1:27017[-3]) socket was unexpectedly closed")
