package main

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// This file holds the pure computations of the probe; collect.go reads the
// system and feeds them.

// busyPercent returns the share of time all CPUs were busy between two
// cumulative samples a and b, from 0 to 100, the way psutil's cpu_percent
// counts it: everything but idle and iowait is busy. With a zero a it is the
// average since boot. It returns 0 when no time passed between the samples.
func busyPercent(a, b cpuTimes) float64 {
	dTotal := float64(b.total()) - float64(a.total())
	if dTotal <= 0 {
		return 0
	}
	// iowait may go backwards on Linux, so clamp.
	return min(max((float64(b.busy())-float64(a.busy()))/dTotal*100, 0), 100)
}

// clockTicks is the unit of the CPU times in /proc: USER_HZ, 100 on every
// Linux architecture.
const clockTicks = 100

// procPercent returns a process's CPU use between two readings of its
// cumulative CPU time, a and b in clock ticks, taken elapsed apart, in
// percent of one CPU: a process keeping two CPUs busy reads 200. With a
// zero a and elapsed the time since the process started, it is its average
// over its life, as ps shows it. It returns 0 for an empty interval and for
// times that went backwards (the pid was reused).
func procPercent(a, b uint64, elapsed time.Duration) float64 {
	if elapsed <= 0 || b <= a {
		return 0
	}
	return float64(b-a) / clockTicks / elapsed.Seconds() * 100
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

// distinct returns the non-empty keywords, each once, in the order given.
// Empty keywords are skipped, since they would match every process
// (newOptions already rejects them; this keeps matching safe on its own).
func distinct(keywords []string) []string {
	out := []string{}
	for _, k := range keywords {
		if k != "" && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// matchKeys returns the indices of the keywords that name or cmdline
// contains as a literal, case-sensitive substring, or nil.
func matchKeys(keywords []string, name, cmdline string) []int {
	var keys []int
	for i, k := range keywords {
		if strings.Contains(name, k) || strings.Contains(cmdline, k) {
			keys = append(keys, i)
		}
	}
	return keys
}

// procUse is what the probe measured of one process.
type procUse struct {
	PID        int32
	Name       string
	Kernel     bool  // a kernel thread
	Keys       []int // the keywords it matched, by index
	RSSBytes   uint64
	CPUPercent float64 // of one CPU
	Threads    int
}

// groups returns, for each keyword in order, the processes it matched with
// their pids sorted (at most snapshot.MaxPIDs listed), summed memory, CPU and
// threads, and the heaviest member (its Command left for the caller); and
// the sorted pids of all processes matched by any keyword, each once.
func groups(keywords []string, procs []procUse) (matches []snapshot.Match, all []int32) {
	matches = make([]snapshot.Match, len(keywords))
	heaviest := make([]int, len(keywords))
	for i, k := range keywords {
		matches[i] = snapshot.Match{Keyword: k, PIDs: []int32{}}
		heaviest[i] = -1
	}
	all = []int32{}
	for j, p := range procs {
		if len(p.Keys) > 0 {
			all = append(all, p.PID)
		}
		for _, i := range p.Keys {
			m := &matches[i]
			m.PIDs = append(m.PIDs, p.PID)
			m.RSSBytes += p.RSSBytes
			m.CPUPercent += p.CPUPercent
			m.Threads += p.Threads
			if h := heaviest[i]; h < 0 || p.RSSBytes > procs[h].RSSBytes {
				heaviest[i] = j
			}
		}
	}
	for i := range matches {
		m := &matches[i]
		slices.Sort(m.PIDs)
		m.PIDs = slices.Compact(m.PIDs) // in case a pid was listed twice
		m.Count = len(m.PIDs)
		if len(m.PIDs) > snapshot.MaxPIDs {
			m.PIDsOmitted = len(m.PIDs) - snapshot.MaxPIDs
			m.PIDs = m.PIDs[:snapshot.MaxPIDs:snapshot.MaxPIDs]
		}
		m.CPUPercent = round2(m.CPUPercent)
		if h := heaviest[i]; h >= 0 {
			p := procs[h]
			m.Heaviest = &snapshot.Member{PID: p.PID, RSSBytes: p.RSSBytes, CPUPercent: round2(p.CPUPercent)}
		}
	}
	slices.Sort(all)
	return matches, slices.Compact(all)
}

// topBy returns the indices of the n processes that by ranks highest, in
// that order, leaving out those whose figure is 0; ties go to the lower pid.
func topBy(procs []procUse, n int, by func(procUse) float64) []int {
	idx := make([]int, 0, n+1)
	for i, p := range procs {
		v := by(p)
		if v <= 0 {
			continue
		}
		pos := len(idx)
		for pos > 0 && (by(procs[idx[pos-1]]) < v || by(procs[idx[pos-1]]) == v && procs[idx[pos-1]].PID > p.PID) {
			pos--
		}
		if pos >= n {
			continue
		}
		idx = slices.Insert(idx, pos, i)
		if len(idx) > n {
			idx = idx[:n]
		}
	}
	return idx
}

// windowed holds the sections worked out from two readings of the
// system-wide counters.
type windowed struct {
	CPUPercent float64
	CPUErr     error
	RunQueue   snapshot.RunQueue
	SwapIn     float64 // pages per second
	SwapOut    float64
	SwapErr    error
	Pressure   snapshot.Pressure
	Network    snapshot.Network
}

// deriveWindow works out the rates and percents between two readings a and
// b of the counters taken seconds apart. With a zero a and seconds the
// uptime they are averages since boot.
func deriveWindow(a, b counters, seconds float64) windowed {
	var w windowed
	if err := errors.Join(a.StatErr, b.StatErr); err != nil {
		w.CPUErr = err
		w.RunQueue.Error = err.Error()
	} else {
		w.CPUPercent = round2(busyPercent(a.Stat.CPU, b.Stat.CPU))
		if b.Stat.HasRunQueue {
			w.RunQueue.Running, w.RunQueue.Blocked = b.Stat.Running, b.Stat.Blocked
		} else {
			w.RunQueue.Error = "unsupported: no procs_running or procs_blocked in /proc/stat"
		}
	}
	if err := errors.Join(a.VMErr, b.VMErr); err != nil {
		w.SwapErr = err
	} else if seconds > 0 {
		w.SwapIn = round2(rate(a.SwapIn, b.SwapIn, seconds))
		w.SwapOut = round2(rate(a.SwapOut, b.SwapOut, seconds))
	}
	w.Pressure = derivePressure(a, b, seconds)
	w.Network = deriveNetwork(a, b, seconds)
	return w
}

// rate returns the increase from a to b per second, 0 when the counter
// went backwards (it was reset).
func rate(a, b uint64, seconds float64) float64 {
	if b < a || seconds <= 0 {
		return 0
	}
	return float64(b-a) / seconds
}

func derivePressure(a, b counters, seconds float64) snapshot.Pressure {
	var p snapshot.Pressure
	psis := [3]**snapshot.PSI{&p.CPU, &p.Memory, &p.IO}
	var unsupported []string
	for i := range psiResources {
		if err := b.PSIErr[i]; err != nil {
			if errors.Is(err, errUnsupported) {
				unsupported = append(unsupported, err.Error())
				continue
			}
			*psis[i] = &snapshot.PSI{Error: err.Error()}
			continue
		}
		f := b.PSI[i]
		psi := &snapshot.PSI{SomeAvg10: f.Some.Avg10}
		if f.Full != nil {
			psi.FullAvg10 = ptr(f.Full.Avg10)
		}
		switch {
		case a.PSIErr[i] != nil:
			psi.Error = a.PSIErr[i].Error()
		case seconds > 0:
			// total is in microseconds.
			psi.SomeStallPercent = ptr(stallPercent(a.PSI[i].Some.Total, f.Some.Total, seconds))
			if f.Full != nil {
				var before uint64
				if a.PSI[i].Full != nil {
					before = a.PSI[i].Full.Total
				}
				psi.FullStallPercent = ptr(stallPercent(before, f.Full.Total, seconds))
			}
		}
		*psis[i] = psi
	}
	if len(unsupported) > 0 {
		p.Error = unsupported[0]
	}
	return p
}

// stallPercent is the stall time between two total= readings (µs) as a
// percent of seconds, at most 100.
func stallPercent(a, b uint64, seconds float64) float64 {
	return round2(min(rate(a, b, seconds)/1e6*100, 100))
}

func deriveNetwork(a, b counters, seconds float64) snapshot.Network {
	n := snapshot.Network{Interfaces: []snapshot.Interface{}}
	if err := errors.Join(a.NetErr, b.NetErr); err != nil {
		n.Error = err.Error()
		return n
	}
	if seconds <= 0 {
		return n
	}
	before := make(map[string]ifCounters, len(a.Net))
	for _, c := range a.Net {
		before[c.Name] = c
	}
	for _, c := range b.Net {
		p := before[c.Name] // a new interface counts from 0
		in := snapshot.Interface{
			Name:               c.Name,
			RxBytesPerSecond:   round2(rate(p.RxBytes, c.RxBytes, seconds)),
			TxBytesPerSecond:   round2(rate(p.TxBytes, c.TxBytes, seconds)),
			RxPacketsPerSecond: round2(rate(p.RxPackets, c.RxPackets, seconds)),
			TxPacketsPerSecond: round2(rate(p.TxPackets, c.TxPackets, seconds)),
		}
		n.RxBytesPerSecond += in.RxBytesPerSecond
		n.TxBytesPerSecond += in.TxBytesPerSecond
		n.Interfaces = append(n.Interfaces, in)
	}
	n.RxBytesPerSecond, n.TxBytesPerSecond = round2(n.RxBytesPerSecond), round2(n.TxBytesPerSecond)
	if len(n.Interfaces) > snapshot.MaxInterfaces {
		// Keep the busiest.
		slices.SortStableFunc(n.Interfaces, func(x, y snapshot.Interface) int {
			return cmp.Compare(y.RxBytesPerSecond+y.TxBytesPerSecond, x.RxBytesPerSecond+x.TxBytesPerSecond)
		})
		n.Omitted = len(n.Interfaces) - snapshot.MaxInterfaces
		n.Interfaces = n.Interfaces[:snapshot.MaxInterfaces]
	}
	slices.SortFunc(n.Interfaces, func(x, y snapshot.Interface) int { return strings.Compare(x.Name, y.Name) })
	return n
}

func ptr[T any](v T) *T { return &v }

// round2 rounds a percent to two decimals, which is all the precision a
// one-second sample has, and drops float noise such as 4.9999999999954525.
func round2(x float64) float64 {
	return math.Round(x*100) / 100
}
