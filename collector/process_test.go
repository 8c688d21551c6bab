package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/store/embedded"
)

// The tests here run the collector, and a MongoDB-wire server (FerretDB),
// as processes of their own, so that they can be killed with SIGKILL,
// stopped with SIGTERM or SIGSTOP, and run beside each other, as on a real
// machine. Both are this test binary started again: TestMain sees one of
// these variables and runs the collector or FerretDB instead of the tests.
const (
	// childEnv holds a childConfig as JSON: run the collector with the
	// process's arguments.
	childEnv = "COLLECTOR_TEST_CHILD"
	// ferretEnv holds "addr dir": serve FerretDB on addr, its files in
	// dir (which may hold spaces), until killed.
	ferretEnv = "COLLECTOR_TEST_FERRETDB"
)

// childConfig is what the collector process needs from its test.
type childConfig struct {
	ProbeFile string `json:"probe_file"` // the probe build for this machine
}

// childMain runs the collector as `collector` would, with the test's probe
// build; it returns the exit code.
func childMain(cfgJSON string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", childEnv, err)
		return 2
	}
	bin, err := os.ReadFile(cfg.ProbeFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", childEnv, err)
		return 2
	}
	b := probebin.NewBuild("linux", runtime.GOARCH, bin)
	e := newEnv()
	e.probes = probebin.Set{b.Platform(): b}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], e)
}

// ferretMain serves FerretDB until the process is killed.
func ferretMain(spec string) int {
	addr, dir, ok := strings.Cut(spec, " ")
	if !ok {
		fmt.Fprintf(os.Stderr, "%s=%q: want \"addr dir\"\n", ferretEnv, spec)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := embedded.Start(ctx, dir, addr, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		return 1
	}
	fmt.Println("ferretdb listening on", srv.URI())
	<-ctx.Done()
	srv.Stop()
	return 0
}

// proc is a process a test started, with its output.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
	err  error
}

func startProc(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out)
		}
	})
	return p
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s: %v", p.name, err)
	}
}

// wait waits for the process to end, at most limit (a safety net against a
// hang, not a timing), and returns its exit code.
func (p *proc) wait(limit time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("%s did not exit within %v\n%s", p.name, limit, p.out)
	}
	if p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startCollector runs `collector --config <h.config> args...` as a process.
func (h *harness) startCollector(args ...string) *proc {
	h.t.Helper()
	probeFile := filepath.Join(h.dir, "probe-build")
	if _, err := os.Stat(probeFile); err != nil {
		for _, b := range h.probes {
			if err := os.WriteFile(probeFile, b.Binary, 0o700); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	cfg, _ := json.Marshal(childConfig{ProbeFile: probeFile})
	env := []string{childEnv + "=" + string(cfg)}
	for k, v := range h.environ {
		env = append(env, k+"="+v)
	}
	return startProc(h.t, "collector "+strings.Join(args, " "), env, append([]string{"--config", h.config}, args...)...)
}

// startFerretDB serves FerretDB on addr with its files in dir, as a process
// of its own, and waits until it listens.
func startFerretDB(t testing.TB, dir, addr string) *proc {
	t.Helper()
	p := startProc(t, "ferretdb", []string{ferretEnv + "=" + addr + " " + dir})
	testutil.Eventually(t, testutil.Patience, "FerretDB listening", func() bool {
		return strings.Contains(p.out.String(), "ferretdb listening on") || p.exited()
	})
	if p.exited() {
		t.Fatalf("FerretDB exited:\n%s", p.out)
	}
	return p
}
