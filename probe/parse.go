package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// This file holds the parsers of the /proc files the probe reads. Each takes
// the file's text and nothing else, so that it is tested on literal input;
// procfs.go reads the files.

// cpuTimes are the cumulative times of all CPUs together, in clock ticks,
// from the "cpu" line of /proc/stat.
type cpuTimes struct {
	User, Nice, System, Idle, Iowait, Irq, Softirq, Steal uint64
}

// total is all the time counted. Linux already counts guest time in user
// and nice, so the guest fields are left out.
func (t cpuTimes) total() uint64 {
	return t.User + t.Nice + t.System + t.Idle + t.Iowait + t.Irq + t.Softirq + t.Steal
}

// busy is everything but idle and iowait, the way psutil's cpu_percent
// counts it.
func (t cpuTimes) busy() uint64 { return t.total() - t.Idle - t.Iowait }

// procStat is what the probe takes from /proc/stat.
type procStat struct {
	CPU          cpuTimes
	LogicalCount int    // "cpuN" lines: online CPUs
	Running      int    // procs_running
	Blocked      int    // procs_blocked
	HasRunQueue  bool   // both procs_ lines were there
	BootTime     uint64 // btime, seconds since the epoch
	Forks        uint64 // processes: processes and threads created since boot
}

// parseProcStat parses /proc/stat.
func parseProcStat(data []byte) (procStat, error) {
	var s procStat
	haveCPU, haveRunning, haveBlocked := false, false, false
	for line := range lines(data) {
		switch {
		case bytes.HasPrefix(line, []byte("cpu ")):
			f := fields(line)
			if len(f) < 5 {
				return s, fmt.Errorf("parse /proc/stat: cpu line %q has %d fields", line, len(f))
			}
			var v [8]uint64
			for i := 1; i < len(f) && i <= 8; i++ {
				n, err := parseUint(f[i])
				if err != nil {
					return s, fmt.Errorf("parse /proc/stat: cpu field %d: %w", i, err)
				}
				v[i-1] = n
			}
			s.CPU = cpuTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3], Iowait: v[4], Irq: v[5], Softirq: v[6], Steal: v[7]}
			haveCPU = true
		case bytes.HasPrefix(line, []byte("cpu")) && len(line) > 3 && '0' <= line[3] && line[3] <= '9':
			s.LogicalCount++
		case bytes.HasPrefix(line, []byte("procs_running ")):
			n, err := parseUint(bytes.TrimSpace(line[len("procs_running "):]))
			if err != nil {
				return s, fmt.Errorf("parse /proc/stat: procs_running: %w", err)
			}
			s.Running, haveRunning = int(n), true
		case bytes.HasPrefix(line, []byte("procs_blocked ")):
			n, err := parseUint(bytes.TrimSpace(line[len("procs_blocked "):]))
			if err != nil {
				return s, fmt.Errorf("parse /proc/stat: procs_blocked: %w", err)
			}
			s.Blocked, haveBlocked = int(n), true
		case bytes.HasPrefix(line, []byte("processes ")):
			n, err := parseUint(bytes.TrimSpace(line[len("processes "):]))
			if err != nil {
				return s, fmt.Errorf("parse /proc/stat: processes: %w", err)
			}
			s.Forks = n
		case bytes.HasPrefix(line, []byte("btime ")):
			n, err := parseUint(bytes.TrimSpace(line[len("btime "):]))
			if err != nil {
				return s, fmt.Errorf("parse /proc/stat: btime: %w", err)
			}
			s.BootTime = n
		}
	}
	if !haveCPU {
		return s, errors.New("parse /proc/stat: no cpu line")
	}
	s.HasRunQueue = haveRunning && haveBlocked
	return s, nil
}

// memInfo is what the probe takes from /proc/meminfo, in bytes.
type memInfo struct {
	Total, Free, Available, Buffers, Cached, SReclaimable uint64
	SwapTotal, SwapFree                                   uint64
	HasAvailable                                          bool // MemAvailable, Linux 3.14 and later
}

// parseMeminfo parses /proc/meminfo.
func parseMeminfo(data []byte) (memInfo, error) {
	var m memInfo
	haveTotal := false
	for line := range lines(data) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(name) {
		case "MemTotal":
			dst, haveTotal = &m.Total, true
		case "MemFree":
			dst = &m.Free
		case "MemAvailable":
			dst, m.HasAvailable = &m.Available, true
		case "Buffers":
			dst = &m.Buffers
		case "Cached":
			dst = &m.Cached
		case "SReclaimable":
			dst = &m.SReclaimable
		case "SwapTotal":
			dst = &m.SwapTotal
		case "SwapFree":
			dst = &m.SwapFree
		default:
			continue
		}
		rest = bytes.TrimSpace(rest)
		unit := uint64(1)
		if r, ok := bytes.CutSuffix(rest, []byte(" kB")); ok {
			rest, unit = bytes.TrimSpace(r), 1024
		}
		n, err := parseUint(rest)
		if err != nil {
			return m, fmt.Errorf("parse /proc/meminfo: %s: %w", name, err)
		}
		*dst = n * unit
	}
	if !haveTotal {
		return m, errors.New("parse /proc/meminfo: no MemTotal")
	}
	return m, nil
}

// memory computes the memory section the way gopsutil (and so version 1 of
// the probe) did: page cache counts the reclaimable slab, and used is what
// is neither free nor buffers nor cache.
func (m memInfo) memory() snapshot.Memory {
	cached := m.Cached + m.SReclaimable
	avail := m.Available
	if !m.HasAvailable {
		avail = cached + m.Free
	}
	var used uint64
	if taken := m.Free + m.Buffers + cached; taken < m.Total {
		used = m.Total - taken
	}
	out := snapshot.Memory{
		Total: m.Total, Used: used, Free: m.Free, Available: avail,
		Buffers: m.Buffers, Cached: cached,
	}
	if m.Total > 0 {
		out.UsedPercent = round2(float64(used) / float64(m.Total) * 100)
	}
	return out
}

// parseLoadavg parses /proc/loadavg: "0.21 0.37 0.39 1/223 4711".
func parseLoadavg(data []byte) (load1, load5, load15 float64, err error) {
	f := fields(data)
	if len(f) < 3 {
		return 0, 0, 0, fmt.Errorf("parse /proc/loadavg: %q has %d fields", data, len(f))
	}
	var l [3]float64
	for i := range l {
		if l[i], err = strconv.ParseFloat(string(f[i]), 64); err != nil {
			return 0, 0, 0, fmt.Errorf("parse /proc/loadavg: %w", err)
		}
	}
	return l[0], l[1], l[2], nil
}

// parseUptime parses /proc/uptime: "350735.47 234388.90", seconds since boot
// then idle seconds.
func parseUptime(data []byte) (float64, error) {
	f := fields(data)
	if len(f) < 1 {
		return 0, errors.New("parse /proc/uptime: empty")
	}
	up, err := strconv.ParseFloat(string(f[0]), 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/uptime: %w", err)
	}
	return up, nil
}

// parseVmstat returns the pages swapped in and out since boot from
// /proc/vmstat.
func parseVmstat(data []byte) (in, out uint64, err error) {
	haveIn, haveOut := false, false
	for line := range lines(data) {
		name, value, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(name) {
		case "pswpin":
			dst, haveIn = &in, true
		case "pswpout":
			dst, haveOut = &out, true
		default:
			continue
		}
		if *dst, err = parseUint(bytes.TrimSpace(value)); err != nil {
			return 0, 0, fmt.Errorf("parse /proc/vmstat: %s: %w", name, err)
		}
	}
	if !haveIn || !haveOut {
		return 0, 0, errors.New("parse /proc/vmstat: no pswpin or pswpout")
	}
	return in, out, nil
}

// psiLine is one line of a /proc/pressure file.
type psiLine struct {
	Avg10 float64 // percent
	Total uint64  // stall time since boot, microseconds
}

// psiFile is one /proc/pressure file; Full is nil when it has no "full"
// line (cpu before Linux 5.13).
type psiFile struct {
	Some psiLine
	Full *psiLine
}

// parsePSI parses a /proc/pressure file:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func parsePSI(data []byte) (psiFile, error) {
	var p psiFile
	haveSome := false
	for line := range lines(data) {
		f := fields(line)
		if len(f) == 0 {
			continue
		}
		var l psiLine
		haveAvg, haveTotal := false, false
		for _, kv := range f[1:] {
			k, v, ok := bytes.Cut(kv, []byte("="))
			if !ok {
				continue
			}
			var err error
			switch string(k) {
			case "avg10":
				l.Avg10, err = strconv.ParseFloat(string(v), 64)
				haveAvg = true
			case "total":
				l.Total, err = parseUint(v)
				haveTotal = true
			}
			if err != nil {
				return p, fmt.Errorf("parse pressure %s %s: %w", f[0], k, err)
			}
		}
		if !haveAvg || !haveTotal {
			return p, fmt.Errorf("parse pressure: line %q lacks avg10 or total", line)
		}
		switch string(f[0]) {
		case "some":
			p.Some, haveSome = l, true
		case "full":
			p.Full = &l
		}
	}
	if !haveSome {
		return p, errors.New("parse pressure: no \"some\" line")
	}
	return p, nil
}

// ifCounters are one interface's cumulative counters from /proc/net/dev.
type ifCounters struct {
	Name                                   string
	RxBytes, RxPackets, TxBytes, TxPackets uint64
}

// parseNetDev parses /proc/net/dev, leaving out the loopback interface.
//
//	Inter-|   Receive                                                |  Transmit
//	 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets ...
//	  eth0: 1234 56 0 0 0 0 0 0 7890 12 0 0 0 0 0 0
func parseNetDev(data []byte) ([]ifCounters, error) {
	var out []ifCounters
	for line := range lines(data) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue // the two header lines
		}
		name = bytes.TrimSpace(name)
		if string(name) == "lo" {
			continue
		}
		f := fields(rest)
		if len(f) < 10 {
			return nil, fmt.Errorf("parse /proc/net/dev: %s has %d fields, want 16", name, len(f))
		}
		var v [4]uint64
		for i, col := range []int{0, 1, 8, 9} {
			n, err := parseUint(f[col])
			if err != nil {
				return nil, fmt.Errorf("parse /proc/net/dev: %s field %d: %w", name, col+1, err)
			}
			v[i] = n
		}
		out = append(out, ifCounters{Name: string(name), RxBytes: v[0], RxPackets: v[1], TxBytes: v[2], TxPackets: v[3]})
	}
	return out, nil
}

// countTCPStates adds to counts (indexed by the kernel's state number, 1 to
// 11) the sockets listed in /proc/net/tcp or /proc/net/tcp6. It reads only
// the state column, the fourth: a host with many sockets has many lines.
//
//	sl  local_address rem_address   st tx_queue rx_queue ...
//	 0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 ...
func countTCPStates(data []byte, counts *[12]int) error {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return countTCPLines(data[i+1:], counts)
	}
	return nil // only a header
}

// countTCPLines is countTCPStates on the lines after the header.
func countTCPLines(data []byte, counts *[12]int) error {
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		st, ok := nthField(line, 3)
		if !ok {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			return fmt.Errorf("parse tcp socket line %q: no state", line)
		}
		if len(st) != 2 {
			return fmt.Errorf("parse tcp socket state %q", st)
		}
		n := unhex(st[0])<<4 | unhex(st[1])
		if n < 1 || n > 11 {
			return fmt.Errorf("parse tcp socket state %q", st)
		}
		counts[n]++
	}
	return nil
}

// tcpStateMap turns counts indexed by state number into Sockets.TCP.
func tcpStateMap(counts *[12]int) map[string]int {
	m := make(map[string]int, len(snapshot.TCPStates))
	for i, name := range snapshot.TCPStates {
		m[name] = counts[i+1]
	}
	return m
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1 << 8 // makes the state out of range
}

// parseFileNr parses /proc/sys/fs/file-nr: allocated, unused (always 0
// since Linux 2.6), max.
func parseFileNr(data []byte) (allocated, max uint64, err error) {
	f := fields(data)
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("parse file-nr %q: want 3 fields", data)
	}
	if allocated, err = parseUint(f[0]); err == nil {
		max, err = parseUint(f[2])
	}
	if err != nil {
		return 0, 0, fmt.Errorf("parse file-nr: %w", err)
	}
	return allocated, max, nil
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	Dev    string // major:minor of the file system
	Root   string // the directory of the file system mounted here: "/" unless a bind mount or subvolume
	Point  string // mount point
	Type   string
	Source string
}

// parseMountinfo parses /proc/self/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(data []byte) ([]mount, error) {
	var out []mount
	for line := range lines(data) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f := fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if string(f[i]) == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("parse mountinfo line %q", line)
		}
		out = append(out, mount{
			Dev:    string(f[2]),
			Root:   unescapeOctal(string(f[3])),
			Point:  unescapeOctal(string(f[4])),
			Type:   string(f[sep+1]),
			Source: unescapeOctal(string(f[sep+2])),
		})
	}
	return out, nil
}

// unescapeOctal undoes the kernel's escaping of blanks, tabs, newlines and
// backslashes in mount points ("\040" for a blank).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pidStat is what the probe takes from /proc/PID/stat.
type pidStat struct {
	Comm     string
	State    byte
	PPID     int32
	Kernel   bool   // a kernel thread (PF_KTHREAD): it has no command line
	Ticks    uint64 // user + system CPU time, clock ticks
	Threads  int
	Start    uint64 // start time, clock ticks after boot
	RSSPages uint64
}

// pfKthread is the kernel's PF_KTHREAD flag in field 9 of /proc/PID/stat.
const pfKthread = 0x00200000

// parsePidStat parses /proc/PID/stat. The name (comm) is in parentheses and
// may itself hold blanks and parentheses, so the fields are counted from
// the last ')'.
//
//	4711 (python3) S 1 4711 4711 0 -1 4194560 ... 14:utime 15:stime ... 20:threads 21 22:starttime 23:vsize 24:rss ...
func parsePidStat(data []byte) (pidStat, error) {
	var s pidStat
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return s, fmt.Errorf("parse process stat %q: no name", preview(data))
	}
	s.Comm = string(data[open+1 : end])
	rest := data[end+1:]
	// Field n (1-based, as proc(5) numbers them) is rest's field n-3.
	field := 3
	var utime uint64
	for len(rest) > 0 && field <= 24 {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			i = len(rest)
		}
		tok := bytes.TrimSpace(rest[:i])
		rest = rest[i:]
		var err error
		switch field {
		case 3:
			if len(tok) > 0 {
				s.State = tok[0]
			}
		case 4:
			var n uint64
			n, err = parseUint(tok)
			s.PPID = int32(n)
		case 9:
			var flags uint64
			flags, err = parseUint(tok)
			s.Kernel = flags&pfKthread != 0
		case 14:
			utime, err = parseUint(tok)
		case 15:
			var stime uint64
			stime, err = parseUint(tok)
			s.Ticks = utime + stime
		case 20:
			var n uint64
			n, err = parseUint(tok)
			s.Threads = int(n)
		case 22:
			s.Start, err = parseUint(tok)
		case 24:
			s.RSSPages, err = parseUint(tok)
		}
		if err != nil {
			return s, fmt.Errorf("parse process stat field %d: %w", field, err)
		}
		field++
	}
	if field <= 24 {
		return s, fmt.Errorf("parse process stat %q: %d fields, want at least 24", preview(data), field-1)
	}
	return s, nil
}

// parseStatusUID returns the real user id from /proc/PID/status
// ("Uid:\t1000\t1000\t1000\t1000").
func parseStatusUID(data []byte) (string, error) {
	for line := range lines(data) {
		if rest, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			f := fields(rest)
			if len(f) == 0 {
				break
			}
			if _, err := parseUint(f[0]); err != nil {
				return "", fmt.Errorf("parse process status uid: %w", err)
			}
			return string(f[0]), nil
		}
	}
	return "", errors.New("parse process status: no Uid line")
}

// parsePasswd returns the user names of the uids in want from /etc/passwd
// text ("name:x:uid:gid:..."); the first entry for a uid wins.
func parsePasswd(data []byte, want map[string]string) {
	for line := range lines(data) {
		f := bytes.SplitN(line, []byte(":"), 4)
		if len(f) < 4 || len(f[0]) == 0 || f[0][0] == '#' {
			continue
		}
		if name, ok := want[string(f[2])]; ok && name == "" {
			want[string(f[2])] = string(f[0])
		}
	}
}

// cmdlineString joins the arguments in /proc/PID/cmdline (each ended by a
// NUL) with blanks, as ps and version 1 of the probe show them.
func cmdlineString(data []byte) string {
	data = bytes.TrimSuffix(data, []byte{0})
	return strings.ReplaceAll(string(data), "\x00", " ")
}

// shortCommand returns a command line fit to show: arguments joined by
// blanks, control characters and invalid UTF-8 dropped, blanks at either
// end trimmed (a process that rewrites its title, as sshd does, pads it),
// cut to at most max bytes on a character boundary, with "…" marking a cut.
func shortCommand(cmdline string, max int) string {
	cmdline = strings.TrimSpace(cmdline)
	var b strings.Builder
	const ellipsis = "…"
	for _, r := range cmdline {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (0x80 <= r && r < 0xa0) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			s := b.String()
			for len(s)+len(ellipsis) > max {
				_, size := utf8.DecodeLastRuneInString(s)
				s = s[:len(s)-size]
			}
			return s + ellipsis
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// lines yields the lines of data without their newlines.
func lines(data []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				yield(data)
				return
			}
			if !yield(data[:i]) {
				return
			}
			data = data[i+1:]
		}
	}
}

// fields splits b around runs of blanks and tabs.
func fields(b []byte) [][]byte { return bytes.Fields(b) }

// nthField returns the n-th (0-based) blank-separated field of line
// without allocating.
func nthField(line []byte, n int) ([]byte, bool) {
	i := 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			return nil, false
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if n == 0 {
			return line[i:j], true
		}
		n--
		i = j
	}
}

// parseUint parses a decimal number without allocating.
func parseUint(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, errors.New("empty number")
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad number %q", b)
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, fmt.Errorf("number %q out of range", b)
		}
		n = n*10 + d
	}
	return n, nil
}

// preview returns the start of data for an error message.
func preview(data []byte) []byte {
	const n = 64
	if len(data) > n {
		return data[:n]
	}
	return data
}
