package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store"
)

// The fault suite: the collector against a database that is killed and
// restarted, a second collector on its data directory, a full disk. Each
// runs the collector as a process of its own (see process_test.go).

// forwarder passes TCP connections on to target until it is cut: then
// every connection is dropped and new ones are refused, as when a server
// goes away.
type forwarder struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, up)
			f.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(f.cut)
	return f
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

// cut closes the listener and every connection.
func (f *forwarder) cut() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// probesDone counts the probes of server that succeeded, from the debug
// logs of a collector.
func probesDone(logs, server string) int {
	return strings.Count(logs, `msg="probe done" server=`+server+" ")
}

// roundDurations returns the duration_ms of every round in logs after mark.
func roundDurations(logs string) []int {
	var out []int
	for _, m := range regexp.MustCompile(`msg="round done" .*duration_ms=(\d+)`).FindAllStringSubmatch(logs, -1) {
		ms, _ := strconv.Atoi(m[1])
		out = append(out, ms)
	}
	return out
}

func getHealth(t *testing.T, addr string) (status string, problems []string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return "", nil
	}
	defer resp.Body.Close()
	var h struct {
		Status   string   `json:"status"`
		Problems []string `json:"problems"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return "", nil
	}
	return h.Status, h.Problems
}

// TestDatabaseOutage kills the database under a running collector and
// checks that monitoring does not go silent: a server that fails during the
// outage is notified, the collector's own "store unreachable" alert goes
// out through the channel directly, /healthz says what is wrong, rounds do
// not back up, SIGTERM ends it within grace, a collector killed with -9
// during the outage loses no result, and once the database is back every
// result is in it.
func TestDatabaseOutage(t *testing.T) {
	h := newHarness(t)
	sink := startSMTPSink(t)
	dbDir, dbAddr := t.TempDir(), freeAddr(t)
	db := startFerretDB(t, dbDir, dbAddr)
	fw := startForwarder(t, h.srv.Addr) // web2 goes through it: cut, web2 is down
	knownHosts := filepath.Join(h.dir, "known_hosts")
	lines := knownhosts.Line([]string{h.srv.Addr}, h.srv.HostKey) + "\n" + knownhosts.Line([]string{fw.addr()}, h.srv.HostKey) + "\n"
	if err := os.WriteFile(knownHosts, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	apiAddr := freeAddr(t)
	const grace = 3 * time.Second
	h.writeConfig(knownHosts, h.server("web1", "")+
		fmt.Sprintf("\n[[server]]\nname = \"web2\"\naddress = %q\n", fw.addr())+
		fmt.Sprintf("\n[store]\nuri = \"mongodb://%s/\"\ndata_dir = %q\n", dbAddr, h.dir+"/data")+
		// One-shot probes, as this test was written for: it takes a "probe
		// done" line in the log for a result in the spool, and a watched tick
		// ends long before its round's batch reaches the spool (up to
		// round.WriteEvery later), a one-shot probe of web1 just before it.
		fmt.Sprintf("\n[schedule]\ncron = \"@every 2s\"\nsplay = \"0s\"\ngrace = %q\nresolution = \"0s\"\n", grace)+
		"\n[alerts]\ndown = { after = 2 }\ncpu = { above = 0 }\nmemory = { above = 0 }\nload = { above = 0 }\ndisk = { above = 0 }\n"+sink.emailSection())

	a := h.startCollector("--log-level", "debug", "run", "--listen", apiAddr)
	testutil.Eventually(t, 2*testutil.Patience, "a first round with the database up", func() bool {
		return probesDone(a.out.String(), "web1") > 0 && probesDone(a.out.String(), "web2") > 0
	})
	if status, _ := getHealth(t, apiAddr); status != "ok" {
		t.Fatalf("/healthz with the database up: %q", status)
	}

	// The database dies; then web2 goes down.
	db.signal(syscall.SIGKILL)
	db.wait(testutil.Patience)
	mark := len(a.out.String())
	fw.cut()
	host, _ := os.Hostname()
	testutil.Eventually(t, 3*testutil.Patience, "web2's down alert and the store alert mailed during the outage", func() bool {
		var web2, store bool
		for _, s := range sink.subjects(t) {
			web2 = web2 || strings.Contains(s, "web2")
			store = store || strings.Contains(s, host)
		}
		return web2 && store
	})
	status, problems := getHealth(t, apiAddr)
	if status != "degraded" || len(problems) == 0 || !strings.Contains(strings.Join(problems, "\n"), "database unreachable since") {
		t.Errorf("/healthz during the outage: %q %q; want degraded, naming the database", status, problems)
	}
	// Rounds neither wait on the database nor queue behind each other.
	for _, ms := range roundDurations(a.out.String()[mark:]) {
		if ms > 10_000 {
			t.Errorf("a round took %d ms during the outage: rounds wait on the database", ms)
		}
	}

	// SIGTERM during the outage: out within the grace period (and the
	// close of its store), not after the database's timeouts.
	start := time.Now()
	a.signal(syscall.SIGTERM)
	if code := a.wait(2 * time.Minute); code != exitOK {
		t.Errorf("run after SIGTERM: exit %d", code)
	}
	if took := time.Since(start); took > grace+20*time.Second {
		t.Errorf("run took %v to stop after SIGTERM with grace %v during an outage", took.Round(time.Second), grace)
	}
	doneA := probesDone(a.out.String(), "web1")

	// A collector killed with -9 during the outage loses nothing of the
	// rounds it finished: a round ends once its results are in the spool.
	// (A probe that finished less than WriteEvery before the kill may not
	// be there yet: the spool's promise is half a second, not zero.)
	b := h.startCollector("--log-level", "debug", "run")
	testutil.Eventually(t, 2*testutil.Patience, "rounds of the second collector", func() bool {
		return strings.Count(b.out.String(), `msg="round done"`) >= 2
	})
	b.signal(syscall.SIGKILL)
	b.wait(testutil.Patience)
	doneB := strings.Count(b.out.String(), `msg="round done"`) // each has web1's snapshot (web2 is cut off)
	if extra := probesDone(b.out.String(), "web1") - doneB; extra < 0 || extra > 1 {
		t.Fatalf("%d probes of web1 outside a finished round; want at most the one in flight", extra)
	}

	// The database is back: the spool reaches it.
	startFerretDB(t, dbDir, dbAddr)
	if code, stdout, stderr := h.run("collect", "web1"); code != exitOK {
		t.Fatalf("collect after the outage: exit %d\n%s\n%s", code, stdout, stderr)
	}
	st, err := store.Open(context.Background(), store.Config{URI: "mongodb://" + dbAddr + "/", DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	snaps, err := st.Snapshots(context.Background(), "web1", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := doneA + doneB + 1; len(snaps) < want || len(snaps) > want+1 {
		t.Errorf("%d snapshots of web1 stored, want %d (or one more, probed as the -9 came): %d by the first collector, %d rounds finished by the one killed with -9, 1 by collect",
			len(snaps), want, doneA, doneB)
	}
	fails, err := st.Attempts(context.Background(), "web2", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || len(fails) == 0 {
		t.Errorf("web2's failures during the outage: %d stored, %v", len(fails), err)
	}
}

// TestSecondCollectorOnOneDataDir: a second collector on the data
// directory of a running one is refused, naming the process that holds it;
// the commands that only read still work beside it.
func TestSecondCollectorOnOneDataDir(t *testing.T) {
	h := newHarness(t)
	section, _ := h.storeSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+section+"\n[schedule]\ncron = \"@every 2s\"\nsplay = \"0s\"\n")
	a := h.startCollector("run")
	testutil.Eventually(t, 2*testutil.Patience, "the first collector running", func() bool {
		return strings.Contains(a.out.String(), "round done")
	})
	holder := fmt.Sprintf("collector run (pid %d on ", a.cmd.Process.Pid)

	b := h.startCollector("run")
	if code := b.wait(testutil.Patience); code != exitFailure || !strings.Contains(b.out.String(), "is in use by "+holder) {
		t.Errorf("second run: exit %d\n%s\nwant 1 and the first collector named (%s…)", code, b.out, holder)
	}
	if code, _, stderr := h.run("collect"); code != exitFailure || !strings.Contains(stderr, "is in use by "+holder) {
		t.Errorf("collect beside run: exit %d, %s", code, stderr)
	}
	if code, stdout, stderr := h.run("status"); code != exitOK || !strings.Contains(stdout, "web1") {
		t.Errorf("status beside run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	a.signal(syscall.SIGTERM)
	if code := a.wait(time.Minute); code != exitOK {
		t.Errorf("first run: exit %d", code)
	}
	// Once it is gone, the data directory is free again.
	if code, stdout, stderr := h.run("collect"); code != exitOK {
		t.Errorf("collect after run stopped: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestFullDisk fills the filesystem of the data directory (a small tmpfs;
// the test needs root to mount it) under a running collector with the
// embedded store: /healthz says degraded and names the directory, each
// round says so once, and once there is room again every result probed is
// stored, and the rollups count each once.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test mounts a tmpfs: CI runs it as root")
		}
		t.Skip("needs root to mount a small tmpfs")
	}
	h := newHarness(t)
	dataDir := h.dir + "/data"
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := runCommand("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", dataDir); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { runCommand("umount", "-l", dataDir) })
	apiAddr := freeAddr(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+fmt.Sprintf("\n[store]\ndata_dir = %q\n", dataDir)+
		"\n[schedule]\ncron = \"@every 2s\"\nsplay = \"0s\"\n")
	a := h.startCollector("--log-level", "debug", "run", "--listen", apiAddr)
	testutil.Eventually(t, 2*testutil.Patience, "a first round", func() bool { return probesDone(a.out.String(), "web1") > 0 })

	// Fill the disk.
	filler := dataDir + "/filler"
	// dd ends with "No space left on device", and an error: that is the
	// point. Any other end is not.
	if out, err := runCommand("dd", "if=/dev/zero", "of="+filler, "bs=64k"); err == nil || !strings.Contains(out, "No space left") {
		t.Fatalf("fill: %v %s", err, out)
	}
	mark := len(a.out.String())
	testutil.Eventually(t, 3*testutil.Patience, "the full disk seen", func() bool {
		status, problems := getHealth(t, apiAddr)
		return status == "degraded" && strings.Contains(strings.Join(problems, "\n"), dataDir)
	})
	fullRounds := probesDone(a.out.String()[mark:], "web1")
	testutil.Eventually(t, 2*testutil.Patience, "two rounds on the full disk", func() bool {
		return probesDone(a.out.String()[mark:], "web1") >= fullRounds+2
	})
	if n := strings.Count(a.out.String()[mark:], "free space in "+dataDir); n == 0 {
		t.Errorf("no log line naming the directory to free:\n%s", a.out.String()[mark:])
	}
	if strings.Contains(a.out.String()[mark:], "results lost") {
		t.Errorf("results logged as lost while they wait in memory:\n%s", a.out.String()[mark:])
	}

	// Room again: what waited reaches the store.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 3*testutil.Patience, "healthy again", func() bool {
		status, _ := getHealth(t, apiAddr)
		return status == "ok"
	})
	a.signal(syscall.SIGTERM)
	a.wait(time.Minute)
	done := probesDone(a.out.String(), "web1")
	st := openTestStore(t, dataDir)
	snaps, err := st.Snapshots(context.Background(), "web1", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), 0)
	if err != nil || len(snaps) != done {
		t.Errorf("%d snapshots stored (%v), %d probed", len(snaps), err, done)
	}
	rs, err := st.Rollups(context.Background(), monitor.RollupFilter{Servers: []string{"web1"}, Period: monitor.Day, From: time.Now().Add(-48 * time.Hour), To: time.Now().Add(time.Hour)})
	var counted int64
	for _, r := range rs {
		counted += r.Count
	}
	if err != nil || counted != int64(done) {
		t.Errorf("daily rollups count %d snapshots (%v), %d probed", counted, err, done)
	}
}

func runCommand(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
