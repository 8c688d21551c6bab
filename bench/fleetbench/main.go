// Command fleetbench measures the collector's rounds against a loopback sshd
// and compares them with plain parallel `ssh host cat /proc/...`.
//
// For each fleet size N it runs itself as a child process (-child), so that
// peak RSS is measured per N. The child starts an sshd on 127.0.0.1 (through
// collector/internal/sshdtest/sshdserve), writes an inventory of N servers
// that all point at it, and measures a cold round (new connections, probe
// upload), warm rounds (connections reused) and the ssh-cat baseline. The
// parent prints a markdown report and writes it to -out. Linux only: it reads
// /proc and getrusage.
//
//	go run ./bench/fleetbench [-n 1,10,20,100,500] [-warm 3] [-out bench/results.md]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line flags; the child's are set by the parent.
type options struct {
	sizes      []int
	warm       int
	out        string
	sample     time.Duration
	cpuprofile string // directory for CPU profiles of the warm rounds
	realHome   bool   // sessions use the user's home and shell start-up files

	child     bool
	n         int
	sshdserve string // the sshdserve binary
	probes    string // directory of probe builds; the embedded ones when empty
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "fleetbench: %v\n", err)
		return 2
	}
	if o.child {
		err = runChild(ctx, o, stdout, stderr)
	} else {
		err = runParent(ctx, o, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "fleetbench: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fleetbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("n", "1,10,20,100,500", "fleet sizes, comma-separated")
	fs.IntVar(&o.warm, "warm", 3, "warm rounds per size")
	fs.StringVar(&o.out, "out", "bench/results.md", "markdown report to write (empty: stdout only)")
	fs.DurationVar(&o.sample, "sample", time.Second, "the probe's CPU sample window")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of each size's warm rounds into this `directory`")
	fs.BoolVar(&o.realHome, "real-home", false, "let SSH sessions use your real home directory, so bash sources your ~/.bashrc for each command")
	fs.BoolVar(&o.child, "child", false, "internal: measure one size and print it as JSON")
	fs.StringVar(&o.sshdserve, "sshdserve", "", "internal: the sshdserve binary")
	fs.StringVar(&o.probes, "probes", "", "internal: `directory` of probe builds")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-n: %q is not a positive number", f)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.warm < 1 {
		return o, fmt.Errorf("-warm: need at least one warm round")
	}
	if o.sample < 0 {
		return o, fmt.Errorf("-sample: negative duration")
	}
	if o.child {
		if len(o.sizes) != 1 || o.sshdserve == "" {
			return o, fmt.Errorf("-child needs one -n and -sshdserve")
		}
		o.n = o.sizes[0]
	}
	return o, nil
}
