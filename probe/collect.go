package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/host"
	"github.com/shirou/gopsutil/v3/load"
	"github.com/shirou/gopsutil/v3/mem"
	"github.com/shirou/gopsutil/v3/process"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// readers read the sections of a snapshot, each on its own; tests replace
// them. A reader reports its failures in the section's Error and honours
// ctx where the system lets it.
type readers struct {
	host      func(ctx context.Context) hostInfo
	cpu       func(ctx context.Context, sample time.Duration) snapshot.CPU
	memory    func(ctx context.Context) snapshot.Memory
	disk      func(ctx context.Context) snapshot.Disk
	processes func(ctx context.Context, sample time.Duration, keywords []string) snapshot.Processes
}

// hostInfo is the part of a snapshot outside any section.
type hostInfo struct {
	Hostname      string
	UptimeSeconds uint64
	Error         string
}

// system reads the host the probe runs on.
var system = readers{
	host:      readHost,
	cpu:       readCPU,
	memory:    readMemory,
	disk:      readDisk,
	processes: readProcesses,
}

// collect reads all sections at once and assembles the snapshot, stamped
// with now() when it is done. It returns within opts.timeout: a section not
// read by then is left empty with an error saying so, since a read blocked
// in the kernel cannot be cancelled (its goroutine is abandoned).
//
// The readers' context ends readGrace(opts.timeout) before the timeout, so
// that a reader cut short (say, in its sample window) has time to return
// what it read before collect stops waiting for it.
func collect(ctx context.Context, r readers, opts options, now func() time.Time) snapshot.Snapshot {
	cause := fmt.Errorf("timed out after %v", opts.timeout)
	deadline := time.Now().Add(opts.timeout)
	ctx, cancel := context.WithDeadlineCause(ctx, deadline, cause)
	defer cancel()
	readCtx, cancelRead := context.WithDeadlineCause(ctx, deadline.Add(-readGrace(opts.timeout)), cause)
	defer cancelRead()

	hostC := start(readCtx, r.host)
	cpuC := start(readCtx, func(ctx context.Context) snapshot.CPU { return r.cpu(ctx, opts.sample) })
	memC := start(readCtx, r.memory)
	diskC := start(readCtx, r.disk)
	procC := start(readCtx, func(ctx context.Context) snapshot.Processes {
		return r.processes(ctx, opts.sample, opts.keywords)
	})

	s := snapshot.Snapshot{Version: snapshot.Version}
	var ok bool
	var h hostInfo
	if h, ok = await(ctx, hostC); !ok {
		h.Error = unfinished(ctx)
	}
	s.Hostname, s.UptimeSeconds, s.Error = h.Hostname, h.UptimeSeconds, h.Error
	if s.CPU, ok = await(ctx, cpuC); !ok {
		s.CPU.Error = unfinished(ctx)
	}
	if s.Memory, ok = await(ctx, memC); !ok {
		s.Memory.Error = unfinished(ctx)
	}
	if s.Disk, ok = await(ctx, diskC); !ok {
		s.Disk = snapshot.Disk{Path: "/", Error: unfinished(ctx)}
	}
	if s.Processes, ok = await(ctx, procC); !ok {
		s.Processes.Error = unfinished(ctx)
	}
	if s.Processes.Matched == nil {
		s.Processes.Matched = []snapshot.Match{}
	}
	s.Time = now()
	return s
}

// readGrace is how long before the timeout the readers are stopped, so that
// what they read still arrives: 100ms, or a tenth of a shorter timeout.
func readGrace(timeout time.Duration) time.Duration {
	return min(100*time.Millisecond, timeout/10)
}

// start runs read in a goroutine and returns the channel its result will
// arrive on.
func start[T any](ctx context.Context, read func(context.Context) T) <-chan T {
	c := make(chan T, 1)
	go func() { c <- read(ctx) }()
	return c
}

// await returns the value from c, or false once ctx is done. A value that
// has already arrived wins over a done ctx.
func await[T any](ctx context.Context, c <-chan T) (T, bool) {
	select {
	case v := <-c:
		return v, true
	default:
	}
	select {
	case v := <-c:
		return v, true
	case <-ctx.Done():
		var zero T
		return zero, false
	}
}

// unfinished is the error of a section that ctx stopped before it was read:
// "timed out after 20s", the cause collect gives its deadline, or
// "interrupted: context canceled".
func unfinished(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return context.Cause(ctx).Error()
	}
	return fmt.Sprintf("interrupted: %v", context.Cause(ctx))
}

// errorString joins the non-nil errors with "; ", or returns "" when there
// are none.
func errorString(errs ...error) string {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	return strings.Join(msgs, "; ")
}

// sleepUntil waits until t or until ctx is done, and then returns the
// cause, such as "timed out after 20s".
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return context.Cause(ctx)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func readHost(ctx context.Context) hostInfo {
	var h hostInfo
	var errHost, errUp error
	h.Hostname, errHost = os.Hostname()
	if errHost != nil {
		errHost = fmt.Errorf("read hostname: %w", errHost)
	}
	h.UptimeSeconds, errUp = host.UptimeWithContext(ctx)
	if errUp != nil {
		errUp = fmt.Errorf("read uptime: %w", errUp)
	}
	h.Error = errorString(errHost, errUp)
	return h
}

// readCPU reads the CPU times at the start and the end of the sample
// window, and the counts and load averages while it runs.
func readCPU(ctx context.Context, sample time.Duration) snapshot.CPU {
	var c snapshot.CPU
	begin := time.Now()
	t1, errTimes := totalTimes(ctx)

	var errCount, errLogical, errLoad error
	if c.Count, errCount = cpu.CountsWithContext(ctx, false); errCount != nil {
		errCount = fmt.Errorf("count physical cores: %w", errCount)
	}
	if c.LogicalCount, errLogical = cpu.CountsWithContext(ctx, true); errLogical != nil {
		errLogical = fmt.Errorf("count logical cpus: %w", errLogical)
	}
	if avg, err := load.AvgWithContext(ctx); err != nil {
		errLoad = fmt.Errorf("read load average: %w", err)
	} else {
		c.Load1, c.Load5, c.Load15 = avg.Load1, avg.Load5, avg.Load15
	}

	switch {
	case errTimes != nil:
	case sample == 0:
		c.Percent = round2(busyPercent(cpu.TimesStat{}, t1))
	default:
		if err := sleepUntil(ctx, begin.Add(sample)); err != nil {
			errTimes = fmt.Errorf("sample cpu times: %w", err)
			break
		}
		t2, err := totalTimes(ctx)
		if err != nil {
			errTimes = err
			break
		}
		c.Percent = round2(busyPercent(t1, t2))
	}
	c.Error = errorString(errTimes, errCount, errLogical, errLoad)
	return c
}

// totalTimes reads the cumulative times of all CPUs together.
func totalTimes(ctx context.Context) (cpu.TimesStat, error) {
	ts, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return cpu.TimesStat{}, fmt.Errorf("read cpu times: %w", err)
	}
	if len(ts) != 1 {
		return cpu.TimesStat{}, fmt.Errorf("read cpu times: got %d totals, want 1", len(ts))
	}
	return ts[0], nil
}

func readMemory(ctx context.Context) snapshot.Memory {
	v, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return snapshot.Memory{Error: fmt.Sprintf("read memory: %v", err)}
	}
	return snapshot.Memory{
		Total:       v.Total,
		Used:        v.Used,
		Free:        v.Free,
		Available:   v.Available,
		Buffers:     v.Buffers,
		Cached:      v.Cached,
		UsedPercent: round2(v.UsedPercent),
	}
}

// readDisk reads the usage of "/" only: enumerating mounts could hang on a
// dead network file system.
func readDisk(ctx context.Context) snapshot.Disk {
	const path = "/"
	u, err := disk.UsageWithContext(ctx, path)
	if err != nil {
		return snapshot.Disk{Path: path, Error: fmt.Sprintf("read disk usage of %s: %v", path, err)}
	}
	return snapshot.Disk{
		Path:        path,
		Total:       u.Total,
		Used:        u.Used,
		Free:        u.Free,
		UsedPercent: round2(u.UsedPercent),
	}
}

// readProcesses lists the processes, matches them against keywords, and
// measures the matched ones over a sample window that starts once they are
// listed.
func readProcesses(ctx context.Context, sample time.Duration, keywords []string) snapshot.Processes {
	me := self{pid: int32(os.Getpid()), ppid: int32(os.Getppid()), argv0: os.Args[0]}
	procs, err := listProcesses(ctx, me)
	if err != nil {
		return snapshot.Processes{Matched: []snapshot.Match{}, Error: err.Error()}
	}
	matches, all := match(procs, keywords)
	p := snapshot.Processes{Total: len(procs), Matched: matches, MatchedTotal: len(all)}
	used, err := measure(ctx, all, sample)
	if err != nil {
		p.Error = err.Error()
	}
	addUsage(p.Matched, used)
	return p
}

// listProcesses reads the name and command line of every process but the
// probe. A process that exits before it is read is skipped.
func listProcesses(ctx context.Context, me self) ([]procInfo, error) {
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	procs := make([]procInfo, 0, len(pids))
	for _, pid := range pids {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read processes: %w", context.Cause(ctx))
		}
		p := &process.Process{Pid: pid}
		name, err := p.NameWithContext(ctx)
		if err != nil {
			continue // exited since listed
		}
		cmdline, err := p.CmdlineWithContext(ctx)
		if err != nil {
			continue
		}
		info := procInfo{PID: pid, Name: name, Cmdline: cmdline}
		if me.excludes(info) {
			continue
		}
		procs = append(procs, info)
	}
	return procs, nil
}

// measure reads the resident memory and CPU use of pids. CPU times are read
// at the start and the end of the sample window; a process that exits
// meanwhile keeps its memory but adds no CPU. With sample 0 the CPU use is
// each process's average since it started. On error, measure returns what
// it has.
func measure(ctx context.Context, pids []int32, sample time.Duration) (map[int32]usage, error) {
	type first struct {
		proc  *process.Process
		times cpu.TimesStat
		at    time.Time
	}
	used := make(map[int32]usage, len(pids))
	firsts := make([]first, 0, len(pids))
	begin := time.Now()
	for _, pid := range pids {
		p := &process.Process{Pid: pid}
		t, err := p.TimesWithContext(ctx)
		if err != nil {
			continue // exited
		}
		at := time.Now()
		var u usage
		if m, err := p.MemoryInfoWithContext(ctx); err == nil {
			u.RSSBytes = m.RSS
		}
		if sample == 0 {
			if created, err := p.CreateTimeWithContext(ctx); err == nil {
				u.CPUPercent = procPercent(cpu.TimesStat{}, *t, at.Sub(time.UnixMilli(created)))
			}
		}
		used[pid] = u
		firsts = append(firsts, first{proc: p, times: *t, at: at})
	}
	if sample == 0 {
		return used, nil
	}

	if err := sleepUntil(ctx, begin.Add(sample)); err != nil {
		return used, fmt.Errorf("sample process cpu times: %w", err)
	}
	for _, f := range firsts {
		t, err := f.proc.TimesWithContext(ctx)
		if err != nil {
			continue // exited during the window
		}
		u := used[f.proc.Pid]
		u.CPUPercent = procPercent(f.times, *t, time.Since(f.at))
		used[f.proc.Pid] = u
	}
	return used, nil
}
