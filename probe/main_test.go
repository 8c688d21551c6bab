package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// childEnv makes the test binary act as a process for the probe to find:
// "idle" sleeps, "busy" spins. Either prints "ready" first.
const childEnv = "PROBE_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		code := m.Run()
		if probeBuild.path != "" {
			os.RemoveAll(filepath.Dir(probeBuild.path))
		}
		os.Exit(code)
	case "idle":
		os.Stdout.WriteString("ready\n")
		time.Sleep(time.Hour)
	case "busy":
		os.Stdout.WriteString("ready\n")
		for n := 0; ; n++ {
			_ = n * n
		}
	}
	os.Exit(3)
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name     string
		sample   time.Duration
		timeout  time.Duration
		keywords []string
		want     options
		wantErr  string
	}{
		{"no keywords count none", time.Second, 20 * time.Second, nil,
			options{sample: time.Second, timeout: 20 * time.Second, keywords: nil}, ""},
		{"keywords kept in order", 0, time.Second, []string{"java", "-weird", "x'; y"},
			options{sample: 0, timeout: time.Second, keywords: []string{"java", "-weird", "x'; y"}}, ""},
		{"negative sample", -time.Second, time.Second, nil, options{}, "-sample -1s is negative"},
		{"zero timeout", time.Second, 0, nil, options{}, "-timeout 0s must be positive"},
		{"empty keyword", time.Second, time.Second, []string{"java", ""}, options{}, "keyword 2 is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newOptions(tt.sample, tt.timeout, tt.keywords)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newOptions error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newOptions: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("newOptions = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestRunWithoutSnapshot covers the runs that print no snapshot.
func TestRunWithoutSnapshot(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"version", []string{"-version"}, 0, strconv.Itoa(snapshot.Version) + "\n", ""},
		{"help", []string{"-h"}, 0, "", "usage: probe [-sample 1s]"},
		{"unknown flag", []string{"-bogus"}, 2, "", "usage: probe"},
		{"bad duration", []string{"-sample", "soon"}, 2, "", "invalid value \"soon\" for flag -sample"},
		{"negative sample", []string{"-sample", "-1s"}, 2, "", "probe: -sample -1s is negative"},
		{"zero timeout", []string{"-timeout", "0s"}, 2, "", "-timeout 0s must be positive"},
		{"empty keyword", []string{"python", ""}, 2, "", "keyword 2 is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d; stderr: %s", tt.args, code, tt.wantCode, stderr.String())
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestRunWriteError(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-sample", "0"}, strings.NewReader(""), failWriter{}, &stderr); code != 1 {
		t.Errorf("run with a broken stdout = %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "write snapshot: broken pipe") {
		t.Errorf("stderr = %q, want the write error", stderr.String())
	}
}

var probeBuild struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// buildProbe builds the probe binary once per test run, the way it ships.
func buildProbe(t testing.TB) string {
	t.Helper()
	probeBuild.once.Do(func() {
		goBin := goBinary()
		dir, err := os.MkdirTemp("", "probe-test-")
		if err != nil {
			probeBuild.err = err
			return
		}
		probeBuild.path = filepath.Join(dir, "probe")
		cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", probeBuild.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		probeBuild.out, probeBuild.err = cmd.CombinedOutput()
	})
	if probeBuild.err != nil {
		t.Fatalf("build probe: %v\n%s", probeBuild.err, probeBuild.out)
	}
	return probeBuild.path
}

// goBinary returns the go command that runs the tests.
func goBinary() string {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if p, err := exec.LookPath("go"); err == nil {
			return p
		}
	}
	return goBin
}

// startChild starts the test binary as an idle or busy process whose
// command line ends with arg, and waits until it runs.
func startChild(t *testing.T, mode, arg string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", arg)
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child said %q, %v; want ready", line, err)
	}
	return cmd.Process.Pid
}

// probeRun is one run of the probe binary.
type probeRun struct {
	pid    int
	code   int
	stdout []byte
	stderr string
	took   time.Duration
}

func runProbe(t *testing.T, args ...string) probeRun {
	t.Helper()
	cmd := exec.Command(buildProbe(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start probe: %v", err)
	}
	r := probeRun{pid: cmd.Process.Pid}
	err := cmd.Wait()
	r.took = time.Since(begin)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run probe: %v", err)
	}
	r.code = cmd.ProcessState.ExitCode()
	r.stdout, r.stderr = stdout.Bytes(), stderr.String()
	return r
}

// decode checks that r printed one snapshot on one line and exited 0.
func (r probeRun) decode(t *testing.T) *snapshot.Snapshot {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("probe exited %d; stderr: %s", r.code, r.stderr)
	}
	if !bytes.HasSuffix(r.stdout, []byte("}\n")) || bytes.Count(r.stdout, []byte("\n")) != 1 {
		t.Errorf("stdout is not one JSON object and a newline: %q", r.stdout)
	}
	s, err := snapshot.Decode(bytes.NewReader(r.stdout), 0)
	if err != nil {
		t.Fatalf("decode probe output: %v", err)
	}
	return s
}

func randomKeyword(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "probe-test-" + hex.EncodeToString(b)
}

// memTotal reads MemTotal from /proc/meminfo, in bytes.
func memTotal(t *testing.T) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kB, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			return kB * 1024
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

func matchOf(t *testing.T, s *snapshot.Snapshot, keyword string) snapshot.Match {
	t.Helper()
	for _, m := range s.Processes.Matched {
		if m.Keyword == keyword {
			return m
		}
	}
	t.Fatalf("no match entry for %q in %+v", keyword, s.Processes.Matched)
	return snapshot.Match{}
}

func TestProbeBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the probe targets linux")
	}
	key := randomKeyword(t)
	idle := startChild(t, "idle", key+"-idle")
	busy := startChild(t, "busy", key+"-busy")

	before := time.Now()
	r := runProbe(t, "-sample", "300ms", key+"-idle", key+"-busy", key)
	s := r.decode(t)

	if r.stderr != "" {
		t.Errorf("stderr = %q, want nothing", r.stderr)
	}
	for section, e := range map[string]string{
		"top": s.Error, "cpu": s.CPU.Error, "memory": s.Memory.Error, "disk": s.Disk.Error, "processes": s.Processes.Error,
	} {
		if e != "" {
			t.Errorf("%s error: %s", section, e)
		}
	}
	if s.Time.Before(before.Add(-time.Second)) || s.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("time = %v, want within the run from %v", s.Time, before)
	}
	if host, _ := os.Hostname(); s.Hostname != host {
		t.Errorf("hostname = %q, want %q", s.Hostname, host)
	}
	if want := memTotal(t); s.Memory.Total != want {
		t.Errorf("memory.total = %d, want MemTotal %d", s.Memory.Total, want)
	}
	if s.Disk.Path != "/" || s.Disk.Total == 0 || s.Disk.Used > s.Disk.Total {
		t.Errorf("disk = %+v, want the usage of /", s.Disk)
	}
	if s.CPU.LogicalCount < 1 || s.CPU.Count < 1 || s.CPU.Count > s.CPU.LogicalCount {
		t.Errorf("cpu counts = %d physical, %d logical", s.CPU.Count, s.CPU.LogicalCount)
	}
	if s.CPU.Percent < 0 || s.CPU.Percent > 100 {
		t.Errorf("cpu.percent = %v, want 0 to 100", s.CPU.Percent)
	}
	if s.UptimeSeconds == 0 {
		t.Error("uptime_seconds = 0")
	}

	// The probe's own command line contains every keyword.
	for _, m := range s.Processes.Matched {
		if slices.Contains(m.PIDs, int32(r.pid)) {
			t.Errorf("keyword %q matched the probe itself (pid %d)", m.Keyword, r.pid)
		}
	}
	mIdle, mBusy, mBoth := matchOf(t, s, key+"-idle"), matchOf(t, s, key+"-busy"), matchOf(t, s, key)
	if want := []int32{int32(idle)}; !reflect.DeepEqual(mIdle.PIDs, want) || mIdle.Count != 1 {
		t.Errorf("idle match = %+v, want pids %v", mIdle, want)
	}
	if want := []int32{int32(busy)}; !reflect.DeepEqual(mBusy.PIDs, want) || mBusy.Count != 1 {
		t.Errorf("busy match = %+v, want pids %v", mBusy, want)
	}
	want := []int32{int32(idle), int32(busy)}
	slices.Sort(want)
	if !reflect.DeepEqual(mBoth.PIDs, want) || mBoth.Count != 2 {
		t.Errorf("match of both = %+v, want pids %v", mBoth, want)
	}
	if s.Processes.MatchedTotal != 2 {
		t.Errorf("matched_total = %d, want 2 (each child once)", s.Processes.MatchedTotal)
	}
	if s.Processes.Total < 3 {
		t.Errorf("processes.total = %d, want at least the test and its two children", s.Processes.Total)
	}
	if mIdle.RSSBytes == 0 || mBoth.RSSBytes != mIdle.RSSBytes+mBusy.RSSBytes {
		t.Errorf("rss: idle %d, busy %d, both %d; want nonzero and both the sum", mIdle.RSSBytes, mBusy.RSSBytes, mBoth.RSSBytes)
	}
	// A spinning child gets a good share of a CPU even on a loaded machine.
	if mBusy.CPUPercent < 5 || mIdle.CPUPercent >= mBusy.CPUPercent {
		t.Errorf("cpu_percent: busy %v, idle %v; want busy >= 5 and above idle", mBusy.CPUPercent, mIdle.CPUPercent)
	}
}

// TestProbeKeywordIsLiteral checks that keywords never reach a shell.
func TestProbeKeywordIsLiteral(t *testing.T) {
	dir := t.TempDir()
	key := randomKeyword(t)
	quoted := key + `'; touch ` + filepath.Join(dir, "quoted") + `; '`
	substituted := key + `$(touch ` + filepath.Join(dir, "substituted") + `)`
	backticks := key + "`touch " + filepath.Join(dir, "backticks") + "`"
	child := startChild(t, "idle", quoted)

	s := runProbe(t, "-sample", "0", quoted, substituted, backticks).decode(t)

	if m := matchOf(t, s, quoted); !reflect.DeepEqual(m.PIDs, []int32{int32(child)}) {
		t.Errorf("match of %q = %+v, want the child %d", quoted, m, child)
	}
	for _, k := range []string{substituted, backticks} {
		if m := matchOf(t, s, k); m.Count != 0 {
			t.Errorf("match of %q = %+v, want none", k, m)
		}
	}
	for _, name := range []string{"quoted", "substituted", "backticks"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a keyword ran a command (stat: %v)", name, err)
		}
	}
}

// TestProbeNoWindow checks -sample 0.
func TestProbeNoWindow(t *testing.T) {
	key := randomKeyword(t)
	r := runProbe(t, "-sample", "0", key)
	s := r.decode(t)
	if len(s.Processes.Matched) != 1 || s.Processes.Matched[0].Keyword != key {
		t.Errorf("matched = %+v, want one entry for %q", s.Processes.Matched, key)
	}
	// Since boot, this machine has been busy at least a little.
	if s.CPU.Error != "" || s.CPU.Percent <= 0 || s.CPU.Percent > 100 {
		t.Errorf("cpu = %+v, want the busy percent since boot", s.CPU)
	}
	if r.took > 5*time.Second {
		t.Errorf("probe -sample 0 took %v", r.took)
	}
}

// TestProbeNoKeywords checks that the probe has no default keywords: with
// none given (the collector's keywords = []), it counts the processes but
// matches none, not even one whose command line holds "python".
func TestProbeNoKeywords(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the probe targets linux")
	}
	startChild(t, "idle", "python-"+randomKeyword(t))
	for _, args := range [][]string{{"-sample", "0"}, {"-sample", "0", "--"}} {
		s := runProbe(t, args...).decode(t)
		if len(s.Processes.Matched) != 0 || s.Processes.MatchedTotal != 0 {
			t.Errorf("probe %q: matched = %+v, matched_total %d; want none", args, s.Processes.Matched, s.Processes.MatchedTotal)
		}
		if s.Processes.Matched == nil {
			t.Errorf("probe %q: matched is null, want an empty list", args)
		}
		if s.Processes.Error != "" || s.Processes.Total < 2 {
			t.Errorf("probe %q: processes = %+v, want the processes counted", args, s.Processes)
		}
	}
}

// TestProbeTimeout checks that a deadline shorter than the sample window
// still prints the sections that were read, and exits 0.
func TestProbeTimeout(t *testing.T) {
	// A timeout of 1s gives the readers a grace of 100ms to return what
	// they read, time enough on a machine with every CPU busy.
	r := runProbe(t, "-sample", "10s", "-timeout", "1s")
	s := r.decode(t)
	// Either collect gave up on the section, or the section saw the
	// deadline itself as its window ended; both say so.
	const want = "timed out after 1s"
	if !strings.HasSuffix(s.CPU.Error, want) || !strings.HasSuffix(s.Processes.Error, want) {
		t.Errorf("cpu.error %q, processes.error %q; want both to end with %q", s.CPU.Error, s.Processes.Error, want)
	}
	if s.Memory.Error != "" || s.Memory.Total == 0 || s.Disk.Error != "" || s.Hostname == "" {
		t.Errorf("sections read in time were lost: memory %+v disk %+v hostname %q", s.Memory, s.Disk, s.Hostname)
	}
	// The CPU section is cut short in its sample window, having read its
	// counts: the readers stop a grace before the timeout, so they come
	// through, with the error of the window.
	if want := "sample cpu times: " + want; s.CPU.Error != want || s.CPU.LogicalCount < 1 || s.CPU.Count < 1 {
		t.Errorf("cpu = %+v, want the counts read before the deadline and error %q", s.CPU, want)
	}
	// The process list is kept too when only the window was cut short.
	if strings.HasPrefix(s.Processes.Error, "sample process cpu times: ") && s.Processes.Total < 1 {
		t.Errorf("processes = %+v, want the listing read before the deadline", s.Processes)
	}
	if r.took > 5*time.Second {
		t.Errorf("probe with -timeout 1s took %v", r.took)
	}
}

func TestProbeUsageError(t *testing.T) {
	r := runProbe(t, "-sample")
	if r.code != 2 || len(r.stdout) != 0 || !strings.Contains(r.stderr, "usage: probe") {
		t.Errorf("probe -sample: exit %d, stdout %q, stderr %q; want 2, nothing, a usage line", r.code, r.stdout, r.stderr)
	}
}
