package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"time"
	"unsafe"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// This file reads the process table. Reading /proc costs the probe a few
// system calls per process and file, and that is nearly all of its CPU time
// on a host with many processes, so it reads as little as it can: the stat
// file of each process (name, CPU time, threads, memory, kernel thread or
// not), and its command line only for keyword matching and for the few
// processes it shows; with a state file (state.go), each process once and
// only new processes' command lines. See budget_test.go for what it costs.

// procDir is /proc opened once, with a buffer reused for every file.
type procDir struct {
	fd  int
	buf []byte
	// dents is the buffer for directory listings.
	dents []byte
	// leave is how many more descriptors may be left open rather than
	// closed: a one-shot probe exits right after its scan, and the kernel
	// closes them then, without a system call each.
	leave int
}

// release closes fd, or leaves it open for exit to close.
func (d *procDir) release(fd int) {
	if d.leave > 0 {
		d.leave--
		return
	}
	closeFD(fd)
}

// read reads the file at path relative to /proc.
func (d *procDir) read(path string) ([]byte, error) {
	fd, err := openAt(d.fd, path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer d.release(fd)
	data, err := readAll(fd, &d.buf)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return data, nil
}

// readPID reads the file PID/file of /proc, building its path without
// allocating: it is read for every process.
func (d *procDir) readPID(pid int32, file string) ([]byte, error) {
	fd, err := d.openPID(pid, file)
	if err != nil {
		return nil, err
	}
	defer d.release(fd)
	data, err := readAll(fd, &d.buf)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: pidPath(pid, file), Err: err}
	}
	return data, nil
}

// openPID opens PID/file of /proc for reading.
func (d *procDir) openPID(pid int32, file string) (int, error) {
	var b [48]byte
	p := strconv.AppendInt(b[:0], int64(pid), 10)
	p = append(p, '/')
	p = append(p, file...)
	fd, err := openAtZ(d.fd, append(p, 0))
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: pidPath(pid, file), Err: err}
	}
	return fd, nil
}

func openProcDir() (*procDir, error) {
	fd, err := syscall.Open("/proc", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("list processes: open /proc: %w", err)
	}
	return &procDir{fd: fd, buf: make([]byte, 4096), dents: make([]byte, 32<<10)}, nil
}

func (d *procDir) close() { syscall.Close(d.fd) }

// pids lists the processes, appending to pids[:0].
func (d *procDir) pids(pids []int32) ([]int32, error) {
	pids = pids[:0]
	if _, err := syscall.Seek(d.fd, 0, 0); err != nil {
		return nil, fmt.Errorf("list processes: rewind /proc: %w", err)
	}
	for {
		n, err := syscall.ReadDirent(d.fd, d.dents)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list processes: read /proc: %w", err)
		}
		if n == 0 {
			return pids, nil
		}
		pids = appendPIDs(pids, d.dents[:n])
	}
}

// appendPIDs appends the numeric names in a buffer of linux_dirent64
// records: ino u64, off s64, reclen u16, type u8, name NUL-terminated.
func appendPIDs(pids []int32, buf []byte) []int32 {
	for len(buf) >= 19 {
		reclen := int(*(*uint16)(unsafe.Pointer(&buf[16])))
		if reclen < 19 || reclen > len(buf) {
			break
		}
		name := buf[19:reclen]
		var pid int64
		ok := len(name) > 0 && name[0] != 0
		for _, c := range name {
			if c == 0 {
				break
			}
			if c < '0' || c > '9' {
				ok = false
				break
			}
			pid = pid*10 + int64(c-'0')
		}
		if ok && pid > 0 && pid <= 1<<31-1 {
			pids = append(pids, int32(pid))
		}
		buf = buf[reclen:]
	}
	return pids
}

// pidPath returns "PID/file", a path relative to /proc.
func pidPath(pid int32, file string) string {
	var b [32]byte
	p := strconv.AppendInt(b[:0], int64(pid), 10)
	p = append(p, '/')
	p = append(p, file...)
	return string(p)
}

// stat reads and parses PID/stat.
func (d *procDir) stat(pid int32) (pidStat, error) {
	data, err := d.readPID(pid, "stat")
	if err != nil {
		return pidStat{}, err
	}
	return parsePidStat(data)
}

// cmdline reads PID/cmdline, its arguments joined by blanks.
func (d *procDir) cmdline(pid int32) (string, error) {
	data, err := d.readPID(pid, "cmdline")
	if err != nil {
		return "", err
	}
	return cmdlineString(data), nil
}

// cmdlineView is cmdline without a copy: the string is only valid until
// the next read through d.
func (d *procDir) cmdlineView(pid int32) (string, error) {
	data, err := d.readPID(pid, "cmdline")
	if err != nil {
		return "", err
	}
	data = bytes.TrimSuffix(data, []byte{0})
	for i, c := range data {
		if c == 0 {
			data[i] = ' '
		}
	}
	return unsafe.String(unsafe.SliceData(data), len(data)), nil
}

// uid reads the real user id of pid from PID/status.
func (d *procDir) uid(pid int32) (string, error) {
	data, err := d.readPID(pid, "status")
	if err != nil {
		return "", err
	}
	return parseStatusUID(data)
}

// fdCountBySize reports whether stat of /proc/PID/fd gives the number of
// open descriptors as its size (Linux 6.2 and later); the probe itself
// always has some open.
var fdCountBySize = sync.OnceValue(func() bool {
	var st syscall.Stat_t
	return syscall.Stat("/proc/self/fd", &st) == nil && st.Size > 0
})

// openFDs counts the open file descriptors of pid: one stat where the kernel
// gives the count as the size of /proc/PID/fd, a listing of it elsewhere.
// Reading another user's descriptors takes root.
func (d *procDir) openFDs(pid int32) (int, error) {
	path := pidPath(pid, "fd")
	if fdCountBySize() {
		var st unix.Stat_t
		if err := unix.Fstatat(d.fd, path, &st, 0); err != nil {
			return 0, err
		}
		if st.Size > 0 {
			return int(st.Size), nil
		}
	}
	fd, err := syscall.Openat(d.fd, path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer syscall.Close(fd)
	n := 0
	for {
		m, err := syscall.ReadDirent(fd, d.dents)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if m == 0 {
			return n, nil
		}
		n += len(appendPIDs(nil, d.dents[:m])) // the entries are numbers too
	}
}

// proc is one process as a scan saw it.
type proc struct {
	pid  int32
	st   pidStat
	at   time.Time // when st was read
	fd   int       // its stat file, kept open for the second reading; -1 when closed
	keys []int     // the keywords it matched
	cpu  float64   // percent of one CPU
	gone bool      // exited before its second reading

	// known is what the previous run's state has of it: it is first read
	// at the end of the window and measured from that run's reading.
	known *knownProc
	// excluded: the probe's parent or another process the probe never
	// counts; kept for the state, left out of the sections.
	excluded  bool
	confirmed bool  // its command line was read when it was old enough to have exec'd
	matchedAt int64 // when its command line was read, seconds of CLOCK_BOOTTIME
}

// scanOptions are what a scan needs to know.
type scanOptions struct {
	sample   time.Duration
	keywords []string // distinct, none empty
	me       self
	state    *stateOptions // nil: no state kept
}

// stateOptions are what a scan needs to measure from a state file and to
// write one.
type stateOptions struct {
	path  string
	host  host
	clock bootClock
	// prev is the previous run's state when it is usable, and cached
	// whether its matches hold for this run's keywords and argv[0].
	prev   *procState
	cached bool
}

// keptFDs is how many stat files a scan keeps open over the sample window,
// so that the second reading costs one read instead of open, read and
// close; the rest are opened again. It leaves room under RLIMIT_NOFILE
// (which Go raises to the hard limit at start).
func keptFDs() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return max(int(min(rl.Cur, 1<<20))-128, 0)
}

// readProcesses lists the processes, matches them against keywords, and
// measures them over a sample window that starts as each is first read:
// the matched groups and the top lists. With sample 0 each process's CPU is
// its average since it started.
func readProcesses(ctx context.Context, sample time.Duration, keywords []string) procResult {
	return readProcessesLeaving(ctx, sample, keywords, 0, "")
}

// readProcessesOnce is readProcesses for a probe that exits right after:
// it leaves the descriptors it opened for exit to close.
func readProcessesOnce(ctx context.Context, sample time.Duration, keywords []string) procResult {
	return readProcessesLeaving(ctx, sample, keywords, 1<<20, "")
}

// readProcessesState is readProcessesOnce keeping a state file at path
// (see state.go): with the previous run's, each process is measured from
// that run's reading of it. With sample 0 there is no window to spare and
// the state is neither read nor written.
func readProcessesState(path string) func(ctx context.Context, sample time.Duration, keywords []string) procResult {
	return func(ctx context.Context, sample time.Duration, keywords []string) procResult {
		return readProcessesLeaving(ctx, sample, keywords, 1<<20, path)
	}
}

// readProcessesLeaving is readProcesses leaving at most leave descriptors
// open, and keeping a state file at statePath unless it is "".
func readProcessesLeaving(ctx context.Context, sample time.Duration, keywords []string, leave int, statePath string) procResult {
	d, err := openProcDir()
	if err != nil {
		return procResult{Processes: snapshot.Processes{Matched: []snapshot.Match{}, Error: err.Error()}, Top: snapshot.Top{Error: err.Error()}}
	}
	defer d.close()
	d.leave = leave
	opts := scanOptions{sample: sample, keywords: distinct(keywords), me: currentSelf()}
	if statePath != "" && sample > 0 {
		opts.state = openState(statePath, &d.buf, opts.keywords, opts.me.argv0)
	}
	sc, err := scan(ctx, d, opts)
	if err != nil {
		return procResult{Processes: snapshot.Processes{Matched: []snapshot.Match{}, Error: err.Error()}, Top: snapshot.Top{Error: err.Error()}}
	}
	if st := opts.state; st != nil && sc.windowErr == nil {
		if st.prev != nil {
			sc.cpuSeconds = round2(float64(sc.readAt-st.prev.readAt) / 1e9)
		}
		// A cache: a state that cannot be written costs the next run its
		// savings, never this run its snapshot.
		_ = writeState(st, opts, sc, &d.buf)
	}
	r := summarize(d, sc.procs, opts.keywords)
	r.CPUSeconds = sc.cpuSeconds
	if sc.windowErr != nil {
		msg := fmt.Sprintf("sample process cpu times: %v", sc.windowErr)
		r.Processes.Error, r.Top.Error = msg, msg
	}
	return r
}

// openState prepares a scan to keep the state file at path: it reads the
// previous run's state and keeps it when it is usable. It returns nil when
// this run cannot keep a state at all (no boot time clock, no boot id).
func openState(path string, buf *[]byte, keywords []string, argv0 string) *stateOptions {
	clock, err := newBootClock()
	if err != nil {
		return nil
	}
	h, err := readHostID(buf)
	if err != nil {
		return nil
	}
	st := &stateOptions{path: path, host: h, clock: clock}
	prev, err := loadState(path, buf)
	if err == nil {
		err = prev.usable(h, clock.at(time.Now()))
	}
	if err == nil {
		st.prev, st.cached = prev, prev.matchesFor(keywords, argv0)
	}
	return st
}

// writeState writes the state of a scan whose window was whole: every
// process it read but those that exited, each with its last reading. A host
// with more than maxStateProcs processes gets none.
func writeState(st *stateOptions, opts scanOptions, sc scanResult, buf *[]byte) error {
	if len(sc.procs) > maxStateProcs {
		return fmt.Errorf("%d processes, more than %d", len(sc.procs), maxStateProcs)
	}
	s := &procState{
		bootID: st.host.bootID, pidNS: st.host.pidNS, listedAt: sc.listedAt, readAt: sc.readAt,
		argv0: opts.me.argv0, keywords: opts.keywords, procs: make([]knownProc, 0, len(sc.procs)),
	}
	for _, p := range sc.procs {
		if p.gone {
			continue
		}
		s.procs = append(s.procs, knownProc{
			pid: p.pid, start: p.st.Start, ticks: p.st.Ticks, at: st.clock.at(p.at), comm: commHash(p.st.Comm),
			matchedAt: p.matchedAt, kernel: p.st.Kernel, excluded: p.excluded, confirmed: p.confirmed, keys: p.keys,
		})
	}
	// /proc lists processes in pid order; sorting is a check.
	slices.SortFunc(s.procs, func(a, b knownProc) int { return cmp.Compare(a.pid, b.pid) })
	*buf = appendState((*buf)[:0], s)
	return saveState(st.path, *buf)
}

// currentSelf describes the running probe.
func currentSelf() self {
	return self{pid: int32(os.Getpid()), ppid: int32(os.Getppid()), argv0: os.Args[0]}
}

// procResult is the process table's two sections, and the span the
// per-process CPU was measured over when it is not the sample window
// (Snapshot.ProcessCPUSeconds).
type procResult struct {
	Processes  snapshot.Processes
	Top        snapshot.Top
	CPUSeconds float64
}

// scanResult is what a scan saw.
type scanResult struct {
	procs []proc
	// windowErr says why the sample window was cut short; the CPU is then
	// unmeasured.
	windowErr error
	// listedAt and readAt are when the scan listed /proc and when its last
	// reading of the processes began, in ns of CLOCK_BOOTTIME (with a
	// state only).
	listedAt, readAt int64
	cpuSeconds       float64
}

// scan reads every process once, leaves out the probe, and, with a sample
// window, reads each process's CPU time again at its end: a sample after
// the last process was first read, so that each is measured over at least
// the window. A window cut short by ctx leaves the CPU unmeasured and
// returns why as windowErr. A process that exits before it is read is
// skipped; one that exits during the window keeps its memory but adds no
// CPU. The processes the probe never counts are kept, marked excluded.
//
// With the previous run's state (opts.state.prev), a process that run read
// is not read at the start of the window, only at its end, and is measured
// from that run's reading of it; one that exited meanwhile is left out, and
// one whose pid was reused is a new process. A process new since that run
// listed /proc spent all its CPU time since then, and is measured from
// then. Only a process the state lacks although it was already running
// then (the state was cut at maxStateProcs, say) is measured over the
// window. A command line is read only for a process the state lacks, one
// whose name changed, one that was young when it was read (it may have
// exec'd since), the probe's parent, and up to maxRematch whose match is
// older than rematchAfter; all of them when the state's keywords differ.
func scan(ctx context.Context, d *procDir, opts scanOptions) (scanResult, error) {
	var r scanResult
	st := opts.state
	var prev *procState
	if st != nil {
		prev = st.prev
	}
	begin := time.Now()
	if st != nil {
		r.listedAt = st.clock.at(begin)
	}
	pids, err := d.pids(nil)
	if err != nil {
		return r, err
	}
	var uptime float64
	if opts.sample == 0 {
		if uptime, err = readUptime(&d.buf); err != nil {
			return r, fmt.Errorf("read processes: %w", err)
		}
	}
	// The stat files kept open over the window and the descriptors left
	// for exit to close share the room under RLIMIT_NOFILE.
	room := keptFDs()
	keep := 0
	if opts.sample > 0 {
		keep = room / 2
	}
	d.leave = min(d.leave, room-keep)
	procs := make([]proc, 0, len(pids))
	releaseAll := func() {
		for i := range procs {
			if procs[i].fd >= 0 {
				d.release(procs[i].fd)
				procs[i].fd = -1
			}
		}
	}
	kept := 0
	last := begin // when the last process was first read
	for i, pid := range pids {
		if i%64 == 0 && ctx.Err() != nil {
			releaseAll()
			return r, fmt.Errorf("read processes: %w", context.Cause(ctx))
		}
		if pid == opts.me.pid {
			continue
		}
		p := proc{pid: pid, fd: -1}
		if prev != nil {
			if p.known = prev.find(pid); p.known != nil {
				procs = append(procs, p)
				continue
			}
		}
		fd, err := d.openPID(pid, "stat")
		if err != nil {
			continue // exited since listed
		}
		data, err := readAll(fd, &d.buf)
		if err == nil {
			p.st, err = parsePidStat(data)
		}
		p.at = time.Now()
		if err != nil {
			d.release(fd)
			continue
		}
		if kept < keep {
			p.fd = fd
			kept++
		} else {
			d.release(fd)
		}
		if !matchProc(d, opts, &p) {
			if p.fd >= 0 {
				d.release(p.fd)
			}
			continue // exited
		}
		if opts.sample == 0 {
			life := time.Duration((uptime - float64(p.st.Start)/clockTicks) * float64(time.Second))
			p.cpu = procPercent(0, p.st.Ticks, life)
		}
		last = p.at
		procs = append(procs, p)
	}
	r.procs = procs
	if opts.sample == 0 {
		return r, nil
	}

	// Each process is measured over at least the sample window, even the
	// last one read when reading them all took long (a starved probe).
	if r.windowErr = sleepUntil(ctx, last.Add(opts.sample)); r.windowErr != nil {
		releaseAll()
	}
	readAt := time.Now()
	if st != nil {
		r.readAt = st.clock.at(readAt)
	}
	rematch := maxRematch
	for i := range procs {
		p := &procs[i]
		if r.windowErr != nil && p.known == nil {
			continue // keeps its first reading, its CPU unmeasured
		}
		var data []byte
		var err error
		if p.fd >= 0 {
			var n int
			n, err = readFD(p.fd, d.buf[:cap(d.buf)], 0)
			if err == nil {
				data = d.buf[:n]
			}
			d.release(p.fd)
			p.fd = -1
		} else {
			data, err = d.readPID(p.pid, "stat")
		}
		var now pidStat
		if err == nil {
			now, err = parsePidStat(data)
		}
		at := time.Now()
		if p.known == nil {
			if err != nil || now.Start != p.st.Start {
				p.gone = true // exited, or its pid was reused
				continue
			}
			if prev != nil && now.Start >= uint64(prev.listedAt/(1e9/clockTicks)) {
				// New since the previous run listed /proc: all its CPU
				// time was spent since.
				p.cpu = procPercent(0, now.Ticks, time.Duration(st.clock.at(at)-prev.listedAt))
			} else {
				p.cpu = procPercent(p.st.Ticks, now.Ticks, at.Sub(p.at))
			}
			p.st, p.at = now, at
			continue
		}
		if err != nil {
			p.gone = true // exited since listed
			continue
		}
		k := p.known
		p.st, p.at = now, at
		if now.Start != k.start {
			// The pid was reused: a process new since the previous
			// reading of this pid, after that run listed /proc.
			if !matchProc(d, opts, p) {
				p.gone = true
				continue
			}
			p.cpu = procPercent(0, now.Ticks, time.Duration(st.clock.at(at)-prev.listedAt))
			continue
		}
		p.cpu = procPercent(k.ticks, now.Ticks, time.Duration(st.clock.at(at)-k.at))
		reuse := st.cached && k.confirmed && k.comm == commHash(now.Comm) && p.pid != opts.me.ppid
		if reuse && needsCmdline(opts, p) && time.Duration(st.clock.at(at)/1e9-k.matchedAt)*time.Second >= rematchAfter && rematch > 0 {
			reuse = false
			rematch--
		}
		if reuse {
			p.keys, p.excluded, p.confirmed, p.matchedAt = k.keys, k.excluded, true, k.matchedAt
		} else if !matchProc(d, opts, p) {
			p.gone = true
			continue
		}
	}
	if r.windowErr != nil {
		for i := range procs {
			procs[i].cpu = 0
		}
	}
	// A process the state knew that exited before this run read it was
	// never seen by this run.
	r.procs = slices.DeleteFunc(procs, func(p proc) bool { return p.known != nil && p.gone })
	return r, nil
}

// needsCmdline reports whether matching p takes its command line: kernel
// threads have none, and without keywords only the probe's parent is
// checked (is it the shell that started the probe?).
func needsCmdline(opts scanOptions, p *proc) bool {
	return !p.st.Kernel && (len(opts.keywords) > 0 || p.pid == opts.me.ppid)
}

// matchProc matches p, whose stat p.st was just read, against the
// keywords, reading its command line where that is needed, and marks it
// excluded when it is a process the probe never counts. It reports false
// when p exited meanwhile.
func matchProc(d *procDir, opts scanOptions, p *proc) bool {
	p.keys, p.excluded, p.confirmed = nil, false, true
	if opts.state != nil {
		boot := opts.state.clock.at(time.Now())
		p.matchedAt = boot / 1e9
		// One caught between fork and exec still has its parent's command
		// line: the next run reads it again.
		p.confirmed = p.st.Start+youngTicks <= uint64(boot/(1e9/clockTicks))
	}
	if !needsCmdline(opts, p) {
		if len(opts.keywords) > 0 {
			p.keys = matchKeys(opts.keywords, p.st.Comm, "")
		}
		p.confirmed = true
		return true
	}
	cmdline, err := d.cmdlineView(p.pid)
	if err != nil {
		return false
	}
	if p.pid == opts.me.ppid {
		// Whether it is excluded depends on its being this run's parent.
		p.confirmed = false
	}
	if opts.me.excludes(procInfo{PID: p.pid, Name: p.st.Comm, Cmdline: cmdline}) {
		p.excluded = true
		return true
	}
	p.keys = matchKeys(opts.keywords, p.st.Comm, cmdline)
	return true
}

// summarize builds the matched groups and the top lists from a scan, and
// reads what only the processes shown need: command lines, users and open
// descriptors.
func summarize(d *procDir, procs []proc, keywords []string) procResult {
	uses := make([]procUse, 0, len(procs))
	for _, p := range procs {
		if p.excluded {
			continue
		}
		uses = append(uses, procUse{
			PID: p.pid, Name: p.st.Comm, Kernel: p.st.Kernel, Keys: p.keys,
			RSSBytes: p.st.RSSPages * uint64(pageSize), CPUPercent: p.cpu, Threads: p.st.Threads,
		})
	}
	return summarizeUses(d, uses, keywords)
}

var pageSize = os.Getpagesize()

// summarizeUses is summarize on the measured figures.
func summarizeUses(d *procDir, uses []procUse, keywords []string) procResult {
	var r procResult
	matches, all := groups(keywords, uses)
	r.Processes = snapshot.Processes{Total: len(uses), Matched: matches, MatchedTotal: len(all)}
	commands := make(map[int32]string)
	command := func(pid int32) string {
		c, ok := commands[pid]
		if !ok {
			if full, err := d.cmdline(pid); err == nil {
				c = shortCommand(full, snapshot.MaxCommand)
			}
			commands[pid] = c
		}
		return c
	}
	for i := range r.Processes.Matched {
		if h := r.Processes.Matched[i].Heaviest; h != nil {
			h.Command = command(h.PID)
		}
	}
	for _, u := range uses {
		if len(u.Keys) == 0 {
			continue
		}
		n, err := d.openFDs(u.PID) // once per process, however many keywords it matched
		for _, k := range u.Keys {
			if err != nil {
				r.Processes.Matched[k].FDsUnreadable++
			} else {
				r.Processes.Matched[k].FDs += n
			}
		}
	}
	r.Top = top(d, uses, command)
	return r
}

// top builds the top lists, with the users and commands of the processes
// in them.
func top(d *procDir, uses []procUse, command func(int32) string) snapshot.Top {
	t := snapshot.Top{ByCPU: []snapshot.Proc{}, ByRSS: []snapshot.Proc{}}
	byCPU := topBy(uses, snapshot.TopN, func(u procUse) float64 { return u.CPUPercent })
	byRSS := topBy(uses, snapshot.TopN, func(u procUse) float64 { return float64(u.RSSBytes) })
	users := make(map[string]string)
	uids := make(map[int32]string)
	for _, i := range slices.Concat(byCPU, byRSS) {
		pid := uses[i].PID
		if _, ok := uids[pid]; ok {
			continue
		}
		uid, err := d.uid(pid)
		if err != nil {
			uid = "?"
		}
		uids[pid] = uid
		users[uid] = ""
	}
	if data, err := os.ReadFile("/etc/passwd"); err == nil {
		parsePasswd(data, users)
	}
	mk := func(i int) snapshot.Proc {
		u := uses[i]
		p := snapshot.Proc{PID: u.PID, Name: u.Name, CPUPercent: round2(u.CPUPercent), RSSBytes: u.RSSBytes, User: users[uids[u.PID]]}
		if p.User == "" {
			p.User = uids[u.PID]
		}
		if !u.Kernel {
			p.Command = command(u.PID)
		}
		return p
	}
	for _, i := range byCPU {
		t.ByCPU = append(t.ByCPU, mk(i))
	}
	for _, i := range byRSS {
		t.ByRSS = append(t.ByRSS, mk(i))
	}
	return t
}
