package main

import (
	"bytes"
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
// processes it shows. See budget_test.go for what it costs.

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
	data, err := d.read(pidPath(pid, "stat"))
	if err != nil {
		return pidStat{}, err
	}
	return parsePidStat(data)
}

// cmdline reads PID/cmdline, its arguments joined by blanks.
func (d *procDir) cmdline(pid int32) (string, error) {
	data, err := d.read(pidPath(pid, "cmdline"))
	if err != nil {
		return "", err
	}
	return cmdlineString(data), nil
}

// cmdlineView is cmdline without a copy: the string is only valid until
// the next read through d.
func (d *procDir) cmdlineView(pid int32) (string, error) {
	data, err := d.read(pidPath(pid, "cmdline"))
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
	data, err := d.read(pidPath(pid, "status"))
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
}

// scanOptions are what a scan needs to know.
type scanOptions struct {
	sample   time.Duration
	keywords []string // distinct, none empty
	me       self
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
	return readProcessesLeaving(ctx, sample, keywords, 0)
}

// readProcessesOnce is readProcesses for a probe that exits right after:
// it leaves the descriptors it opened for exit to close.
func readProcessesOnce(ctx context.Context, sample time.Duration, keywords []string) procResult {
	return readProcessesLeaving(ctx, sample, keywords, 1<<20)
}

// readProcessesLeaving is readProcesses leaving at most leave descriptors
// open.
func readProcessesLeaving(ctx context.Context, sample time.Duration, keywords []string, leave int) procResult {
	d, err := openProcDir()
	if err != nil {
		return procResult{Processes: snapshot.Processes{Matched: []snapshot.Match{}, Error: err.Error()}, Top: snapshot.Top{Error: err.Error()}}
	}
	defer d.close()
	d.leave = leave
	opts := scanOptions{sample: sample, keywords: distinct(keywords), me: currentSelf()}
	procs, windowErr, err := scan(ctx, d, opts)
	if err != nil {
		return procResult{Processes: snapshot.Processes{Matched: []snapshot.Match{}, Error: err.Error()}, Top: snapshot.Top{Error: err.Error()}}
	}
	r := summarize(d, procs, opts.keywords)
	if windowErr != nil {
		msg := fmt.Sprintf("sample process cpu times: %v", windowErr)
		r.Processes.Error, r.Top.Error = msg, msg
	}
	return r
}

// currentSelf describes the running probe.
func currentSelf() self {
	return self{pid: int32(os.Getpid()), ppid: int32(os.Getppid()), argv0: os.Args[0]}
}

// procResult is the process table's two sections.
type procResult struct {
	Processes snapshot.Processes
	Top       snapshot.Top
}

// scan reads every process once, leaves out the probe and the processes it
// never counts, and, with a sample window, reads each process's CPU time
// again at its end: a sample after the last process was first read, so
// that each is measured over at least the window. A window cut short by ctx leaves the CPU unmeasured and
// returns why as windowErr. A process that exits before it is read is
// skipped; one that exits during the window keeps its memory but adds no
// CPU.
func scan(ctx context.Context, d *procDir, opts scanOptions) (procs []proc, windowErr, err error) {
	begin := time.Now()
	pids, err := d.pids(nil)
	if err != nil {
		return nil, nil, err
	}
	var uptime float64
	if opts.sample == 0 {
		if uptime, err = readUptime(&d.buf); err != nil {
			return nil, nil, fmt.Errorf("read processes: %w", err)
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
	procs = make([]proc, 0, len(pids))
	releaseAll := func() {
		for i := range procs {
			if procs[i].fd >= 0 {
				d.release(procs[i].fd)
				procs[i].fd = -1
			}
		}
	}
	for i, pid := range pids {
		if i%64 == 0 && ctx.Err() != nil {
			releaseAll()
			return nil, nil, fmt.Errorf("read processes: %w", context.Cause(ctx))
		}
		p := proc{pid: pid, fd: -1}
		fd, err := openAt(d.fd, pidPath(pid, "stat"))
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
		if len(procs) < keep {
			p.fd = fd
		} else {
			d.release(fd)
		}
		if pid != opts.me.pid && !p.st.Kernel && (len(opts.keywords) > 0 || pid == opts.me.ppid) {
			cmdline, err := d.cmdlineView(pid)
			if err != nil {
				if p.fd >= 0 {
					d.release(p.fd)
				}
				continue // exited
			}
			if opts.me.excludes(procInfo{PID: pid, Name: p.st.Comm, Cmdline: cmdline}) {
				if p.fd >= 0 {
					d.release(p.fd)
				}
				continue
			}
			p.keys = matchKeys(opts.keywords, p.st.Comm, cmdline)
		} else if pid == opts.me.pid {
			if p.fd >= 0 {
				d.release(p.fd)
			}
			continue
		} else if len(opts.keywords) > 0 {
			p.keys = matchKeys(opts.keywords, p.st.Comm, "")
		}
		if opts.sample == 0 {
			life := time.Duration((uptime - float64(p.st.Start)/clockTicks) * float64(time.Second))
			p.cpu = procPercent(0, p.st.Ticks, life)
		}
		procs = append(procs, p)
	}
	if opts.sample == 0 {
		return procs, nil, nil
	}

	// Each process is measured over at least the sample window, even the
	// last one read when reading them all took long (a starved probe).
	end := begin.Add(opts.sample)
	if n := len(procs); n > 0 {
		end = procs[n-1].at.Add(opts.sample)
	}
	if err := sleepUntil(ctx, end); err != nil {
		releaseAll()
		return procs, err, nil
	}
	for i := range procs {
		p := &procs[i]
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
			data, err = d.read(pidPath(p.pid, "stat"))
		}
		var st pidStat
		if err == nil {
			st, err = parsePidStat(data)
		}
		if err != nil || st.Start != p.st.Start {
			p.gone = true // exited, or its pid was reused
			continue
		}
		p.cpu = procPercent(p.st.Ticks, st.Ticks, time.Since(p.at))
		p.st = st
	}
	return procs, nil, nil
}

// summarize builds the matched groups and the top lists from a scan, and
// reads what only the processes shown need: command lines, users and open
// descriptors.
func summarize(d *procDir, procs []proc, keywords []string) procResult {
	uses := make([]procUse, len(procs))
	for i, p := range procs {
		uses[i] = procUse{
			PID: p.pid, Name: p.st.Comm, Kernel: p.st.Kernel, Keys: p.keys,
			RSSBytes: p.st.RSSPages * uint64(pageSize), CPUPercent: p.cpu, Threads: p.st.Threads,
		}
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
