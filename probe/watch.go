package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// Watch mode (probe -watch) lives for a whole SSH session: it samples the
// system-wide figures every resolution and, for each line it reads on
// stdin, prints one snapshot of the interval since the previous line. See
// the package doc for the protocol.

// Exit statuses of watch mode besides 0 (stdin closed, or a signal) and 1
// (stdout broken).
const exitSilence = 3 // no line from the collector for -silence

// runWatch runs watch mode until stdin ends, stdout breaks, ctx ends or
// the collector falls silent for opts.silence. It returns the exit status.
func runWatch(ctx context.Context, opts options, stdin io.Reader, stdout, stderr io.Writer) int {
	w, err := newWatcher(opts, time.Now)
	if err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 1
	}
	defer w.close()
	lines := readLines(stdin)
	ticker := time.NewTicker(opts.resolution)
	defer ticker.Stop()
	silence := time.NewTimer(opts.silence)
	defer silence.Stop()
	enc := json.NewEncoder(stdout)
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-ticker.C:
			w.tick()
		case _, ok := <-lines:
			if !ok {
				return 0 // stdin closed: the session is gone
			}
			silence.Reset(opts.silence)
			snap := w.emit(ctx)
			if err := enc.Encode(snap); err != nil {
				fmt.Fprintf(stderr, "probe: write snapshot: %v\n", err)
				return 1
			}
		case <-silence.C:
			fmt.Fprintf(stderr, "probe: no line from the collector for %v; exiting\n", opts.silence)
			return exitSilence
		}
	}
}

// maxLine is the longest line read from the collector; a longer one still
// counts as one line, its rest skipped.
const maxLine = 4 << 10

// readLines sends a value for each line read from r and closes the channel
// when r ends or fails. The content of a line is ignored.
func readLines(r io.Reader) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		defer close(c)
		br := bufio.NewReaderSize(r, maxLine)
		for {
			_, err := br.ReadSlice('\n')
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return // a last line without a newline is not a request
			}
			c <- struct{}{}
		}
	}()
	return c
}

// watchProc is what watch mode keeps of one process between ticks, so that
// a tick reads only the processes that are new.
type watchProc struct {
	comm      string
	kernel    bool
	start     uint64 // start time, clock ticks after boot: tells a reused pid
	keys      []int  // the keywords it matches
	excluded  bool   // the probe, or a process it never counts
	confirmed bool   // its command line was read again on the tick after it appeared
	seen      uint64 // the tick that last listed it
	baseTicks uint64 // CPU time at the start of the interval
	hasBase   bool
}

// accum gathers one figure over the samples of an interval.
type accum struct {
	n     int
	sum   float64
	max   float64
	maxAt time.Time
}

// add adds a sample taken at at and reports whether it is a new maximum.
func (a *accum) add(v float64, at time.Time) bool {
	newMax := a.n == 0 || v > a.max
	if newMax {
		a.max, a.maxAt = v, at
	}
	a.n++
	a.sum += v
	return newMax
}

// stat returns the summary, or nil when there was no sample.
func (a *accum) stat() *snapshot.Stat {
	if a.n == 0 {
		return nil
	}
	return &snapshot.Stat{Max: round2(a.max), Mean: round2(a.sum / float64(a.n)), MaxAt: a.maxAt}
}

// interval is what the ticks of one interval gathered.
type interval struct {
	samples                  int
	cpu, memory, load1, disk accum
	psi                      [3]accum
	network                  accum
	keywords                 []accum
	atCPUMax, atMemoryMax    *snapshot.MatchedAt
	errs                     map[string]string // source → first error
	counts                   []int             // scratch: counts per keyword at a tick
}

func newInterval(keywords int) interval {
	return interval{keywords: make([]accum, keywords), errs: map[string]string{}, counts: make([]int, keywords)}
}

func (iv *interval) fail(source string, err error) {
	if _, ok := iv.errs[source]; !ok {
		iv.errs[source] = err.Error()
	}
}

// watcher is the state of watch mode.
type watcher struct {
	// mu guards everything below against an emission's reader that
	// collect gave up on and that still runs: a tick that finds it held
	// is skipped rather than blocked.
	mu        sync.Mutex
	opts      options
	keywords  []string
	now       func() time.Time
	me        self
	d         *procDir
	buf       []byte
	pids      []int32
	procs     map[int32]*watchProc
	tickNo    uint64
	forks     uint64 // the forks counter at the last listing
	sinceList int    // ticks since the last listing

	start      time.Time // of the interval
	startCount counters  // the counters at the start of the interval
	last       counters  // the counters at the last tick
	iv         interval
}

func newWatcher(opts options, now func() time.Time) (*watcher, error) {
	d, err := openProcDir()
	if err != nil {
		return nil, err
	}
	w := &watcher{
		opts: opts, keywords: distinct(opts.keywords), now: now, me: currentSelf(), d: d,
		buf: make([]byte, 8192), procs: make(map[int32]*watchProc),
	}
	w.iv = newInterval(len(w.keywords))
	w.startCount = readCounters(&w.buf, true)
	w.startCount.At = now()
	w.last = w.startCount
	w.start = w.startCount.At
	// The CPU times each process starts the first interval with.
	w.refresh(nil, w.startCount.Stat.Forks, uptimeTicks(w.startCount), true, true)
	return w, nil
}

func (w *watcher) close() { w.d.close() }

// fullListEvery is how many ticks may pass without a listing of /proc.
const fullListEvery = 60

// youngTicks is the age below which a process's command line is read
// again on the next tick: one caught between fork and exec still has its
// parent's command line. In clock ticks: 2 s.
const youngTicks = 2 * clockTicks

// refresh brings the process table up to date, adds each keyword's count to
// counts when counts is not nil, and returns the matched total.
//
// When no process was created since the last refresh (the forks counter
// of /proc/stat, forks, is unchanged) and full is false, there is nothing
// new to read: it only checks that the matched processes still exist, one
// kill(pid, 0) each. Otherwise it lists /proc, reads each new process (its
// stat, and its command line when there are keywords) and, once more, the
// command line of the young ones seen before, and forgets those gone. A
// pid reused between two listings passes for the process it replaced;
// pids wrap after pid_max (4,194,304 on 64-bit hosts) processes.
//
// When setBase, a new process's CPU time as read is its base for the
// interval: it ran before the interval started. Otherwise a new process is
// new in the interval, and all its CPU time falls in it.
func (w *watcher) refresh(counts []int, forks, uptimeTicks uint64, full, setBase bool) (matchedTotal int, err error) {
	w.tickNo++
	if !full && forks != 0 && forks == w.forks && w.sinceList < fullListEvery {
		w.sinceList++
		for pid, p := range w.procs {
			if p.excluded || len(p.keys) == 0 {
				continue
			}
			if err := syscall.Kill(int(pid), 0); err == syscall.ESRCH {
				delete(w.procs, pid)
				continue
			}
			matchedTotal++
			if counts != nil {
				for _, k := range p.keys {
					counts[k]++
				}
			}
		}
		return matchedTotal, nil
	}
	w.forks, w.sinceList = forks, 0
	w.pids, err = w.d.pids(w.pids)
	if err != nil {
		return 0, err
	}
	for _, pid := range w.pids {
		p, ok := w.procs[pid]
		if !ok {
			st, err := w.d.stat(pid)
			if err != nil {
				continue // exited
			}
			p = &watchProc{comm: st.Comm, kernel: st.Kernel, start: st.Start}
			if setBase {
				p.baseTicks, p.hasBase = st.Ticks, true
			}
			p.confirmed = uptimeTicks == 0 || st.Start+youngTicks < uptimeTicks
			w.match(pid, p)
			w.procs[pid] = p
		} else if !p.confirmed {
			w.match(pid, p)
			p.confirmed = true
		}
		p.seen = w.tickNo
		if p.excluded {
			continue
		}
		if len(p.keys) > 0 {
			matchedTotal++
		}
		if counts != nil {
			for _, k := range p.keys {
				counts[k]++
			}
		}
	}
	for pid, p := range w.procs {
		if p.seen != w.tickNo {
			delete(w.procs, pid)
		}
	}
	return matchedTotal, nil
}

// uptimeTicks returns the clock ticks since boot at c, from its boot time,
// or 0 when c has none.
func uptimeTicks(c counters) uint64 {
	if c.StatErr != nil || c.Stat.BootTime == 0 {
		return 0
	}
	up := c.At.Sub(time.Unix(int64(c.Stat.BootTime), 0)).Seconds()
	if up <= 0 {
		return 0
	}
	return uint64(up * clockTicks)
}

// match reads the command line of pid and matches it.
func (w *watcher) match(pid int32, p *watchProc) {
	p.keys, p.excluded = nil, pid == w.me.pid
	if p.excluded || p.kernel {
		if !p.excluded && len(w.keywords) > 0 {
			p.keys = matchKeys(w.keywords, p.comm, "")
		}
		return
	}
	if len(w.keywords) == 0 && pid != w.me.ppid {
		return
	}
	cmdline, err := w.d.cmdlineView(pid)
	if err != nil {
		return // exited; the next listing drops it
	}
	if w.me.excludes(procInfo{PID: pid, Name: p.comm, Cmdline: cmdline}) {
		p.excluded = true
		return
	}
	p.keys = matchKeys(w.keywords, p.comm, cmdline)
}

// tick takes one sample.
func (w *watcher) tick() {
	if !w.mu.TryLock() {
		return // an emission's reader is stuck; skip this sample
	}
	defer w.mu.Unlock()
	w.sample()
}

// sample takes one sample of every figure of Interval.
func (w *watcher) sample() {
	c := readCounters(&w.buf, false)
	at := c.At.Round(time.Millisecond)
	iv := &w.iv
	iv.samples++
	seconds := c.At.Sub(w.last.At).Seconds()

	clear(iv.counts)
	total, errProcs := w.refresh(iv.counts, c.Stat.Forks, uptimeTicks(c), false, false)
	if errProcs != nil {
		iv.fail("processes", errProcs)
	}
	matchedAt := func() *snapshot.MatchedAt {
		m := &snapshot.MatchedAt{Keywords: make([]snapshot.KeywordCount, len(w.keywords)), MatchedTotal: total}
		for i, k := range w.keywords {
			m.Keywords[i] = snapshot.KeywordCount{Keyword: k, Count: iv.counts[i]}
		}
		return m
	}
	if errProcs == nil {
		for i := range w.keywords {
			iv.keywords[i].add(float64(iv.counts[i]), at)
		}
	}

	if err := errors.Join(w.last.StatErr, c.StatErr); err != nil {
		iv.fail("cpu", err)
	} else if iv.cpu.add(round2(busyPercent(w.last.Stat.CPU, c.Stat.CPU)), at) && errProcs == nil {
		iv.atCPUMax = matchedAt()
	}
	if m, err := readMeminfo(&w.buf); err != nil {
		iv.fail("memory", err)
	} else if iv.memory.add(m.memory().UsedPercent, at) && errProcs == nil {
		iv.atMemoryMax = matchedAt()
	}
	if l1, _, _, err := readLoad(&w.buf); err != nil {
		iv.fail("load", err)
	} else {
		iv.load1.add(l1, at)
	}
	if _, used, free, _, _, err := statfs("/"); err != nil {
		iv.fail("disk", fmt.Errorf("read disk usage of /: %w", err))
	} else {
		iv.disk.add(percentOf(used, used+free), at)
	}
	for i, res := range psiResources {
		if err := errors.Join(w.last.PSIErr[i], c.PSIErr[i]); err != nil {
			iv.fail("pressure "+res, c.PSIErr[i])
			continue
		}
		iv.psi[i].add(stallPercent(w.last.PSI[i].Some.Total, c.PSI[i].Some.Total, seconds), at)
	}
	if err := errors.Join(w.last.NetErr, c.NetErr); err != nil {
		iv.fail("network", err)
	} else {
		n := deriveNetwork(w.last, c, seconds)
		iv.network.add(round2(n.RxBytesPerSecond+n.TxBytesPerSecond), at)
	}
	w.last = c
}

// readAll reads the stat file of every process known, and returns their
// figures over the interval since the bases were set, setting new bases.
func (w *watcher) readAll() []procUse {
	now := time.Now()
	seconds := now.Sub(w.start).Seconds()
	uses := make([]procUse, 0, len(w.procs))
	for pid, p := range w.procs {
		st, err := w.d.stat(pid)
		if err != nil || st.Start != p.start {
			delete(w.procs, pid) // exited, or the pid was reused
			continue
		}
		u := procUse{PID: pid, Name: p.comm, Kernel: p.kernel, RSSBytes: st.RSSPages * uint64(pageSize), Threads: st.Threads}
		// A process new in the interval spent all its CPU time in it.
		if seconds > 0 {
			u.CPUPercent = procPercent(p.baseTicks, st.Ticks, time.Duration(seconds*float64(time.Second)))
		}
		p.baseTicks, p.hasBase = st.Ticks, true
		if !p.excluded {
			u.Keys = p.keys
			uses = append(uses, u)
		}
	}
	slices.SortFunc(uses, func(a, b procUse) int { return int(a.PID) - int(b.PID) })
	return uses
}

// emit builds the snapshot of the interval that ends now, and starts the
// next one.
func (w *watcher) emit(ctx context.Context) snapshot.Snapshot {
	var endMu sync.Mutex // the system reader may outlive collect
	var endCount counters
	var haveEnd bool
	startCount := w.startCount
	r := system
	r.system = func(ctx context.Context, _ time.Duration) systemResult {
		// The system-wide counters over the whole interval.
		var buf []byte
		c := readCounters(&buf, true)
		res := systemFrom(startCount, c, c.At.Sub(startCount.At).Seconds(), &buf)
		endMu.Lock()
		endCount, haveEnd = c, true
		endMu.Unlock()
		return res
	}
	r.processes = func(ctx context.Context, _ time.Duration, _ []string) procResult {
		if !w.mu.TryLock() {
			err := "read processes: the previous read of the process table has not finished"
			return procResult{Processes: snapshot.Processes{Error: err}, Top: snapshot.Top{Error: err}}
		}
		defer w.mu.Unlock()
		var buf []byte
		c := readCounters(&buf, false)
		if _, err := w.refresh(nil, c.Stat.Forks, uptimeTicks(c), true, false); err != nil {
			return procResult{Processes: snapshot.Processes{Error: err.Error()}, Top: snapshot.Top{Error: err.Error()}}
		}
		uses := w.readAll()
		return summarizeUses(w.d, uses, w.keywords)
	}
	end := w.now()
	ivl := w.intervalResult(end)
	s := collect(ctx, r, options{timeout: w.opts.timeout, keywords: w.keywords}, w.now)
	s.SampleSeconds = round2(end.Sub(w.start).Seconds())
	s.Interval = ivl

	endMu.Lock()
	if haveEnd {
		w.startCount = endCount
	}
	endMu.Unlock()
	w.start = end
	w.iv = newInterval(len(w.keywords))
	return s
}

// intervalResult summarizes the interval that ends at end.
func (w *watcher) intervalResult(end time.Time) *snapshot.Interval {
	iv := &w.iv
	out := &snapshot.Interval{
		Start: w.start.Round(time.Millisecond), End: end.Round(time.Millisecond),
		ResolutionSeconds: round2(w.opts.resolution.Seconds()), Samples: iv.samples,
		CPU: iv.cpu.stat(), Memory: iv.memory.stat(), Load1: iv.load1.stat(), Disk: iv.disk.stat(),
		PressureCPU: iv.psi[0].stat(), PressureMemory: iv.psi[1].stat(), PressureIO: iv.psi[2].stat(),
		NetworkBytesPerSecond: iv.network.stat(),
		Keywords:              make([]snapshot.KeywordStat, 0, len(w.keywords)),
		MatchedAtCPUMax:       iv.atCPUMax, MatchedAtMemoryMax: iv.atMemoryMax,
	}
	for i, k := range w.keywords {
		ks := snapshot.KeywordStat{Keyword: k}
		if st := iv.keywords[i].stat(); st != nil {
			ks.Stat = *st
		}
		out.Keywords = append(out.Keywords, ks)
	}
	if iv.samples == 0 {
		out.Error = "no samples: the interval was shorter than the resolution"
	}
	var msgs []string
	for source, e := range iv.errs {
		msgs = append(msgs, source+": "+e)
	}
	sort.Strings(msgs)
	out.Error = joinErrors(append([]string{out.Error}, msgs...)...)
	return out
}

// systemFrom is readSystem's result from two readings already taken.
func systemFrom(a, b counters, seconds float64, buf *[]byte) systemResult {
	var r systemResult
	r.CPU.LogicalCount = b.Stat.LogicalCount
	if r.CPU.Count = countCores(buf); r.CPU.Count == 0 {
		r.CPU.Count = r.CPU.LogicalCount
	}
	var errLoad error
	r.CPU.Load1, r.CPU.Load5, r.CPU.Load15, errLoad = readLoad(buf)
	w := deriveWindow(a, b, seconds)
	r.RunQueue, r.Pressure, r.Network = w.RunQueue, w.Pressure, w.Network
	r.CPU.Percent, r.SwapIn, r.SwapOut = w.CPUPercent, w.SwapIn, w.SwapOut
	r.CPU.Error = errorString(w.CPUErr, errLoad)
	if w.SwapErr != nil {
		r.SwapErr = w.SwapErr.Error()
	}
	return r
}
