package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
	"github.com/crawlerfleet/collector/store"
)

// openTestStore opens the store in dataDir after the command closed it.
func openTestStore(t *testing.T, dataDir string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return st
}

func (h *harness) storeSection() (text, dataDir string) {
	dataDir = filepath.Join(h.dir, "data")
	return fmt.Sprintf("\n[store]\ndata_dir = %q\n", dataDir), dataDir
}

func TestCollectStoresSnapshotsAndFailures(t *testing.T) {
	h := newHarness(t)
	section, dataDir := h.storeSection()
	hung := sshdtest.HungListener(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+h.server("web2", "")+
		fmt.Sprintf("\n[[server]]\nname = \"hung\"\naddress = %q\ntimeout = \"2s\"\nconnect_timeout = \"1s\"\n", hung)+section)

	code, stdout, stderr := h.run("collect")
	if code != exitFailure {
		t.Errorf("collect with a hung server: exit %d, want %d", code, exitFailure)
	}
	if !strings.Contains(stdout, "collected 3 servers: 2 ok, 1 failed") || !strings.Contains(stdout, "hung (timeout)") {
		t.Errorf("collect summary:\n%s\nstderr:\n%s", stdout, stderr)
	}
	// Not a terminal: progress is a line per failure, then the count.
	if !strings.Contains(stderr, "hung failed: timeout") || !strings.Contains(stderr, "[3/3] done, 1 failed") {
		t.Errorf("collect progress on stderr:\n%s", stderr)
	}

	// status reads it back: a row per server, the failure's kind for hung.
	code, stdout, stderr = h.run("status")
	if code != exitOK {
		t.Fatalf("status: exit %d\n%s\n%s", code, stdout, stderr)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]] = f
	}
	if r := rows["web1"]; len(r) < 9 || r[7] != "1" || r[8] != "0" {
		t.Errorf("status row of web1 = %q, want 1 snapshot and 0 failed\n%s", r, stdout)
	}
	// One-shot probes: each peak is one reading over the probe's window.
	if r := strings.Join(rows["web1"], " "); strings.Count(r, " s sample)") != 2 {
		t.Errorf("status row of web1 = %q, want both peaks seen as a one-shot sample\n%s", r, stdout)
	}
	if r := rows["hung"]; len(r) < 2 || r[1] != "-" || !strings.Contains(strings.Join(r, " "), "timeout") {
		t.Errorf("status row of hung = %q, want no snapshot and its timeout\n%s", r, stdout)
	}

	st := openTestStore(t, dataDir)
	ctx := context.Background()
	for _, name := range []string{"web1", "web2"} {
		rec, err := st.Latest(ctx, name)
		if err != nil {
			t.Fatalf("Latest(%s): %v", name, err)
		}
		if rec.Snapshot.Memory.Total != memTotal(t) {
			t.Errorf("%s: stored memory total %d, want %d", name, rec.Snapshot.Memory.Total, memTotal(t))
		}
	}
	fail, err := st.LastFailure(ctx, "hung")
	if err != nil {
		t.Fatalf("LastFailure(hung): %v", err)
	}
	if fail.Kind != monitor.KindTimeout || !strings.Contains(fail.Error(), "hung") {
		t.Errorf("hung's attempt = %+v, want a timeout naming the server", fail)
	}
	if _, err := st.Latest(ctx, "hung"); !errors.Is(err, monitor.ErrNotFound) {
		t.Errorf("Latest(hung) = %v, want ErrNotFound", err)
	}
}

func TestOnceStore(t *testing.T) {
	h := newHarness(t)
	section, dataDir := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+section)
	if code, results := h.onceJSON("web1"); code != exitOK || !results["web1"].OK {
		t.Fatalf("once: %+v", results)
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Fatal("once without --store created the store")
	}
	code, stdout, stderr := h.run("once", "--store", "web1")
	if code != exitOK {
		t.Fatalf("once --store: exit %d\n%s\n%s", code, stdout, stderr)
	}
	st := openTestStore(t, dataDir)
	recs, err := st.Snapshots(context.Background(), "web1", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("stored snapshots = %d, %v; want 1", len(recs), err)
	}
}

// startDaemon runs `collector run` in the background and returns its logs
// and a function that stops it (as SIGTERM does) and returns its exit code.
func (h *harness) startDaemon(args ...string) (*testutil.SyncBuffer, func() int) {
	h.t.Helper()
	logs := &testutil.SyncBuffer{}
	e := h.env(logs, logs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"--config", h.config, "run"}, args...), e) }()
	stop := func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(time.Minute):
			h.t.Fatalf("run did not stop within a minute of its signal\n%s", logs)
			return -1
		}
	}
	h.t.Cleanup(func() { cancel() })
	return logs, stop
}

// waitFor polls cond until it holds or the time runs out.
func waitFor(t *testing.T, what string, logs *testutil.SyncBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRunCollectsRoundsAndStops(t *testing.T) {
	h := newHarness(t)
	section, dataDir := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+h.server("web2", "")+section+
		"\n[schedule]\ncron = \"*/2 * * * * *\"\nsplay = \"0s\"\n")
	logs, stop := h.startDaemon("--rounds", "2")
	waitFor(t, "two rounds", logs, func() bool { return strings.Contains(logs.String(), "stopping: rounds done") })
	if code := stop(); code != exitOK {
		t.Fatalf("run: exit %d\n%s", code, logs)
	}
	// A round probes the servers not still busy from the last one: on a
	// slow machine a tick may find one busy and probe only the other. So
	// the rounds' own accounts say how many snapshots there must be.
	probed := 0
	for _, m := range regexp.MustCompile(`msg="round done" servers=(\d+) failed=0`).FindAllStringSubmatch(logs.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		probed += n
	}
	if probed < 2 {
		t.Fatalf("the rounds logged %d successful probes, want at least 2\n%s", probed, logs)
	}
	st := openTestStore(t, dataDir)
	stored := 0
	for _, name := range []string{"web1", "web2"} {
		recs, err := st.Snapshots(context.Background(), name, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), 0)
		if err != nil || len(recs) == 0 {
			t.Errorf("%s: %d snapshots stored, %v; want at least one", name, len(recs), err)
		}
		stored += len(recs)
	}
	if stored != probed {
		t.Errorf("%d snapshots stored, the rounds probed %d\n%s", stored, probed, logs)
	}
}

func TestRunReloadsOnSIGHUP(t *testing.T) {
	h := newHarness(t)
	section, dataDir := h.storeSection()
	sched := "\n[schedule]\ncron = \"* * * * * *\"\nsplay = \"0s\"\ngrace = \"5s\"\n"
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+section+sched)
	logs, stop := h.startDaemon()
	waitFor(t, "a first round", logs, func() bool { return strings.Contains(logs.String(), "round done") })

	// A broken file is rejected and the running inventory kept.
	good, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.config, append(good, []byte("\n[[server]]\nname = \"web1\"\nadress = \"x\"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	h.hangup <- struct{}{} // as SIGHUP does
	waitFor(t, "the bad file to be rejected", logs, func() bool { return strings.Contains(logs.String(), "reload rejected") })
	if !strings.Contains(logs.String(), "did you mean 'address'") {
		t.Errorf("the rejection does not show the file's error:\n%s", logs)
	}

	// A good file adds web2.
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+h.server("web2", "")+section+sched)
	h.hangup <- struct{}{} // as SIGHUP does
	waitFor(t, "the reload", logs, func() bool { return strings.Contains(logs.String(), "inventory reloaded") })
	mark := len(logs.String())
	waitFor(t, "a round with two servers", logs, func() bool {
		return strings.Contains(logs.String()[mark:], `msg="round done" servers=2`)
	})
	if code := stop(); code != exitOK {
		t.Fatalf("run: exit %d\n%s", code, logs)
	}
	st := openTestStore(t, dataDir)
	for _, name := range []string{"web1", "web2"} {
		if _, err := st.Latest(context.Background(), name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestReportFromStoredRounds(t *testing.T) {
	h := newHarness(t)
	section, _ := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", `description = "<script>alert(1)</script>"`)+h.server("web2", `tags = ["crawler"]`)+section+
		"\n[alerts]\nmemory = { above = 80 }\ncpu = { above = 0 }\n")
	for range 2 {
		if code, stdout, stderr := h.run("collect"); code != exitOK {
			t.Fatalf("collect: exit %d\n%s\n%s", code, stdout, stderr)
		}
	}
	out := filepath.Join(h.dir, "report.html")
	code, stdout, stderr := h.run("report", "--since", "2h", "--out", out)
	if code != exitOK {
		t.Fatalf("report: exit %d\n%s\n%s", code, stdout, stderr)
	}
	html, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"web1", "web2", "&lt;script&gt;alert(1)&lt;/script&gt;"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(string(html), "<script>alert(1)") {
		t.Error("a server's description reached the report unescaped")
	}
	for _, bad := range []string{"http://", "https://"} {
		if strings.Contains(string(html), bad) {
			t.Errorf("report refers to %s: it must be self-contained", bad)
		}
	}

	// JSON to stdout, for one tag.
	code, stdout, stderr = h.run("report", "--since", "2h", "--tag", "crawler", "--format", "json", "--out", "-")
	if code != exitOK {
		t.Fatalf("report --format json: exit %d\n%s", code, stderr)
	}
	var figures struct {
		Thresholds struct{ CPU, Mem, Disk float64 } `json:"thresholds"`
		Servers    []struct {
			Name  string `json:"name"`
			Peaks struct {
				CPU *struct {
					Value float64 `json:"value"`
				} `json:"cpu"`
			} `json:"peaks"`
		} `json:"servers"`
	}
	if err := json.Unmarshal([]byte(stdout), &figures); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, stdout)
	}
	// Capacity stops at the alert thresholds; a rule that is off leaves 90 %.
	if th := figures.Thresholds; th.Mem != 80 || th.CPU != 90 || th.Disk != 90 {
		t.Errorf("report thresholds = %+v, want memory 80 from [alerts], CPU (off) and disk at 90", th)
	}
	if len(figures.Servers) != 1 || figures.Servers[0].Name != "web2" {
		t.Fatalf("report --tag crawler covers %+v, want web2 alone", figures.Servers)
	}
	// An idle machine can be 0 % busy over the 200 ms sample window.
	if p := figures.Servers[0].Peaks.CPU; p == nil || p.Value < 0 || p.Value > 100 {
		t.Errorf("web2's CPU peak = %+v, want a percent from its two snapshots", p)
	}

	for _, args := range [][]string{
		{"report", "--since", "nonsense"},
		{"report", "--from", "2026-13-01"},
		{"report", "--tag", "nosuchtag"},
		{"report", "--format", "pdf"},
	} {
		if code, _, stderr := h.run(args...); code != exitUsage || stderr == "" {
			t.Errorf("collector %v: exit %d, stderr %q; want a usage error", args, code, stderr)
		}
	}
}

func TestRunServesAPIAndMetrics(t *testing.T) {
	h := newHarness(t)
	section, _ := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+section+
		"\n[schedule]\ncron = \"*/2 * * * * *\"\nsplay = \"0s\"\n\n[http]\ntoken_env = \"TEST_TOKEN\"\n")
	h.environ = map[string]string{"TEST_TOKEN": "s3cret"}
	logs, stop := h.startDaemon("--listen", "127.0.0.1:0")
	defer stop()
	waitFor(t, "a round", logs, func() bool { return strings.Contains(logs.String(), "round done") })
	m := regexp.MustCompile(`msg="serving the HTTP API" addr=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no listen address in the logs:\n%s", logs)
	}
	base := "http://" + m[1]
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/api/servers", ""); code != http.StatusUnauthorized {
		t.Errorf("/api/servers without the token: %d, want 401", code)
	}
	code, body := get("/api/servers", "s3cret")
	var servers []struct{ Name, Status string }
	if err := json.Unmarshal([]byte(body), &servers); code != http.StatusOK || err != nil ||
		len(servers) != 1 || servers[0].Name != "web1" || servers[0].Status != "ok" {
		t.Errorf("/api/servers: %d %s (%v)", code, body, err)
	}
	code, body = get("/metrics", "s3cret")
	if code != http.StatusOK || !strings.Contains(body, `collector_up{server="web1"} 1`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, body = get("/api/servers/web1/latest", "s3cret"); code != http.StatusOK || !strings.Contains(body, `"memory"`) {
		t.Errorf("/latest: %d %s", code, body)
	}
}

// TestCollectKeepsRetention: collect, as a crontab runs it, deletes raw data
// past [store] retention, at most once per pruneEvery.
func TestCollectKeepsRetention(t *testing.T) {
	h := newHarness(t)
	section, dataDir := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+section+"retention = \"48h\"\n")
	old := time.Now().Add(-72 * time.Hour)
	st, err := store.Open(context.Background(), store.Config{DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	snap := &snapshot.Snapshot{Version: snapshot.Version, Time: old, Hostname: "web1", Processes: snapshot.Processes{Matched: []snapshot.Match{}}}
	if err := writeResults(context.Background(), st, []monitor.Result{{Server: "web1", At: old, Duration: time.Second, Snapshot: snap}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := h.run("collect"); code != exitOK {
		t.Fatalf("collect: exit %d\n%s\n%s", code, stdout, stderr)
	}
	st = openTestStore(t, dataDir)
	recs, err := st.Snapshots(context.Background(), "web1", old.Add(-time.Hour), time.Now().Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].At.Before(time.Now().Add(-time.Hour)) {
		t.Errorf("after collect the store holds %d snapshots (%v); want only the new one: the 72 h old one is past retention", len(recs), times(recs))
	}
}

func times(recs []monitor.Result) []time.Time {
	var out []time.Time
	for _, r := range recs {
		out = append(out, r.At)
	}
	return out
}

// writeResults writes results straight to the database, failing on any
// result it refused.
func writeResults(ctx context.Context, st *store.Store, results []monitor.Result) error {
	refused, err := st.WriteResults(ctx, results)
	if err != nil {
		return err
	}
	return errors.Join(refused...)
}
