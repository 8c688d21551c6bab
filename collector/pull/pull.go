// Package pull runs the probe on one target and returns its snapshot: it
// detects the target's platform, runs the cached probe build, uploads it only
// when it is missing, and decodes the output strictly.
//
// It speaks to the target through a Runner (an SSH connection or this
// machine) and knows nothing of how that connection was made.
package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// A Runner runs a shell command on a target. *remote.Client and
// remote.Local satisfy it.
type Runner interface {
	Run(ctx context.Context, cmd string, stdin io.Reader, maxStdout int64) (remote.Result, error)
}

// DefaultProbeDir is where the probe is cached on a target. A leading "~/"
// is expanded by the target's shell.
const DefaultProbeDir = "~/.cache/collector"

// StateFile is the name of the file, in the probe directory, where the
// one-shot probe keeps what it learned of each process between runs
// (probe -state): with it, each run reads each process once and measures
// its CPU since the previous run. An interrupted write leaves a temporary
// file that the next upload removes.
const StateFile = "probe-state"

// Options says how to run the probe.
type Options struct {
	Keywords  []string      // process keywords; none counts no process (the probe has no default)
	Sample    time.Duration // CPU sample window, always passed; 0 gives averages since boot
	ProbeDir  string        // DefaultProbeDir when empty
	MaxOutput int64         // snapshot.DefaultMaxBytes when zero
	// Now is the collector's clock, for the probe clock's skew (time.Now
	// when nil).
	Now func() time.Time
}

// Info tells what a Pull did besides reading the snapshot.
type Info struct {
	Platform string // "linux/amd64"
	Uploaded bool   // the probe was missing and was uploaded
	// ClockSkew is the probe's clock minus the collector's when the
	// snapshot arrived, when it is more than NoteClockSkew either way.
	ClockSkew time.Duration
}

// ProbeError is a failure of the probe itself: it could not be run, exited
// non-zero, or printed something that is not a snapshot. Transport failures
// (connection lost, timeout) are not ProbeErrors.
type ProbeError struct {
	Step string // "detect platform", "upload", "run", "decode", "check"
	Err  error
}

func (e *ProbeError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *ProbeError) Unwrap() error { return e.Err }

// A Target is one server reached through a Runner. It remembers the
// target's platform, so `uname` runs once per connection.
type Target struct {
	runner Runner
	probes probebin.Set

	mu    sync.Mutex
	build *probebin.Build
}

// NewTarget returns a Target that runs builds from probes through r.
func NewTarget(r Runner, probes probebin.Set) *Target {
	return &Target{runner: r, probes: probes}
}

// Pull runs the probe once and returns its snapshot.
func (t *Target) Pull(ctx context.Context, opts Options) (*snapshot.Snapshot, Info, error) {
	var info Info
	build, err := t.platformBuild(ctx)
	if err != nil {
		return nil, info, err
	}
	info.Platform = build.Platform()
	dir := opts.ProbeDir
	if dir == "" {
		dir = DefaultProbeDir
	}

	res, err := t.runner.Run(ctx, probeCommand(ctx, dir, build, opts), nil, maxOutput(opts))
	if err != nil {
		return nil, info, wrapRun("run", err)
	}
	if missing(res) {
		if err := t.upload(ctx, dir, build); err != nil {
			return nil, info, err
		}
		info.Uploaded = true
		// Built again: the upload took part of the time left, and the probe's
		// -timeout must still end inside ctx's deadline.
		if res, err = t.runner.Run(ctx, probeCommand(ctx, dir, build, opts), nil, maxOutput(opts)); err != nil {
			return nil, info, wrapRun("run", err)
		}
		if missing(res) {
			return nil, info, &ProbeError{Step: "run", Err: fmt.Errorf("probe uploaded to %s but cannot be executed (exit %d: %s); is the directory on a noexec file system? set probe_dir", dir, res.ExitStatus, stderrText(res))}
		}
	}
	if res.ExitStatus != 0 || res.Signal != "" {
		return nil, info, &ProbeError{Step: "run", Err: fmt.Errorf("probe %s: %s", exitText(res), stderrText(res))}
	}
	snap, err := snapshot.Unmarshal(res.Stdout)
	if err != nil {
		return nil, info, &ProbeError{Step: "decode", Err: err}
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	if err := check(snap, opts.Keywords, now); err != nil {
		return nil, info, &ProbeError{Step: "check", Err: err}
	}
	if skew := snap.Time.Sub(now); skew > NoteClockSkew || skew < -NoteClockSkew {
		info.ClockSkew = skew.Truncate(time.Millisecond)
	}
	return snap, info, nil
}

// platformBuild detects the target's platform once and returns its build.
func (t *Target) platformBuild(ctx context.Context) (probebin.Build, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.build != nil {
		return *t.build, nil
	}
	res, err := t.runner.Run(ctx, "uname -sm", nil, 4096)
	if err != nil {
		return probebin.Build{}, wrapRun("detect platform", err)
	}
	if res.ExitStatus != 0 {
		return probebin.Build{}, &ProbeError{Step: "detect platform", Err: fmt.Errorf("uname -sm: %s: %s", exitText(res), stderrText(res))}
	}
	goos, goarch, err := probebin.Platform(string(res.Stdout))
	if err != nil {
		return probebin.Build{}, &ProbeError{Step: "detect platform", Err: err}
	}
	b, err := t.probes.For(goos, goarch)
	if err != nil {
		return probebin.Build{}, &ProbeError{Step: "detect platform", Err: err}
	}
	t.build = &b
	return b, nil
}

// wrapRun names the step of a transport error. Errors of the context stay
// recognisable with errors.Is.
func wrapRun(step string, err error) error {
	if errors.Is(err, remote.ErrOutputTooLarge) {
		return &ProbeError{Step: step, Err: err}
	}
	return fmt.Errorf("%s: %w", step, err)
}

// missing reports whether the shell could not find or execute the probe.
func missing(res remote.Result) bool {
	return res.ExitStatus == 126 || res.ExitStatus == 127
}

// probeCommand is the shell command that runs build from dir. Its -timeout
// comes from the time left to ctx's deadline now, so build it right before
// each run.
func probeCommand(ctx context.Context, dir string, build probebin.Build, opts Options) string {
	// exec: the shell becomes the probe, so no shell whose command line holds
	// the keywords lingers to be counted by this or another probe.
	return "exec " + shellPath(dir+"/"+build.FileName()) + " -state " + shellPath(dir+"/"+StateFile) + " " + probeArgs(ctx, opts)
}

// probeArgs builds the probe's quoted arguments but -state. -sample is
// always passed, so that 0 is not taken for the probe's own default. The
// probe's own deadline is set inventory.ProbeReserve inside the caller's
// (but at least a second), so that it prints a partial snapshot rather
// than being cut off by the collector.
func probeArgs(ctx context.Context, opts Options) string {
	args := []string{"-sample", opts.Sample.String()}
	if d, ok := ctx.Deadline(); ok {
		budget := time.Until(d) - inventory.ProbeReserve
		if budget < time.Second {
			budget = time.Second
		}
		args = append(args, "-timeout", budget.Round(time.Millisecond).String())
	}
	args = append(args, "--")
	args = append(args, opts.Keywords...)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = remote.Quote(a)
	}
	return strings.Join(quoted, " ")
}

// shellPath quotes a path for the target's shell, leaving a leading "~/" to
// be expanded there as "$HOME".
func shellPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return `"$HOME"/` + remote.Quote(rest)
	}
	return remote.Quote(p)
}

func maxOutput(opts Options) int64 {
	if opts.MaxOutput > 0 {
		return opts.MaxOutput
	}
	return snapshot.DefaultMaxBytes
}

func exitText(res remote.Result) string {
	if res.Signal != "" {
		return "killed by signal " + res.Signal
	}
	return "exit status " + strconv.Itoa(res.ExitStatus)
}

// stderrText returns the last line-ish of stderr, printable and short, for
// an error message: what a target prints cannot be trusted to be either.
func stderrText(res remote.Result) string {
	s := strings.TrimSpace(string(res.Stderr))
	if s == "" {
		return "no error output"
	}
	const max = 300
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}
