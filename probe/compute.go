package main

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// This file holds the pure computations of the probe; collect.go reads the
// system and feeds them.

// busyPercent returns the share of time all CPUs were busy between two
// cumulative samples a and b, from 0 to 100, the way psutil's cpu_percent
// counts it: everything but idle and iowait is busy. With a zero a it is the
// average since boot. It returns 0 when no time passed between the samples.
func busyPercent(a, b cpu.TimesStat) float64 {
	// Linux already counts guest time in user and nice, so the guest
	// fields are left out of the total.
	total := func(t cpu.TimesStat) float64 {
		return t.User + t.Nice + t.System + t.Idle + t.Iowait + t.Irq + t.Softirq + t.Steal
	}
	busy := func(t cpu.TimesStat) float64 { return total(t) - t.Idle - t.Iowait }

	dTotal := total(b) - total(a)
	if dTotal <= 0 {
		return 0
	}
	// iowait may go backwards on Linux, so clamp.
	return min(max((busy(b)-busy(a))/dTotal*100, 0), 100)
}

// procPercent returns a process's CPU use between two samples of its
// cumulative times taken elapsed apart, in percent of one CPU: a process
// keeping two CPUs busy reads 200. With a zero a and elapsed the time since
// the process started, it is its average over its life, as ps shows it. It
// returns 0 for an empty interval and for times that went backwards (the pid
// was reused).
func procPercent(a, b cpu.TimesStat, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	d := (b.User + b.System) - (a.User + a.System)
	if d <= 0 {
		return 0
	}
	return d / elapsed.Seconds() * 100
}

// procInfo is what matching needs to know of one process.
type procInfo struct {
	PID     int32
	Name    string // short name from /proc/PID/comm
	Cmdline string // arguments joined by spaces
}

// self identifies the running probe, so that it does not count itself: its
// own command line contains the keywords.
type self struct {
	pid   int32
	ppid  int32
	argv0 string
}

// excludes reports whether p is the probe itself, or a process whose
// command line names the probe's own path (argv[0]): another run of the same
// probe binary, as when two collectors probe one host at once, or a shell
// that is about to exec it or that launched it, as in
// sh -c '/tmp/probe python; rm /tmp/probe'. All those command lines contain
// the keywords too. Only the parent is checked when argv[0] is a bare name,
// since a bare name may stand in unrelated command lines.
//
// It also excludes any process whose command line names a collector's probe
// build by its cached file name (see namesProbeBuild): the probe of another
// collector, or of another release of this one, watching the same host, and
// the shell that starts it, whose command line carries the keywords too.
func (s self) excludes(p procInfo) bool {
	if p.PID == s.pid || namesProbeBuild(p.Cmdline) {
		return true
	}
	if s.argv0 == "" {
		return false
	}
	if p.PID == s.ppid && strings.Contains(p.Cmdline, s.argv0) {
		return true
	}
	return strings.Contains(s.argv0, "/") && namesPath(p.Cmdline, s.argv0)
}

// probeBuildPrefix and probeBuildHexLen make the file name a collector
// caches a probe build under on a target: "probe-" and 16 lowercase hex
// digits of its content hash (collector/probebin's Build.FileName).
const (
	probeBuildPrefix = "/probe-"
	probeBuildHexLen = 16
)

// namesProbeBuild reports whether cmdline names a path whose last element
// is a cached probe build, "…/probe-0123456789abcdef", as a whole path.
func namesProbeBuild(cmdline string) bool {
	return namesWhole(cmdline, probeBuildPrefix, probeBuildHexLen, isLowerHex)
}

func isLowerHex(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }) < 0
}

// namesPath reports whether cmdline contains path as a whole path: not as
// the start of a longer name ("/tmp/probe" in "/tmp/probe2").
func namesPath(cmdline, path string) bool {
	return namesWhole(cmdline, path, 0, nil)
}

// pathEnd holds the characters that end a path in a command line: blanks,
// quotes, and the shell's separators.
const pathEnd = " \t'\";)&|"

// namesWhole reports whether some occurrence of prefix in cmdline is followed
// by n bytes that tail accepts (any, when tail is nil) and then by the end of
// the command line or a character of pathEnd.
func namesWhole(cmdline, prefix string, n int, tail func(string) bool) bool {
	if prefix == "" {
		return false
	}
	for rest := cmdline; ; {
		i := strings.Index(rest, prefix)
		if i < 0 {
			return false
		}
		rest = rest[i+len(prefix):]
		if len(rest) < n || (tail != nil && !tail(rest[:n])) {
			continue
		}
		if after := rest[n:]; after == "" || strings.ContainsRune(pathEnd, rune(after[0])) {
			return true
		}
	}
}

// match returns, for each distinct keyword in the order given, the processes
// whose name or command line contains it as a literal, case-sensitive
// substring, with pids sorted; and the sorted pids of all processes matched
// by any keyword, each once. Empty keywords are skipped, since they would
// match every process (newOptions already rejects them; this keeps match
// safe on its own). RSSBytes and CPUPercent are left for addUsage.
func match(procs []procInfo, keywords []string) (matches []snapshot.Match, all []int32) {
	matches = []snapshot.Match{}
	seen := make(map[string]bool)
	union := make(map[int32]bool)
	for _, k := range keywords {
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		m := snapshot.Match{Keyword: k, PIDs: []int32{}}
		for _, p := range procs {
			if strings.Contains(p.Name, k) || strings.Contains(p.Cmdline, k) {
				m.PIDs = append(m.PIDs, p.PID)
				union[p.PID] = true
			}
		}
		slices.Sort(m.PIDs)
		m.PIDs = slices.Compact(m.PIDs) // in case a pid was listed twice
		m.Count = len(m.PIDs)
		matches = append(matches, m)
	}
	all = make([]int32, 0, len(union))
	for pid := range union {
		all = append(all, pid)
	}
	slices.Sort(all)
	return matches, all
}

// usage is what the probe measured of one matched process.
type usage struct {
	RSSBytes   uint64
	CPUPercent float64 // of one CPU
}

// addUsage sums into each match the usage of its processes. A pid missing
// from used (the process exited before it could be read) adds nothing.
func addUsage(matches []snapshot.Match, used map[int32]usage) {
	for i := range matches {
		m := &matches[i]
		m.RSSBytes, m.CPUPercent = 0, 0
		for _, pid := range m.PIDs {
			u := used[pid]
			m.RSSBytes += u.RSSBytes
			m.CPUPercent += u.CPUPercent
		}
		m.CPUPercent = round2(m.CPUPercent)
	}
}

// round2 rounds a percent to two decimals, which is all the precision a
// one-second sample has, and drops float noise such as 4.9999999999954525.
func round2(x float64) float64 {
	return math.Round(x*100) / 100
}
