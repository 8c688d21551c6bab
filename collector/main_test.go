package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/probetest"
	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/collector/pull"
	"github.com/crawlerfleet/collector/collector/remote"
)

// harness is one test's world: a real sshd, an inventory file and the
// collector's environment with buffers for output.
type harness struct {
	t        *testing.T
	srv      *sshdtest.Server
	dir      string
	config   string
	probes   probebin.Set
	probeDir string
	stdin    string            // what the user types
	terminal bool              // whether stdin is a terminal
	environ  map[string]string // the collector's environment variables
	hangup   chan struct{}     // what the test sends to ask the daemon to reload, as SIGHUP does
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, srv: sshdtest.Start(t), dir: t.TempDir(), probes: probetest.Set(t), hangup: make(chan struct{})}
	h.probeDir = filepath.Join(h.dir, "probe-cache")
	return h
}

// writeConfig writes an inventory whose defaults point at the test sshd's
// keys and known_hosts, followed by servers (TOML text). It reads no SSH
// client config, so that the developer's ~/.ssh/config cannot change a test.
func (h *harness) writeConfig(knownHosts, servers string) {
	h.t.Helper()
	text := fmt.Sprintf(`
[defaults]
ssh_config = ""
user = %q
identity_file = %q
known_hosts = %q
probe_dir = %q
sample = "200ms"
timeout = "20s"
`, h.srv.User, h.srv.ClientKeyFile, knownHosts, h.probeDir) + servers
	h.config = filepath.Join(h.dir, "servers.toml")
	if err := os.WriteFile(h.config, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// server returns a [[server]] entry for the test sshd.
func (h *harness) server(name, extra string) string {
	return fmt.Sprintf("\n[[server]]\nname = %q\naddress = %q\n%s\n", name, h.srv.Addr, extra)
}

// env returns the collector's environment for one command, writing to
// stdout and stderr.
func (h *harness) env(stdout, stderr io.Writer) *env {
	return &env{
		stdin:      strings.NewReader(h.stdin),
		stdout:     stdout,
		stderr:     stderr,
		isTerminal: func(any) bool { return h.terminal },
		probes:     h.probes,
		getenv:     func(k string) string { return h.environ[k] },
		hangups:    func() (<-chan struct{}, func()) { return h.hangup, func() {} },
	}
}

// run runs the collector with args and returns its exit code and output.
func (h *harness) run(args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	e := h.env(&out, &errOut)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if h.environ["COLLECTOR_CONFIG"] == "" {
		args = append([]string{"--config", h.config}, args...)
	}
	code = run(ctx, args, e)
	return code, out.String(), errOut.String()
}

// onceJSON runs `once --json` and decodes its lines by server.
func (h *harness) onceJSON(names ...string) (int, map[string]jsonResult) {
	h.t.Helper()
	code, stdout, stderr := h.run(append([]string{"once", "--json"}, names...)...)
	results := map[string]jsonResult{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var r jsonResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			h.t.Fatalf("once --json printed a line that is not JSON: %v\n%s", err, sc.Text())
		}
		results[r.Server] = r
	}
	if len(results) != len(names) {
		h.t.Fatalf("once --json printed %d results for %d servers:\nstdout:\n%s\nstderr:\n%s", len(results), len(names), stdout, stderr)
	}
	return code, results
}

func memTotal(t *testing.T) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

func TestOnceOverSSH(t *testing.T) {
	h := newHarness(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", ""))

	code, results := h.onceJSON("web1")
	r := results["web1"]
	if code != exitOK || !r.OK {
		t.Fatalf("once web1: exit %d, result %+v", code, r)
	}
	if got, want := r.Snapshot.Memory.Total, memTotal(t); got != want {
		t.Errorf("memory total = %d, want %d from /proc/meminfo", got, want)
	}
	if r.Snapshot.CPU.LogicalCount != runtime.NumCPU() {
		t.Errorf("logical CPUs = %d, want %d", r.Snapshot.CPU.LogicalCount, runtime.NumCPU())
	}
	if r.Snapshot.Disk.Path != "/" || r.Snapshot.Disk.Total == 0 {
		t.Errorf("disk = %+v", r.Snapshot.Disk)
	}

	// The human table names the server and its sections.
	code, stdout, stderr := h.run("once", "web1")
	if code != exitOK {
		t.Fatalf("once web1 (table): exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"web1  ok in", "cpu", "memory", "disk /", "processes", "python"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}

func TestOnceUploadsProbeOnlyOnce(t *testing.T) {
	h := newHarness(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", ""))

	if code, results := h.onceJSON("web1"); code != exitOK {
		t.Fatalf("first once: %+v", results)
	}
	entries, err := os.ReadDir(h.probeDir)
	if err != nil || len(entries) != 2 || entries[1].Name() != pull.StateFile {
		t.Fatalf("probe cache after the first run: %v, %v; want one probe and its state", entries, err)
	}
	path := filepath.Join(h.probeDir, entries[0].Name())
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := h.run("--log-level", "debug", "once", "web1")
	if code != exitOK {
		t.Fatalf("second once: exit %d\n%s\n%s", code, stdout, stderr)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("the second run replaced the cached probe")
	}
	if !strings.Contains(stderr, "uploaded=false") {
		t.Errorf("second run's debug log does not say uploaded=false:\n%s", stderr)
	}
	if entries, _ := os.ReadDir(h.probeDir); len(entries) != 2 {
		t.Errorf("probe cache holds %v after two runs, want the probe and its state", entries)
	}
}

func TestOnceRefusesUnknownAndChangedHostKeys(t *testing.T) {
	h := newHarness(t)
	empty := filepath.Join(h.dir, "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.writeConfig(empty, h.server("web1", ""))
	code, results := h.onceJSON("web1")
	r := results["web1"]
	if code == exitOK || r.OK || r.Kind != "hostkey" {
		t.Fatalf("unknown host: exit %d, %+v; want a hostkey failure", code, r)
	}
	if !strings.Contains(r.Error, "collector trust web1") {
		t.Errorf("unknown-host error does not say how to fix it: %s", r.Error)
	}

	// A known_hosts that records another key for the address.
	other := filepath.Join(h.dir, "other_known_hosts")
	line := fmt.Sprintf("[%s]:%d ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n", h.srv.Host, h.srv.Port)
	if err := os.WriteFile(other, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	h.writeConfig(other, h.server("web1", ""))
	code, results = h.onceJSON("web1")
	r = results["web1"]
	if code == exitOK || r.OK || r.Kind != "hostkey" {
		t.Fatalf("changed key: exit %d, %+v; want a hostkey failure", code, r)
	}
	if !strings.Contains(strings.ToLower(r.Error), "changed") || !strings.Contains(r.Error, other+":1") {
		t.Errorf("changed-key error does not say it changed and where: %s", r.Error)
	}
	if strings.Contains(r.Error, "unknown") {
		t.Errorf("changed-key error reads like an unknown host: %s", r.Error)
	}
}

func TestOnceHungHostTimesOutWhileOthersSucceed(t *testing.T) {
	h := newHarness(t)
	hung := sshdtest.HungListener(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+
		fmt.Sprintf("\n[[server]]\nname = \"hung\"\naddress = %q\ntimeout = \"3s\"\nconnect_timeout = \"1s\"\n", hung))

	start := time.Now()
	code, results := h.onceJSON("hung", "web1")
	elapsed := time.Since(start)
	if code != exitFailure {
		t.Errorf("exit %d, want %d when one server fails", code, exitFailure)
	}
	if r := results["web1"]; !r.OK {
		t.Errorf("web1 failed next to a hung host: %+v", r)
	}
	r := results["hung"]
	if r.OK || r.Kind != "timeout" {
		t.Fatalf("hung host: %+v; want a timeout", r)
	}
	if r.DurationMS > 3000 {
		t.Errorf("hung host took %d ms, past its 1s connect timeout and 3s timeout", r.DurationMS)
	}
	if elapsed > 10*time.Second {
		t.Errorf("once took %v with a hung host", elapsed)
	}
}

func TestOnceKeywordIsTakenLiterally(t *testing.T) {
	h := newHarness(t)
	pwned := filepath.Join(h.dir, "pwned")
	keyword := "x'; touch " + pwned + "; '"
	// A process whose command line holds the keyword, which the probe must count.
	child := exec.Command("sleep", "300")
	child.Args[0] = keyword
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	kw, _ := json.Marshal([]string{keyword, "$(touch " + pwned + ")"})
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "keywords = "+string(kw)))

	code, results := h.onceJSON("web1")
	r := results["web1"]
	if code != exitOK || !r.OK {
		t.Fatalf("once: %+v", r)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a keyword was executed by the remote shell")
	}
	m := r.Snapshot.Processes.Matched
	if len(m) != 2 || m[0].Keyword != keyword || m[0].Count != 1 || len(m[0].PIDs) != 1 || int(m[0].PIDs[0]) != child.Process.Pid {
		t.Errorf("matched = %+v, want the child (pid %d) under the literal keyword", m, child.Process.Pid)
	}
}

func TestOnceGarbageProbeOutput(t *testing.T) {
	h := newHarness(t)
	b := probebin.NewBuild("linux", runtime.GOARCH, []byte("#!/bin/sh\necho 'Welcome to Ubuntu 24.04 LTS'\n"))
	h.probes = probebin.Set{b.Platform(): b}
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", ""))
	code, results := h.onceJSON("web1")
	r := results["web1"]
	if code != exitFailure || r.OK || r.Kind != "probe" {
		t.Fatalf("garbage output: exit %d, %+v; want a probe failure", code, r)
	}
	if !strings.Contains(r.Error, "Welcome to Ubuntu") {
		t.Errorf("error does not show what the target printed: %s", r.Error)
	}
}

// startProcesses starts n sleeping processes whose command lines hold
// marker, and returns their pids.
func startProcesses(t *testing.T, n int, marker string) []int32 {
	t.Helper()
	var pids []int32
	for range n {
		cmd := exec.Command("sleep", "300")
		cmd.Args[0] = marker
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		pids = append(pids, int32(cmd.Process.Pid))
	}
	return pids
}

func TestOnceThroughJumpHostAndLocal(t *testing.T) {
	h := newHarness(t)
	// Three probes run at once on this machine: none may count another, nor
	// the shell that starts another, although their command lines all hold
	// the keyword.
	marker := fmt.Sprintf("crawler-%d", time.Now().UnixNano())
	pids := startProcesses(t, 2, marker)
	kw := fmt.Sprintf("keywords = [%q]", marker)
	h.writeConfig(h.srv.KnownHostsFile, h.server("bastion", kw)+h.server("inner", `jump = "bastion"`+"\n"+kw)+
		"\n[[server]]\nname = \"master\"\naddress = \"local\"\n"+kw+"\n")
	code, results := h.onceJSON("bastion", "inner", "master")
	if code != exitOK {
		t.Fatalf("exit %d: %+v", code, results)
	}
	for name, r := range results {
		if !r.OK || r.Snapshot.Memory.Total != memTotal(t) {
			t.Errorf("%s: %+v", name, r)
			continue
		}
		if m := r.Snapshot.Processes.Matched; len(m) != 1 || fmt.Sprint(m[0].PIDs) != fmt.Sprint(pids) {
			t.Errorf("%s matched %+v, want exactly pids %v", name, m, pids)
		}
	}
}

func TestTrust(t *testing.T) {
	h := newHarness(t)
	known := filepath.Join(h.dir, "known", "hosts")
	h.writeConfig(known, h.server("web1", ""))

	// Without a terminal and without --yes, nothing is recorded.
	code, stdout, stderr := h.run("trust", "web1")
	if code == exitOK || !strings.Contains(stderr, "--yes") {
		t.Fatalf("trust without --yes: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(known); err == nil {
		t.Fatal("trust recorded a key it was not told to")
	}
	code, stdout, stderr = h.run("trust", "--yes", "web1")
	if code != exitOK {
		t.Fatalf("trust --yes: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if want := remote.Fingerprint(h.srv.HostKey); !strings.Contains(stdout, want) {
		t.Errorf("trust output lacks the fingerprint %s:\n%s", want, stdout)
	}
	if code, results := h.onceJSON("web1"); code != exitOK {
		t.Fatalf("once after trust: %+v", results)
	}
}

func TestUsageErrors(t *testing.T) {
	h := newHarness(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", `tags = ["crawlers"]`))
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no command", nil, exitUsage, "Usage"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"once without names", []string{"once"}, exitUsage, "Usage: collector once"},
		{"unknown server", []string{"once", "web2"}, exitUsage, "web1"},
		{"bad flag", []string{"once", "--jsn", "web1"}, exitUsage, "jsn"},
		{"missing config", []string{"--config", filepath.Join(h.dir, "nope.toml"), "once", "web1"}, exitUsage, "nope.toml"},
		{"two unknown servers", []string{"once", "webx", "weby"}, exitUsage, "collector: unknown server 'weby'"},
		{"a command's help", []string{"run", "-h"}, exitOK, "Usage: collector run"},
		{"a bad flag of run", []string{"run", "--bogus"}, exitUsage, "Usage: collector run"},
		{"an unknown server of report", []string{"report", "web9"}, exitUsage, "collector: unknown server 'web9'"},
		{"a tag named as a server", []string{"once", "crawlers"}, exitUsage, "collector: unknown server 'crawlers' (it is a tag: use --tag crawlers)\n"},
		{"an unknown tag", []string{"check", "--tag", "crawler"}, exitUsage, "no server in " + h.config + " has the tag 'crawler'; did you mean 'crawlers'?"},
		{"--all with a name", []string{"once", "--all", "web1"}, exitUsage, "--all selects every server"},
		{"trust without names", []string{"trust"}, exitUsage, "Usage: collector trust"},
		{"silences help", []string{"silences", "-h"}, exitOK, "Usage: collector silences"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			code, _, stderr := h.run(args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("collector %v: exit %d, stderr %q; want exit %d and %q", args, code, stderr, tt.code, tt.want)
			}
			if n := strings.Count(stderr, "Usage:"); n > 1 {
				t.Errorf("collector %v printed its usage %d times:\n%s", args, n, stderr)
			}
		})
	}
}

func TestTrustRefusesToReplaceARecordedKey(t *testing.T) {
	h := newHarness(t)
	other := sshdtest.Start(t)
	// known_hosts records another server's key for this server's address.
	known := filepath.Join(h.dir, "known_hosts")
	if err := remote.AddKnownHost(known, h.srv.Addr, other.HostKey); err != nil {
		t.Fatal(err)
	}
	h.writeConfig(known, h.server("web1", ""))
	code, stdout, stderr := h.run("trust", "--yes", "web1")
	if code == exitOK || !strings.Contains(stderr, "CHANGED") {
		t.Fatalf("trust over a changed key: exit %d\n%s\n%s", code, stdout, stderr)
	}
	data, _ := os.ReadFile(known)
	if strings.Count(string(data), "\n") != 1 {
		t.Errorf("known_hosts was changed:\n%s", data)
	}
}

func TestTrustAsksOnATerminal(t *testing.T) {
	h := newHarness(t)
	known := filepath.Join(h.dir, "known_hosts")
	h.writeConfig(known, h.server("web1", ""))
	h.terminal = true

	h.stdin = "n\n"
	code, stdout, _ := h.run("trust", "web1")
	if code == exitOK || !strings.Contains(stdout, "[y/N]") || !strings.Contains(stdout, "Not recorded") {
		t.Fatalf("answer no: exit %d\n%s", code, stdout)
	}
	if _, err := os.Stat(known); err == nil {
		t.Fatal("a key was recorded after the user said no")
	}

	h.stdin = "yes\n"
	if code, stdout, stderr := h.run("trust", "web1"); code != exitOK {
		t.Fatalf("answer yes: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if err := remote.CheckKnownHost(remote.Endpoint{Name: "web1", Addr: h.srv.Addr, KnownHosts: known}, h.srv.HostKey); err != nil {
		t.Errorf("after trust: %v", err)
	}
	// Trusting again changes nothing.
	if code, stdout, _ := h.run("trust", "--yes", "web1"); code != exitOK || !strings.Contains(stdout, "already recorded") {
		t.Errorf("trust again: exit %d\n%s", code, stdout)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	h := newHarness(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", ""))
	h.environ = map[string]string{"COLLECTOR_CONFIG": h.config}
	if code, results := h.onceJSON("web1"); code != exitOK || !results["web1"].OK {
		t.Fatalf("once with COLLECTOR_CONFIG: exit %d, %+v", code, results)
	}
}

// TestMain runs the tests, or, with COLLECTOR_TEST_MEASURE_RSS set, only
// measures the peak RSS of one command for a benchmark (see peakRSS).
func TestMain(m *testing.M) {
	if argv := os.Getenv(measureEnv); argv != "" {
		os.Exit(measure(argv))
	}
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(childMain(cfg))
	}
	if spec := os.Getenv(ferretEnv); spec != "" {
		os.Exit(ferretMain(spec))
	}
	os.Exit(m.Run())
}
