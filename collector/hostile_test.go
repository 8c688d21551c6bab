package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/monitor"
)

// hostileSnapshot is a snapshot that parses but cannot be true; mangle
// replaces one of its fields.
func hostileSnapshot(at time.Time, cpu, memPercent string, used, total uint64, keyword string) string {
	return fmt.Sprintf(`{"version":1,"time":%q,"hostname":"h","uptime_seconds":5,`+
		`"cpu":{"count":1,"logical_count":2,"percent":%s,"load1":0.1,"load5":0.2,"load15":0.3},`+
		`"memory":{"total":%d,"used":%d,"free":1,"available":1,"buffers":1,"cached":2,"used_percent":%s},`+
		`"disk":{"path":"/","total":10,"used":5,"free":5,"used_percent":50},`+
		`"processes":{"total":3,"matched":[{"keyword":%q,"count":1,"pids":[7],"rss_bytes":9,"cpu_percent":1}],"matched_total":1}}`,
		at.UTC().Format(time.RFC3339), cpu, total, used, memPercent, keyword)
}

// TestHostileProbeOutputIsRefusedAndNotStored: a probe that answers
// nonsense (CPU 1e308 %, memory −50 %, used 10 × total, the year 9999, a
// keyword never asked for) fails as a probe failure naming the field, and
// nothing of it reaches the store or its rollups.
func TestHostileProbeOutputIsRefusedAndNotStored(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name, output, want string
	}{
		{"cpu 1e308", hostileSnapshot(now, "1e308", "40", 400, 1000, "python"), "cpu.percent = 1e+308 (want 0 to 100)"},
		{"memory -50 percent", hostileSnapshot(now, "12.5", "-50", 400, 1000, "python"), "memory.used_percent = -50 (want 0 to 100)"},
		{"used 10 × total", hostileSnapshot(now, "12.5", "40", 10000, 1000, "python"), "memory.used = 10000 is more than memory.total = 1000"},
		{"year 9999", hostileSnapshot(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "12.5", "40", 400, 1000, "python"), "time = 9999-01-01T00:00:00Z"},
		{"keyword never asked for", hostileSnapshot(now, "12.5", "40", 400, 1000, "bitcoin"), `keyword "bitcoin" was not asked for`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			b := probebin.NewBuild("linux", runtime.GOARCH, []byte("#!/bin/sh\necho '"+tc.output+"'\n"))
			h.probes = probebin.Set{b.Platform(): b}
			section, dataDir := h.storeSection()
			h.writeConfig(h.srv.KnownHostsFile, h.server("web1", `keywords = ["python"]`)+section)

			code, results := h.onceJSON("web1")
			if r := results["web1"]; code != exitFailure || r.OK || r.Kind != monitor.KindProbe || !strings.Contains(r.Error, tc.want) {
				t.Fatalf("once: exit %d, %+v; want a probe failure naming %q", code, r, tc.want)
			}
			if code, stdout, stderr := h.run("collect"); code != exitFailure || !strings.Contains(stdout, tc.want) {
				t.Fatalf("collect: exit %d\n%s\n%s", code, stdout, stderr)
			}
			st := openTestStore(t, dataDir)
			ctx := context.Background()
			snaps, err := st.Snapshots(ctx, "web1", time.Time{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), 0)
			if err != nil || len(snaps) != 0 {
				t.Errorf("stored snapshots %d, %v; want none", len(snaps), err)
			}
			failures, err := st.Attempts(ctx, "web1", now.Add(-time.Hour), now.Add(time.Hour))
			if err != nil || len(failures) != 1 || failures[0].Kind != monitor.KindProbe {
				t.Errorf("stored attempts %+v, %v; want the probe failure", failures, err)
			}
			rollups, err := st.Rollups(ctx, monitor.RollupFilter{Servers: []string{"web1"}, From: now.Add(-time.Hour), To: now.Add(time.Hour)})
			if err != nil || len(rollups) != 1 || rollups[0].Count != 0 || rollups[0].Failed != 1 {
				t.Errorf("rollups %+v, %v; want one counting the failure alone", rollups, err)
			}
		})
	}
}

// TestDeleteRemovesStoredNonsense: nonsense stored by an earlier release
// (a 309-digit CPU peak) is removed by `collector delete`, and the peaks
// `status` prints come from the sane snapshots alone; without --yes and a
// terminal nothing is deleted.
func TestDeleteRemovesStoredNonsense(t *testing.T) {
	h := newHarness(t)
	section, dataDir := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+section)
	if code, stdout, stderr := h.run("collect"); code != exitOK {
		t.Fatalf("collect: exit %d\n%s\n%s", code, stdout, stderr)
	}
	st := openTestStore(t, dataDir)
	ctx := context.Background()
	latest, err := st.Latest(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	bad := *latest.Snapshot
	bad.CPU.Percent = 1e308
	at := latest.At.Add(-10 * time.Minute)
	if err := writeResults(ctx, st, []monitor.Result{{Server: "web1", At: at, Duration: time.Second, Snapshot: &bad}}); err != nil {
		t.Fatal(err)
	}
	st.Close(ctx)
	if _, stdout, _ := h.run("status"); !strings.Contains(stdout, "1e+308") && !strings.Contains(stdout, "1000000000000000") {
		t.Fatalf("status does not show the stored nonsense, so this test shows nothing:\n%s", stdout)
	}

	from, to := at.Add(-time.Second).Format(time.RFC3339), at.Add(time.Second).Format(time.RFC3339)
	if code, _, stderr := h.run("delete", "web1", "--from", from, "--to", to); code != exitFailure || !strings.Contains(stderr, "run again with --yes") {
		t.Fatalf("delete without --yes off a terminal: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := h.run("delete", "web1", "--from", from, "--to", to, "--yes")
	if code != exitOK || !strings.Contains(stdout, "deleted 1 snapshots and 0 failed attempts of web1") {
		t.Fatalf("delete: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, stdout, _ := h.run("status"); strings.Contains(stdout, "1e+308") || strings.Contains(stdout, "1000000000000000") {
		t.Errorf("status still shows the nonsense after the delete:\n%s", stdout)
	}
}
