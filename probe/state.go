package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// This file keeps, between one-shot runs, what a run learned of each
// process (-state): its CPU time at its last reading and the keywords its
// command line matched. With it a run reads each process's stat file once,
// at the end of its sample window, measures each process's CPU over the
// time since the previous run read it (Snapshot.ProcessCPUSeconds), and
// reads command lines only of the processes it has not seen. The file is a
// cache: when it is missing, stale, from another boot or pid namespace,
// unreadable or corrupt, the run measures over its sample window as
// without -state, and writes a new one; it never fails a run.
//
// The format is text, one line per field and one per process:
//
//	collector-probe-state 1
//	boot 0e5a7bd0-8d0e-4c33-a41e-55b5e8a9ab57
//	pidns 4026531836
//	listed 5311020415632
//	read 5312031022417
//	argv0 "/home/monitor/.cache/collector/probe-0123456789abcdef"
//	keywords "python" "java"
//	procs 2
//	1 2 5213 61 c 4d8a7c2e 5301 -
//	4711 35012 77 1204 c 1a2b3c4d 5302 0,1
//	end
//
// Times are of CLOCK_BOOTTIME, the clock process start times count from:
// listed and read in nanoseconds (when the run listed /proc, and when its
// last reading of the processes began). A process line holds pid, start time
// (clock ticks after boot), CPU time (user + system, clock ticks), when that
// was read (microseconds after read), flags (k kernel thread, x excluded:
// the probe or a process it never counts, c confirmed: its command line
// was read when it was old enough to have exec'd; - none), the FNV-1a hash of its
// name when its command line was read, when that was (seconds of
// CLOCK_BOOTTIME), and the indices of the keywords it matched (- none).

// stateMagic is the first line of a state file of this format; a file of
// another format is ignored and replaced.
const stateMagic = "collector-probe-state 1"

const (
	// maxStateAge is the oldest state a run measures from: older, its
	// per-process figures would describe the past more than the present,
	// and the run measures over its sample window instead. It covers
	// schedules of up to 5 minutes with room for splay and retries.
	maxStateAge = 10 * time.Minute
	// maxStateProcs is the most processes a state file keeps; a host with
	// more gets none written, and measures over the sample window.
	maxStateProcs = 1 << 15
	// maxStateBytes is the largest state file read: maxStateProcs lines
	// of the longest kind, with room for the header.
	maxStateBytes = 4 << 20
	// rematchAfter is how old a cached match may grow before its command
	// line is read again, and maxRematch how many such command lines a
	// run reads at most: a process that changes its command line without
	// changing its name (an exec of a program of the same name, a
	// retitle) is matched anew within rematchAfter, plus a run for every
	// maxRematch processes that fell due at once.
	rematchAfter = 10 * time.Minute
	maxRematch   = 64
)

// knownProc is what a state file keeps of one process.
type knownProc struct {
	pid       int32
	start     uint64 // start time, clock ticks after boot: tells a reused pid
	ticks     uint64 // user + system CPU time, clock ticks, read at at
	at        int64  // when ticks was read, ns of CLOCK_BOOTTIME
	comm      uint32 // commHash of its name when its command line was read
	matchedAt int64  // when its command line was read, seconds of CLOCK_BOOTTIME
	kernel    bool
	excluded  bool // the probe, or a process it never counts
	confirmed bool // its command line was read when it was at least youngTicks old
	keys      []int
}

// procState is the content of a state file.
type procState struct {
	bootID   string // /proc/sys/kernel/random/boot_id
	pidNS    uint64 // inode of the pid namespace
	listedAt int64  // ns of CLOCK_BOOTTIME when the run listed /proc
	readAt   int64  // ns of CLOCK_BOOTTIME when its last reading of the processes began
	argv0    string // the probe's argv[0], which decides what is excluded
	keywords []string
	procs    []knownProc // sorted by pid
}

// host identifies the boot and pid namespace a state belongs to: pids and
// start times mean nothing outside them.
type host struct {
	bootID string
	pidNS  uint64
}

// readHostID reads the boot id and the pid namespace of the probe.
func readHostID(buf *[]byte) (host, error) {
	data, err := readFile("/proc/sys/kernel/random/boot_id", buf)
	if err != nil {
		return host{}, fmt.Errorf("read boot id: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return host{}, fmt.Errorf("read pid namespace: %w", err)
	}
	id := string(bytes.TrimSpace(data))
	if id == "" {
		return host{}, errors.New("read boot id: empty")
	}
	return host{bootID: id, pidNS: st.Ino}, nil
}

// usable reports why s cannot be measured from on host h at now (ns of
// CLOCK_BOOTTIME), or nil when it can.
func (s *procState) usable(h host, now int64) error {
	switch age := time.Duration(now - s.readAt); {
	case s.bootID != h.bootID:
		return errors.New("state is from another boot")
	case s.pidNS != h.pidNS:
		return errors.New("state is from another pid namespace")
	case age < 0:
		return errors.New("state is from the future")
	case age > maxStateAge:
		return fmt.Errorf("state is stale: %v old, more than %v", age.Round(time.Second), maxStateAge)
	}
	return nil
}

// matchesFor reports whether the matches s keeps hold for keywords and
// argv0.
func (s *procState) matchesFor(keywords []string, argv0 string) bool {
	return s.argv0 == argv0 && slices.Equal(s.keywords, keywords)
}

// loadState reads the state file at path. The error says why there is no
// usable state: fs.ErrNotExist when there is no file.
func loadState(path string, buf *[]byte) (*procState, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer closeFD(fd)
	if len(*buf) < 64<<10 {
		*buf = make([]byte, 64<<10)
	}
	n := 0
	for {
		if n == len(*buf) {
			grown := make([]byte, min(2*len(*buf), maxStateBytes+1))
			copy(grown, (*buf)[:n])
			*buf = grown
		}
		m, err := readFD(fd, (*buf)[n:], -1)
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		if n += m; n > maxStateBytes {
			return nil, fmt.Errorf("read %s: more than %d bytes", path, maxStateBytes)
		}
	}
	s, err := parseState((*buf)[:n])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// parseState parses a state file. It accepts nothing but a whole file of
// this format: a torn or edited one is refused.
func parseState(data []byte) (*procState, error) {
	s := &procState{}
	ln := 0
	next := func() ([]byte, bool) {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil, false
		}
		line := data[:i]
		data = data[i+1:]
		ln++
		return line, true
	}
	field := func(name string) (string, error) {
		line, ok := next()
		if !ok {
			return "", fmt.Errorf("line %d: want %s, file ends", ln+1, name)
		}
		rest, ok := bytes.CutPrefix(line, []byte(name+" "))
		if !ok && string(line) == name {
			rest, ok = nil, true // keywords without any
		}
		if !ok {
			return "", fmt.Errorf("line %d: want %s, have %q", ln, name, preview(line))
		}
		return string(rest), nil
	}
	number := func(name string) (uint64, error) {
		v, err := field(name)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("line %d: %s: %w", ln, name, err)
		}
		return n, nil
	}
	if line, ok := next(); !ok || string(line) != stateMagic {
		return nil, fmt.Errorf("not a state file of this format (want first line %q)", stateMagic)
	}
	var err error
	if s.bootID, err = field("boot"); err != nil {
		return nil, err
	}
	if s.pidNS, err = number("pidns"); err != nil {
		return nil, err
	}
	listed, err := number("listed")
	if err != nil {
		return nil, err
	}
	read, err := number("read")
	if err != nil {
		return nil, err
	}
	if listed > read {
		return nil, fmt.Errorf("line %d: read %d is before listed %d", ln, read, listed)
	}
	s.listedAt, s.readAt = int64(listed), int64(read)
	v, err := field("argv0")
	if err != nil {
		return nil, err
	}
	if s.argv0, err = strconv.Unquote(v); err != nil {
		return nil, fmt.Errorf("line %d: argv0: %w", ln, err)
	}
	if v, err = field("keywords"); err != nil {
		return nil, err
	}
	if s.keywords, err = unquoteAll(v); err != nil {
		return nil, fmt.Errorf("line %d: keywords: %w", ln, err)
	}
	count, err := number("procs")
	if err != nil {
		return nil, err
	}
	if count > maxStateProcs {
		return nil, fmt.Errorf("line %d: %d processes, more than %d", ln, count, maxStateProcs)
	}
	s.procs = make([]knownProc, 0, count)
	var keys []int // one array for the keys of all processes
	for range count {
		line, ok := next()
		if !ok {
			return nil, fmt.Errorf("line %d: want a process, file ends", ln+1)
		}
		p, err := parseKnownProc(line, s.readAt, len(s.keywords), &keys)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", ln, err)
		}
		if n := len(s.procs); n > 0 && p.pid <= s.procs[n-1].pid {
			return nil, fmt.Errorf("line %d: pid %d after pid %d", ln, p.pid, s.procs[n-1].pid)
		}
		s.procs = append(s.procs, p)
	}
	if line, ok := next(); !ok || string(line) != "end" {
		return nil, fmt.Errorf("line %d: want end", ln)
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("line %d: data after end", ln+1)
	}
	return s, nil
}

// parseKnownProc parses a process line without allocating but for its
// keys, which it appends to *keys; readAt is the state's, and keywords
// how many it has.
func parseKnownProc(line []byte, readAt int64, keywords int, keys *[]int) (knownProc, error) {
	var p knownProc
	var f [8][]byte
	rest := line
	for i := range len(f) - 1 {
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			return p, fmt.Errorf("process line %q: %d fields, want %d", preview(line), i+1, len(f))
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	if bytes.IndexByte(rest, ' ') >= 0 {
		return p, fmt.Errorf("process line %q: more than %d fields", preview(line), len(f))
	}
	f[7] = rest
	var n [5]uint64
	for i, j := range []int{0, 1, 2, 3, 6} {
		v, err := parseUint(f[j])
		if err != nil || v > 1<<63-1 {
			return p, fmt.Errorf("process line field %d: %q", j+1, f[j])
		}
		n[i] = v
	}
	if n[0] == 0 || n[0] > 1<<31-1 {
		return p, fmt.Errorf("process line: pid %d out of range", n[0])
	}
	comm, err := parseHex32(f[5])
	if err != nil {
		return p, fmt.Errorf("process line name hash %q: %w", f[5], err)
	}
	p.pid, p.start, p.ticks, p.at, p.comm, p.matchedAt = int32(n[0]), n[1], n[2], readAt+int64(n[3])*1000, comm, int64(n[4])
	if string(f[4]) != "-" {
		for _, c := range f[4] {
			switch c {
			case 'k':
				p.kernel = true
			case 'x':
				p.excluded = true
			case 'c':
				p.confirmed = true
			default:
				return p, fmt.Errorf("process line: flags %q", f[4])
			}
		}
	}
	if string(f[7]) != "-" {
		first := len(*keys)
		for k := range bytes.SplitSeq(f[7], []byte(",")) {
			i, err := parseUint(k)
			if err != nil || i >= uint64(keywords) || len(*keys) > first && int(i) <= (*keys)[len(*keys)-1] {
				return p, fmt.Errorf("process line: keywords %q (of %d)", f[7], keywords)
			}
			*keys = append(*keys, int(i))
		}
		p.keys = (*keys)[first:len(*keys):len(*keys)]
	}
	return p, nil
}

// parseHex32 parses up to 8 lowercase hex digits.
func parseHex32(b []byte) (uint32, error) {
	if len(b) == 0 || len(b) > 8 {
		return 0, errors.New("want 1 to 8 hex digits")
	}
	var n uint32
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | uint32(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | uint32(c-'a'+10)
		default:
			return 0, errors.New("want lowercase hex digits")
		}
	}
	return n, nil
}

// unquoteAll parses blank-separated Go-quoted strings.
func unquoteAll(s string) ([]string, error) {
	out := []string{}
	for s != "" {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return nil, err
		}
		v, err := strconv.Unquote(q)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		s = s[len(q):]
		if s != "" {
			if s[0] != ' ' {
				return nil, fmt.Errorf("no blank after %s", q)
			}
			s = s[1:]
		}
	}
	return out, nil
}

// find returns what s knows of pid, or nil.
func (s *procState) find(pid int32) *knownProc {
	i, ok := slices.BinarySearchFunc(s.procs, pid, func(p knownProc, pid int32) int { return cmp.Compare(p.pid, pid) })
	if !ok {
		return nil
	}
	return &s.procs[i]
}

// appendState appends the text of s to b; s.procs must be sorted by pid.
func appendState(b []byte, s *procState) []byte {
	b = append(b, stateMagic...)
	b = append(b, "\nboot "...)
	b = append(b, s.bootID...)
	b = append(b, "\npidns "...)
	b = strconv.AppendUint(b, s.pidNS, 10)
	b = append(b, "\nlisted "...)
	b = strconv.AppendInt(b, s.listedAt, 10)
	b = append(b, "\nread "...)
	b = strconv.AppendInt(b, s.readAt, 10)
	b = append(b, "\nargv0 "...)
	b = strconv.AppendQuote(b, s.argv0)
	b = append(b, "\nkeywords"...)
	for _, k := range s.keywords {
		b = append(b, ' ')
		b = strconv.AppendQuote(b, k)
	}
	b = append(b, "\nprocs "...)
	b = strconv.AppendInt(b, int64(len(s.procs)), 10)
	b = append(b, '\n')
	for _, p := range s.procs {
		b = strconv.AppendInt(b, int64(p.pid), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, p.start, 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, p.ticks, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, max(p.at-s.readAt, 0)/1000, 10)
		b = append(b, ' ')
		n := len(b)
		if p.kernel {
			b = append(b, 'k')
		}
		if p.excluded {
			b = append(b, 'x')
		}
		if p.confirmed {
			b = append(b, 'c')
		}
		if len(b) == n {
			b = append(b, '-')
		}
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(p.comm), 16)
		b = append(b, ' ')
		b = strconv.AppendInt(b, max(p.matchedAt, 0), 10)
		b = append(b, ' ')
		if len(p.keys) == 0 {
			b = append(b, '-')
		}
		for i, k := range p.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(k), 10)
		}
		b = append(b, '\n')
	}
	return append(b, "end\n"...)
}

// saveState writes data to path atomically: to a temporary file next to
// it, renamed over it, so that a reader sees the old file or the new,
// whole; of two runs writing at once, the last rename wins. It does not
// sync: after a crash the file may be lost or torn, which the next run
// detects. The temporary file, .BASE.tmp.PID.NS, is created exclusively
// (two runs never share one, even from two pid namespaces), and its name
// is one that the collector's upload clears away when a killed probe left
// it behind.
func saveState(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp."+strconv.Itoa(os.Getpid())+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: tmp, Err: err}
	}
	for len(data) > 0 && err == nil {
		var n int
		n, err = unix.Write(fd, data)
		if err == unix.EINTR {
			err = nil
		}
		data = data[n:]
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Rename(tmp, path)
	}
	if err != nil {
		unix.Unlink(tmp)
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// commHash is the 32-bit FNV-1a hash of a process name: a change of name
// (an exec) makes a run read the command line again.
func commHash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// bootClock converts this run's monotonic times to CLOCK_BOOTTIME, the
// clock a state file keeps times in: one clock_gettime system call, then
// the vDSO's monotonic clock for every reading.
type bootClock struct {
	mono time.Time
	boot int64 // ns of CLOCK_BOOTTIME at mono
}

func newBootClock() (bootClock, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return bootClock{}, fmt.Errorf("read boot time clock: %w", err)
	}
	return bootClock{mono: time.Now(), boot: ts.Nano()}, nil
}

// at returns t in ns of CLOCK_BOOTTIME.
func (c bootClock) at(t time.Time) int64 { return c.boot + int64(t.Sub(c.mono)) }
