// Command rusage runs a command and prints, on stderr, the CPU time and
// peak RSS of that command alone as JSON; the probe's budget benchmarks
// use it.
//
// It exists because Go starts a child with vfork: until the child execs,
// it shares its parent's memory, and at exec Linux folds that memory's
// high-water mark into the child's ru_maxrss. Started from a large
// parent (a test binary), the probe would report the parent's peak RSS.
// This command is small, and reports its own peak (VmHWM) at the moment
// it starts the child, so that a reader can tell the two apart: when the
// child's figure is above it, the figure is the child's own.
//
// Usage: rusage command [arg ...]; stdin and stdout pass through. On
// stderr, a first line "pid N" gives the child's pid as soon as it runs.
package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is what rusage prints.
type Result struct {
	UserNs    int64 `json:"user_ns"`
	SysNs     int64 `json:"sys_ns"`
	MaxRSSKiB int64 `json:"max_rss_kib"` // the child's peak RSS
	ParentKiB int64 `json:"parent_kib"`  // this command's peak RSS when it started the child
	WallNs    int64 `json:"wall_ns"`
	ExitCode  int   `json:"exit_code"`
}

func main() {
	if len(os.Args) < 2 {
		os.Stderr.WriteString("usage: rusage command [arg ...]\n")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout = os.Stdin, os.Stdout
	parent := vmHWM()
	begin := time.Now()
	err := cmd.Start()
	if err == nil {
		os.Stderr.WriteString("pid " + strconv.Itoa(cmd.Process.Pid) + "\n")
		err = cmd.Wait()
	}
	wall := time.Since(begin)
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(3)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	json.NewEncoder(os.Stderr).Encode(Result{
		UserNs: ru.Utime.Nano(), SysNs: ru.Stime.Nano(), MaxRSSKiB: ru.Maxrss,
		ParentKiB: parent, WallNs: wall.Nanoseconds(), ExitCode: cmd.ProcessState.ExitCode(),
	})
}

// vmHWM returns this process's peak RSS in KiB from /proc/self/status;
// unlike ru_maxrss it starts afresh at exec.
func vmHWM() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
