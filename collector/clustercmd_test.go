package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

func TestPrintCluster(t *testing.T) {
	var text strings.Builder
	text.WriteString("[cluster]\nlease = \"15s\"\n")
	for i := range 12 {
		fmt.Fprintf(&text, "[[server]]\nname = \"web%02d\"\naddress = \"local\"\n", i)
	}
	inv, err := inventory.Parse(strings.NewReader(text.String()), "servers.toml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	members := []monitor.Member{
		{Name: "a", Host: "h1", PID: 11, Since: now.Add(-time.Hour), Renewed: now.Add(-2 * time.Second), Expires: now.Add(13 * time.Second), Scheduled: 120, Done: 119},
		{Name: "b", Host: "h2", PID: 22, Since: now.Add(-5 * time.Second), Renewed: now.Add(-time.Second), Expires: now.Add(14 * time.Second)},
		{Name: "c", Host: "h3", PID: 33, Since: now.Add(-time.Hour), Renewed: now.Add(-4 * time.Minute), Expires: now.Add(-4*time.Minute + 15*time.Second)},
	}
	var out bytes.Buffer
	printCluster(&out, inv, members, now, true)
	got := out.String()
	for _, re := range []string{
		`(?m)^a\s+h1\s+11\s+live\s+2s ago\s+119/120\s+12: web00, web01, web02, web03, web04, … \(--servers lists all\)$`,
		`(?m)^b\s+h2\s+22\s+joining, probes in 10s\s+1s ago\s+0/0\s+0$`,
		`(?m)^c\s+h3\s+33\s+gone 3m ago\s+4m ago\s+0/0\s+0$`,
		`(?m)^web11\s+a$`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output lacks %s:\n%s", re, got)
		}
	}
}

// [cluster] with the embedded store is refused: the members could share
// nothing.
func TestRunRefusesClusterOnTheEmbeddedStore(t *testing.T) {
	h := newHarness(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+"\n[cluster]\nmember = \"a\"\n")
	code, _, stderr := h.run("run", "--rounds", "1")
	if code != exitUsage || !strings.Contains(stderr, "servers.toml:16: [cluster] needs a database the members share: set [store] uri") {
		t.Errorf("run with [cluster] and the embedded store: exit %d\n%s", code, stderr)
	}
}
