package pull

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/inventory"
)

// countingRunner runs commands on this machine and counts them.
type countingRunner struct {
	remote.Local
	uname, runs atomic.Int32
}

func (c *countingRunner) Run(ctx context.Context, cmd string, stdin io.Reader, max int64) (remote.Result, error) {
	if cmd == "uname -sm" {
		c.uname.Add(1)
	}
	c.runs.Add(1)
	return c.Local.Run(ctx, cmd, stdin, max)
}

// scriptProbe returns a probe "build" for this machine that is a shell script.
// The script body gets the probe's arguments as "$@".
func scriptProbe(t *testing.T, body string) probebin.Set {
	t.Helper()
	res, err := remote.Local{}.Run(context.Background(), "uname -sm", nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	goos, goarch, err := probebin.Platform(string(res.Stdout))
	if err != nil {
		t.Skipf("this machine: %v", err)
	}
	b := probebin.NewBuild(goos, goarch, []byte("#!/bin/sh\n"+body+"\n"))
	return probebin.Set{b.Platform(): b}
}

// probesPlatform returns the platform of a one-build set.
func probesPlatform(s probebin.Set) (goos, goarch string) {
	for _, b := range s {
		return b.GOOS, b.GOARCH
	}
	return "", ""
}

// probeClock is the collector's clock in these tests: just after the time
// of goodSnapshot, so that its probe clock is not refused as skewed.
func probeClock() time.Time { return time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC) }

const goodSnapshot = `{"version":1,"time":"2026-11-25T10:00:00Z","hostname":"h","uptime_seconds":5,` +
	`"cpu":{"count":1,"logical_count":2,"percent":12.5,"load1":0.1,"load5":0.2,"load15":0.3},` +
	`"memory":{"total":1000,"used":400,"free":600,"available":600,"buffers":1,"cached":2,"used_percent":40},` +
	`"disk":{"path":"/","total":10,"used":5,"free":5,"used_percent":50},` +
	`"processes":{"total":3,"matched":[],"matched_total":0}}` // the fake probes ignore keywords: they match none

func TestPullUploadsOnceThenRunsCached(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache dir")
	probes := scriptProbe(t, "echo '"+goodSnapshot+"'")
	r := &countingRunner{}
	target := NewTarget(r, probes)
	opts := Options{ProbeDir: dir, Now: probeClock}

	snap, info, err := target.Pull(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Uploaded {
		t.Error("first pull: Uploaded = false, want true")
	}
	if snap.Processes.Total != 3 || snap.Memory.Total != 1000 {
		t.Errorf("snapshot = %+v", snap)
	}
	b, err := probes.For(probesPlatform(probes))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, b.FileName()))
	if err != nil {
		t.Fatalf("probe not cached: %v", err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("probe mode = %v, want 0700", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("cache dir holds %d files, want only the probe (no temp files left)", len(entries))
	}

	// A second pull on a new connection finds the cached probe.
	target2 := NewTarget(r, probes)
	runsBefore := r.runs.Load()
	if _, info, err = target2.Pull(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if info.Uploaded {
		t.Error("second pull uploaded again")
	}
	if got := r.runs.Load() - runsBefore; got != 2 {
		t.Errorf("second pull ran %d commands, want 2 (uname, probe)", got)
	}
	// The same connection does not ask for the platform again.
	if _, _, err = target2.Pull(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if got := r.uname.Load(); got != 2 {
		t.Errorf("uname ran %d times for two connections, want 2", got)
	}
}

// TestUploadRemovesStaleBuilds puts older builds and leftovers next to the
// probe: an upload removes the builds past StaleBuildDays and old temporary
// files, and keeps recent builds and anything that is not the collector's.
func TestUploadRemovesStaleBuilds(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	files := []struct {
		name string
		age  time.Duration
		kept bool
	}{
		{"probe-00112233aabbccdd", (StaleBuildDays + 5) * 24 * time.Hour, false},
		{"probe-44556677aabbccdd", 5 * 24 * time.Hour, true},
		{".probe-00112233aabbccdd.tmp.4242", 2 * time.Hour, false},
		{".probe-44556677aabbccdd.tmp.4343", 10 * time.Minute, true},
		{".probe-state.tmp.4242.1733420000123456789", 2 * time.Hour, false},
		{StateFile, 400 * 24 * time.Hour, true},
		{"probe-notes.txt", 400 * 24 * time.Hour, true},
		{"crawler.py", 400 * 24 * time.Hour, true},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-f.age), now.Add(-f.age)); err != nil {
			t.Fatal(err)
		}
	}
	probes := scriptProbe(t, "echo '"+goodSnapshot+"'")
	_, info, err := NewTarget(remote.Local{}, probes).Pull(context.Background(), Options{ProbeDir: dir, Now: probeClock})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Uploaded {
		t.Fatal("the probe was not uploaded")
	}
	for _, f := range files {
		_, err := os.Stat(filepath.Join(dir, f.name))
		if kept := err == nil; kept != f.kept {
			t.Errorf("%s (%s old): kept = %v, want %v", f.name, f.age, kept, f.kept)
		}
	}
	b, _ := probes.For(probesPlatform(probes))
	if _, err := os.Stat(filepath.Join(dir, b.FileName())); err != nil {
		t.Errorf("the new build: %v", err)
	}
}

func TestPullQuotesArguments(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	pwned := filepath.Join(dir, "pwned")
	probes := scriptProbe(t, `for a in "$@"; do printf '%s\n' "$a"; done > `+remote.Quote(argsFile)+"\necho '"+goodSnapshot+"'")
	keywords := []string{"x'; touch " + pwned + "; '", "$(touch " + pwned + ")", "a b", "*", "-sample"}
	_, _, err := NewTarget(remote.Local{}, probes).Pull(context.Background(), Options{
		ProbeDir: filepath.Join(dir, "cache"),
		Keywords: keywords,
		Sample:   1500 * time.Millisecond,
		Now:      probeClock,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a keyword was run by the shell")
	}
	got, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	want := "-state\n" + filepath.Join(dir, "cache", StateFile) + "\n-sample\n1.5s\n--\n" + strings.Join(keywords, "\n") + "\n"
	if string(got) != want {
		t.Errorf("probe arguments:\n%s\nwant:\n%s", got, want)
	}
}

// TestProbeCommand checks the one-shot command line in the default probe
// directory: the state file sits beside the build, under the target's
// $HOME too.
func TestProbeCommand(t *testing.T) {
	for _, build := range scriptProbe(t, "true") {
		got := probeCommand(context.Background(), DefaultProbeDir, build, Options{Keywords: []string{"-x", "a b"}, Sample: time.Second})
		want := `exec "$HOME"/'.cache/collector/` + build.FileName() + `' -state "$HOME"/'.cache/collector/probe-state' '-sample' '1s' '--' '-x' 'a b'`
		if got != want {
			t.Errorf("probeCommand:\n got %s\nwant %s", got, want)
		}
	}
}

// argsProbe returns a script probe that writes each of its arguments on a
// line of argsFile and prints a good snapshot.
func argsProbe(t *testing.T, argsFile string) probebin.Set {
	t.Helper()
	return scriptProbe(t, `for a in "$@"; do printf '%s\n' "$a"; done > `+remote.Quote(argsFile)+"\necho '"+goodSnapshot+"'")
}

// TestPullPassesZeroSampleAndNoKeywords checks that sample = "0s" and
// keywords = [] reach the probe as such, rather than leaving it to its own
// defaults (a 1s window).
func TestPullPassesZeroSampleAndNoKeywords(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	_, _, err := NewTarget(remote.Local{}, argsProbe(t, argsFile)).Pull(context.Background(), Options{
		ProbeDir: filepath.Join(dir, "cache"),
		Keywords: []string{},
		Sample:   0,
		Now:      probeClock,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := "-state\n" + filepath.Join(dir, "cache", StateFile) + "\n-sample\n0s\n--\n"; string(got) != want {
		t.Errorf("probe arguments:\n%s\nwant:\n%s", got, want)
	}
}

// slowUploadRunner runs commands on this machine; an upload (the one command
// with stdin) first waits delay, and uploadEnd records when it finished.
//
// The wait is real time on purpose: Pull works out the probe's -timeout
// from the real deadline of its context. TestPullTimeoutAfterUpload holds
// however long the wait takes; the delay only makes a -timeout worked out
// before the upload stand out by at least that much.
type slowUploadRunner struct {
	remote.Local
	delay     time.Duration
	uploadEnd time.Time
}

func (r *slowUploadRunner) Run(ctx context.Context, cmd string, stdin io.Reader, max int64) (remote.Result, error) {
	if stdin == nil {
		return r.Local.Run(ctx, cmd, stdin, max)
	}
	time.Sleep(r.delay)
	res, err := r.Local.Run(ctx, cmd, stdin, max)
	r.uploadEnd = time.Now()
	return res, err
}

// TestPullTimeoutAfterUpload checks that the probe run after an upload gets
// a -timeout from the time left once the upload is done: computed before
// it, the probe's deadline would lie beyond the caller's by the upload time.
func TestPullTimeoutAfterUpload(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deadline, _ := ctx.Deadline()
	r := &slowUploadRunner{delay: 300 * time.Millisecond}
	_, info, err := NewTarget(r, argsProbe(t, argsFile)).Pull(ctx, Options{ProbeDir: filepath.Join(dir, "cache"), Now: probeClock})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Uploaded {
		t.Fatal("the probe was not uploaded")
	}
	got, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	i := slices.Index(args, "-timeout")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("probe arguments %q have no -timeout", args)
	}
	timeout, err := time.ParseDuration(args[i+1])
	if err != nil {
		t.Fatalf("-timeout %q: %v", args[i+1], err)
	}
	// The command was built after the upload ended, and -timeout is rounded
	// to the millisecond.
	if limit := deadline.Sub(r.uploadEnd) - inventory.ProbeReserve + time.Millisecond; timeout > limit {
		t.Errorf("-timeout %v after the upload, want at most %v: the probe's deadline would lie beyond the caller's", timeout, limit)
	}
	if timeout < 30*time.Second {
		t.Errorf("-timeout %v, want about a minute less the upload and %v", timeout, inventory.ProbeReserve)
	}
}

func TestPullFailures(t *testing.T) {
	tests := []struct {
		name   string
		script string
		opts   Options
		want   string // in the error
		tooBig bool
	}{
		{"garbage", "echo 'Welcome to Ubuntu'", Options{}, "decode snapshot", false},
		{"empty", "true", Options{}, "empty output", false},
		{"exit status", "echo 'disk on fire' >&2; exit 3", Options{}, "exit status 3: disk on fire", false},
		{"wrong version", `echo '{"version":99,"time":"2026-11-25T10:00:00Z"}'`, Options{}, "schema version 99", false},
		{"huge output", "head -c 5000000 /dev/zero", Options{MaxOutput: 1 << 20}, "", true},
		{"two snapshots", "echo '" + goodSnapshot + "'; echo '" + goodSnapshot + "'", Options{}, "trailing data", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.ProbeDir = t.TempDir()
			_, _, err := NewTarget(remote.Local{}, scriptProbe(t, tt.script)).Pull(context.Background(), tt.opts)
			var pe *ProbeError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want a *ProbeError", err)
			}
			if tt.tooBig && !errors.Is(err, remote.ErrOutputTooLarge) {
				t.Errorf("error = %v, want ErrOutputTooLarge", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestPullTimeoutIsNotAProbeError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := NewTarget(remote.Local{}, scriptProbe(t, "sleep 60")).Pull(ctx, Options{ProbeDir: t.TempDir()})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want DeadlineExceeded", err)
	}
	var pe *ProbeError
	if errors.As(err, &pe) {
		t.Errorf("a timeout is reported as a probe error: %v", err)
	}
	// A guard against waiting for the probe's minute, far beyond any delay
	// of a loaded machine.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("pull took %v after a 300ms deadline", d)
	}
}

func TestPullUnsupportedPlatform(t *testing.T) {
	b := probebin.NewBuild("linux", "riscv64", []byte("x"))
	_, _, err := NewTarget(remote.Local{}, probebin.Set{b.Platform(): b}).Pull(context.Background(), Options{ProbeDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "no probe build for") {
		t.Fatalf("error = %v, want no probe build", err)
	}
}

func TestStderrText(t *testing.T) {
	long := strings.Repeat("x", 1000) + "END"
	tests := []struct{ name, in, want string }{
		{"empty", "", "no error output"},
		{"lines folded", "a\nb\n", "a b"},
		{"control characters", "bad\x1b[31mred", "bad?[31mred"},
		{"keeps the tail", long, "…" + long[len(long)-300:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stderrText(remote.Result{Stderr: []byte(tt.in)}); got != tt.want {
				t.Errorf("stderrText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
