package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// watchRun is a probe running in watch mode, fed through a pipe.
type watchRun struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	pipe   io.ReadCloser // the reading end of its stdout
	stderr *bytes.Buffer
	done   chan struct{} // closed when the probe has exited
}

func startWatch(t *testing.T, args ...string) *watchRun {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the probe targets linux")
	}
	cmd := exec.Command(buildProbe(t), append([]string{"-watch"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &watchRun{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), pipe: stdout, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-w.done
	})
	return w
}

// snapshot asks for one snapshot and decodes it.
func (w *watchRun) snapshot(t *testing.T) (*snapshot.Snapshot, time.Time) {
	t.Helper()
	sent := time.Now()
	if _, err := io.WriteString(w.stdin, "tick\n"); err != nil {
		t.Fatalf("write to the probe: %v; stderr: %s", err, w.stderr)
	}
	line, err := w.out.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read a snapshot: %v; stderr: %s", err, w.stderr)
	}
	s, err := snapshot.Unmarshal(line)
	if err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	if len(line) > 16<<10 {
		t.Errorf("watch snapshot is %d bytes, want at most 16 KiB", len(line))
	}
	return s, sent
}

// exited waits up to limit for the probe to exit and returns its status.
func (w *watchRun) exited(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-w.done:
		return w.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("probe still running %v later; stderr: %s", limit, w.stderr)
		return -1
	}
}

// waitRunning waits until the process pid has used CPU time, so a burst is
// under way before the test goes on.
func waitRunning(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		if err == nil {
			if st, err := parsePidStat(data); err == nil && st.Ticks > 0 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d never ran", pid)
}

func itoa(n int) string { return strconv.Itoa(n) }

// burst starts n busy processes named like crawlers and returns once all of
// them have run, with a function that ends them and waits for them to go.
func burst(t *testing.T, n int, name string) (stop func()) {
	t.Helper()
	var cmds []*exec.Cmd
	for range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$", name)
		cmd.Env = append(os.Environ(), childEnv+"=busy")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("busy child said %q, %v", line, err)
		}
	}
	for _, c := range cmds {
		waitRunning(t, c.Process.Pid)
	}
	return func() {
		for _, c := range cmds {
			c.Process.Kill()
		}
		for _, c := range cmds {
			c.Wait()
		}
	}
}

func keywordStat(t *testing.T, iv *snapshot.Interval, keyword string) snapshot.KeywordStat {
	t.Helper()
	for _, k := range iv.Keywords {
		if k.Keyword == keyword {
			return k
		}
	}
	t.Fatalf("no keyword %q in interval %+v", keyword, iv.Keywords)
	return snapshot.KeywordStat{}
}

func countAt(m *snapshot.MatchedAt, keyword string) int {
	if m == nil {
		return -1
	}
	for _, k := range m.Keywords {
		if k.Keyword == keyword {
			return k.Count
		}
	}
	return -1
}

// TestWatchCatchesABurst runs watch mode through the real binary: a CPU
// burst of processes named like crawlers, placed between two lines, shows
// in the interval's maximum with its time and the crawlers counted; and a
// burst spanning a whole interval is counted at its CPU maximum whatever
// else loads the machine.
func TestWatchCatchesABurst(t *testing.T) {
	const res = 250 * time.Millisecond
	key := "python-crawler-" + randomKeyword(t)
	w := startWatch(t, "-resolution", res.String(), "-silence", "1m", "--", key)

	// An interval without the burst tells how busy the machine is anyway.
	time.Sleep(4 * res)
	quiet, _ := w.snapshot(t)
	time.Sleep(4 * res)
	before, _ := w.snapshot(t)
	if before.Interval == nil || before.Interval.Samples < 1 || before.Interval.CPU == nil {
		t.Fatalf("interval without samples: %+v", before.Interval)
	}

	// The burst, between two lines with idle gaps around it.
	time.Sleep(2 * res)
	burstStart := time.Now()
	stop := burst(t, 2, key)
	time.Sleep(6 * res)
	stop()
	burstEnd := time.Now()
	time.Sleep(2 * res)
	s, sent := w.snapshot(t)
	iv := s.Interval
	if iv == nil || iv.CPU == nil {
		t.Fatalf("no interval CPU: %+v", iv)
	}
	if iv.CPU.Max < 90 {
		t.Errorf("interval cpu max = %v, want at least 90 with two busy loops on %d CPUs", iv.CPU.Max, runtime.NumCPU())
	}
	if iv.Start.After(burstStart) || iv.End.Before(burstEnd) || iv.End.After(sent.Add(time.Second)) {
		t.Errorf("interval %v to %v does not hold the burst %v to %v", iv.Start, iv.End, burstStart, burstEnd)
	}
	if k := keywordStat(t, iv, key); k.Max != 2 || k.MaxAt.Before(burstStart) || k.MaxAt.After(burstEnd.Add(res)) {
		t.Errorf("crawlers = %+v, want max 2 within the burst %v to %v", k, burstStart, burstEnd)
	}
	if s.Processes.Count(key) != 0 {
		t.Errorf("crawlers counted at the end of the interval: %d, want 0 (the burst is over)", s.Processes.Count(key))
	}
	if s.SampleSeconds < (burstEnd.Sub(burstStart)).Seconds() || s.CPU.Percent <= 0 {
		t.Errorf("sample_seconds %v, cpu %v: want the whole interval", s.SampleSeconds, s.CPU.Percent)
	}
	// On an otherwise quiet machine the maximum is the burst's.
	if quiet.Interval.CPU.Max < 80 && before.Interval.CPU.Max < 80 {
		if iv.CPU.MaxAt.Before(burstStart) || iv.CPU.MaxAt.After(burstEnd.Add(res)) {
			t.Errorf("cpu max at %v, want within the burst %v to %v", iv.CPU.MaxAt, burstStart, burstEnd)
		}
		if n := countAt(iv.MatchedAtCPUMax, key); n != 2 {
			t.Errorf("crawlers at the cpu max = %d, want 2: %+v", n, iv.MatchedAtCPUMax)
		}
	} else {
		t.Logf("the machine is busy without the burst (cpu max %v, %v): the burst's own maximum is checked below", quiet.Interval.CPU.Max, before.Interval.CPU.Max)
	}

	// A burst that spans a whole interval: every sample has the crawlers,
	// so they are counted at the maximum however busy the machine is.
	stop = burst(t, 2, key)
	w.snapshot(t) // the interval starts with the burst running
	time.Sleep(4 * res)
	s, _ = w.snapshot(t)
	stop()
	iv = s.Interval
	if iv.CPU == nil || iv.CPU.Max < 90 || countAt(iv.MatchedAtCPUMax, key) != 2 || iv.MatchedAtCPUMax.MatchedTotal < 2 {
		t.Errorf("interval inside a burst: cpu %+v, matched at the max %+v; want >= 90 and 2 crawlers", iv.CPU, iv.MatchedAtCPUMax)
	}
	m := matchOf(t, s, key)
	if m.Count != 2 || m.CPUPercent < 5 || m.Heaviest == nil || m.Threads < 2 {
		t.Errorf("crawler group = %+v, want 2 busy processes", m)
	}
	if s.Top == nil {
		t.Fatal("no top section")
	}
	checkTop(t, s.Top.ByCPU, m)

	w.stdin.Close()
	if code := w.exited(t, 10*time.Second); code != 0 {
		t.Errorf("exit status after stdin closed = %d, want 0; stderr: %s", code, w.stderr)
	}
}

// TestWatchExits checks that watch mode leaves nothing behind: it exits
// when stdin closes, when the collector falls silent, and when its stdout
// breaks.
func TestWatchExits(t *testing.T) {
	t.Run("stdin closed", func(t *testing.T) {
		w := startWatch(t, "-resolution", "100ms", "--", "python")
		w.snapshot(t)
		w.stdin.Close()
		if code := w.exited(t, 10*time.Second); code != 0 {
			t.Errorf("exit status = %d, want 0", code)
		}
	})
	t.Run("silence", func(t *testing.T) {
		const silence = 700 * time.Millisecond
		begin := time.Now()
		w := startWatch(t, "-resolution", "100ms", "-silence", silence.String(), "--", "python")
		_, lineAt := w.snapshot(t) // a line restarts the silence
		code := w.exited(t, 10*time.Second)
		if code != exitSilence || !strings.Contains(w.stderr.String(), "no line from the collector for 700ms") {
			t.Errorf("exit status %d, stderr %q; want %d and the reason", code, w.stderr, exitSilence)
		}
		if took := time.Since(lineAt); took < silence {
			t.Errorf("exited %v after the last line (%v after start), before the silence of %v", took, time.Since(begin), silence)
		}
	})
	t.Run("stdout broken", func(t *testing.T) {
		w := startWatch(t, "-resolution", "100ms", "--", "python")
		w.snapshot(t)
		// Close the reading end: the next snapshot cannot be written.
		w.pipe.Close()
		io.WriteString(w.stdin, "tick\n")
		code := w.exited(t, 10*time.Second)
		ws := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if code != 1 && !(ws.Signaled() && ws.Signal() == syscall.SIGPIPE) {
			t.Errorf("exit status %d (%v), want 1 or SIGPIPE", code, ws)
		}
	})
}

// TestWatchUsage checks the watch-mode flags.
func TestWatchUsage(t *testing.T) {
	for _, args := range [][]string{{"-watch", "-resolution", "1ms"}, {"-watch", "-silence", "0s"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 2 || stdout.Len() != 0 {
			t.Errorf("probe %q = %d, stdout %q; want 2 and nothing", args, code, stdout.String())
		}
	}
	// With stdin already at its end, watch mode exits at once.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-watch"}, strings.NewReader(""), &stdout, &stderr); code != 0 || stdout.Len() != 0 {
		t.Errorf("watch with an empty stdin = %d, stdout %q", code, stdout.String())
	}
}
