package main

import (
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
	"time"

	"github.com/crawlerfleet/collector/collector/probebin"
)

const sshdservePkg = "github.com/crawlerfleet/collector/collector/internal/sshdtest/sshdserve"

// runParent builds what the children need, runs one child per N and reports.
func runParent(ctx context.Context, o options, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	dir, err := os.MkdirTemp("", "fleetbench-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	sshdserve := filepath.Join(dir, "sshdserve")
	if err := goBuild(ctx, sshdserve, sshdservePkg, nil); err != nil {
		return err
	}
	probes := ""
	if _, err := probebin.Embedded.For("linux", runtime.GOARCH); err != nil {
		// A fresh clone has no embedded builds: build this platform's probe
		// the way `go generate ./collector/probebin` does.
		probes = filepath.Join(dir, "probes")
		out := filepath.Join(probes, "probe-linux-"+runtime.GOARCH)
		env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH}
		if err := goBuild(ctx, out, "github.com/crawlerfleet/collector/probe", env, "-trimpath", "-ldflags=-s -w -buildid="); err != nil {
			return err
		}
	}

	rep := report{Machine: readMachine(), Warm: o.warm, RealHome: o.realHome}
	started := time.Now()
	for _, n := range o.sizes {
		fmt.Fprintf(stderr, "fleetbench: N=%d: cold round, %d warm rounds, ssh-cat\n", n, o.warm)
		args := []string{"-child", "-n", strconv.Itoa(n), "-warm", strconv.Itoa(o.warm), "-sample", o.sample.String(), "-sshdserve", sshdserve}
		if probes != "" {
			args = append(args, "-probes", probes)
		}
		if o.realHome {
			args = append(args, "-real-home")
		}
		if o.cpuprofile != "" {
			args = append(args, "-cpuprofile", o.cpuprofile)
		}
		cmd := exec.CommandContext(ctx, self, args...)
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 30 * time.Second
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("N=%d: %w", n, err)
		}
		var r Result
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			return fmt.Errorf("N=%d: decode the child's result: %w", n, err)
		}
		rep.Results = append(rep.Results, r)
	}
	rep.Duration = time.Since(started)

	md := rep.markdown()
	if _, err := io.WriteString(stdout, md); err != nil {
		return err
	}
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		fmt.Fprintf(stderr, "fleetbench: wrote %s\n", o.out)
	}
	return nil
}

// goBuild builds pkg into out with the go command on PATH.
func goBuild(ctx context.Context, out, pkg string, env []string, flags ...string) error {
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (run from the module's directory): %w\n%s", pkg, err, b)
	}
	return nil
}

// A machine describes where the benchmark ran.
type machine struct {
	CPUs    int
	CPU     string // model name
	Kernel  string
	Go      string
	OpenSSH string
	Date    time.Time
	// Busy is how busy the machine's CPUs were, in percent, in the few
	// seconds before the run: other work shares them with the benchmark.
	Busy float64
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := exec.Command("ssh", "-V").CombinedOutput(); err == nil {
		m.OpenSSH = strings.TrimSpace(string(b))
	}
	const window = 3 * time.Second
	before := machineBusy()
	time.Sleep(window)
	m.Busy = 100 * float64(machineBusy()-before) / float64(window*time.Duration(m.CPUs))
	return m
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
