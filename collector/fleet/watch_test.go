package fleet

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/crawlerfleet/collector/collector/internal/probetest"
	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
)

// watchingProbes waits until exactly n probes run from dir, and returns
// their pids.
func watchingProbes(t *testing.T, dir string, n int) []int {
	t.Helper()
	var pids []int
	testutil.Eventually(t, testutil.Patience, strconv.Itoa(n)+" probes running", func() bool {
		pids = probetest.PIDs(t, dir)
		return len(pids) == n
	})
	return pids
}

func watchingFleet(t *testing.T, servers string) (*Fleet, *sshdtest.Server, *relay, string) {
	t.Helper()
	srv, rel := relayedServer(t)
	f := testFleet(t, srv, servers+server("web1", rel.addr)+"resolution = \"100ms\"\n")
	f.watch = true
	return f, srv, rel, filepath.Join(srv.Dir, "probe-cache")
}

// TestWatchLifecycle: the first tick probes once and starts the watching
// probe, the next read intervals from it; a probe that dies, or whose
// connection is cut, is a failure naming the gap and is restarted at once;
// resolution 0 and Close leave no probe behind.
func TestWatchLifecycle(t *testing.T) {
	f, srv, rel, dir := watchingFleet(t, "[schedule]\ncron = \"@every 10s\"\n")

	r := probe(t, f, "web1")["web1"]
	if r.Err != nil || r.Snapshot.Interval != nil {
		t.Fatalf("first tick: %v, interval %v; want a one-shot snapshot", r.Err, r.Snapshot.Interval)
	}
	if got := f.Watching(); len(got) != 1 || got[0] != "web1" {
		t.Fatalf("watching %v after the first tick", got)
	}
	pids := watchingProbes(t, dir, 1)

	r = probe(t, f, "web1")["web1"]
	if r.Err != nil || r.Snapshot.Interval == nil || !r.Reused {
		t.Fatalf("second tick: %v, %+v; want the interval's snapshot", r.Err, r)
	}
	if n := rel.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the watching probe runs over the kept connection", n)
	}

	// The probe is killed: the next tick says what was lost, and watches again.
	syscall.Kill(pids[0], syscall.SIGKILL)
	f.mu.Lock()
	done := f.watches["web1"].w.Done()
	f.mu.Unlock()
	<-done
	r = probe(t, f, "web1")["web1"]
	var gap *GapError
	if !errors.As(r.Err, &gap) || r.Kind != monitor.KindProbe || !gap.Restarted {
		t.Fatalf("tick after the probe was killed: %v (%s); want a restarted GapError of kind probe", r.Err, r.Kind)
	}
	if msg := r.Err.Error(); !strings.Contains(msg, "signal KILL") || !strings.Contains(msg, "not watched for") || !strings.Contains(msg, "watching again") {
		t.Errorf("message %q does not say why and what was lost", msg)
	}
	newPID := watchingProbes(t, dir, 1)[0]
	if newPID == pids[0] {
		t.Fatal("the same probe still runs")
	}
	if r := probe(t, f, "web1")["web1"]; r.Err != nil || r.Snapshot.Interval == nil {
		t.Fatalf("tick after the restart: %v", r.Err)
	}

	// The connection is cut: a failure of kind unreachable, and a new
	// connection for the new probe; the old probe sees its session end.
	rel.cut()
	f.mu.Lock()
	done = f.watches["web1"].w.Done()
	f.mu.Unlock()
	<-done
	r = probe(t, f, "web1")["web1"]
	if !errors.As(r.Err, &gap) || r.Kind != monitor.KindUnreachable || !gap.Restarted || !r.Dialed {
		t.Fatalf("tick after the cut: %v (%s), %+v; want a restarted GapError of kind unreachable over a new connection", r.Err, r.Kind, r)
	}
	watchingProbes(t, dir, 1)
	if r := probe(t, f, "web1")["web1"]; r.Err != nil || r.Snapshot.Interval == nil {
		t.Fatalf("tick after the redial: %v", r.Err)
	}

	// Watch mode turned off for web1: a one-shot probe, and none left running.
	f.SetInventory(parseInventory(t, srv, "[schedule]\ncron = \"@every 10s\"\n"+server("web1", rel.addr)+"resolution = \"0s\"\n"))
	if r := probe(t, f, "web1")["web1"]; r.Err != nil || r.Snapshot.Interval != nil {
		t.Fatalf("tick with resolution 0s: %v; want a one-shot snapshot", r.Err)
	}
	watchingProbes(t, dir, 0)

	// On again, then Close: nothing left running.
	f.SetInventory(parseInventory(t, srv, "[schedule]\ncron = \"@every 10s\"\n"+server("web1", rel.addr)+"resolution = \"100ms\"\n"))
	probe(t, f, "web1")
	watchingProbes(t, dir, 1)
	f.Close()
	watchingProbes(t, dir, 0)
}

// TestWatchOff: a fleet without Watch (once, collect) never keeps a probe.
func TestWatchOff(t *testing.T) {
	f, _, _, dir := watchingFleet(t, "")
	f.watch = false
	for range 2 {
		if r := probe(t, f, "web1")["web1"]; r.Err != nil || r.Snapshot.Interval != nil {
			t.Fatalf("probe: %v; want a one-shot snapshot", r.Err)
		}
	}
	if len(f.Watching()) != 0 || len(probetest.PIDs(t, dir)) != 0 {
		t.Fatalf("watching %v, probes %v", f.Watching(), probetest.PIDs(t, dir))
	}
}
