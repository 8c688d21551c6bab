// Package probetest builds the real probe for tests, so that tests run from
// a fresh clone, before `make build` has embedded any probe builds.
package probetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/crawlerfleet/collector/collector/probebin"
)

var (
	once  sync.Once
	set   probebin.Set
	err   error
	build []byte
)

// Set returns a probe build for this machine's platform, built once per
// test binary with the same flags as the release builds.
func Set(tb testing.TB) probebin.Set {
	tb.Helper()
	once.Do(func() {
		var dir string
		dir, err = os.MkdirTemp("", "probetest-")
		if err != nil {
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "probe")
		cmd := exec.Command(goTool(), "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "github.com/crawlerfleet/collector/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if build, err = cmd.CombinedOutput(); err != nil {
			return
		}
		var bin []byte
		if bin, err = os.ReadFile(out); err != nil {
			return
		}
		b := probebin.NewBuild("linux", runtime.GOARCH, bin)
		set = probebin.Set{b.Platform(): b}
	})
	if err != nil {
		tb.Fatalf("build the probe: %v\n%s", err, build)
	}
	return set
}

// goTool finds the go command: on PATH, else where `go test` itself runs
// from (GOROOT is set in the environment of tests it starts).
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// PIDs returns the pids of the processes whose command line starts with a
// path under dir: the probes run from there.
func PIDs(tb testing.TB, dir string) []int {
	tb.Helper()
	var pids []int
	for pid := range Args(tb, dir) {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// Args returns the command lines, by pid, of the processes whose command
// line starts with a path under dir.
func Args(tb testing.TB, dir string) map[int][]string {
	tb.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int][]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		if strings.HasPrefix(args[0], dir+"/") {
			out[pid] = args
		}
	}
	return out
}
