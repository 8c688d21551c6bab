//go:build unix

package sshdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup kills sshd, the per-connection sshd processes it forked
// and their sessions, so that no connection outlives the test. Each
// per-connection process calls setsid, leaving sshd's process group, so it
// is found as a child of sshd in /proc (where there is one) and its own
// process group is killed too.
func killProcessGroup(cmd *exec.Cmd) {
	pid := cmd.Process.Pid
	for _, child := range children(pid) {
		_ = syscall.Kill(-child, syscall.SIGKILL)
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// children returns the processes whose parent is pid, from /proc/*/stat;
// none where there is no /proc.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited
		}
		if ppid, ok := parentPID(string(b)); ok && ppid == pid {
			if child, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}

// parentPID parses the parent's pid out of /proc/PID/stat: "PID (comm) S
// PPID ...", where comm may hold spaces and parentheses.
func parentPID(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
