package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// readers read the sections of a snapshot, each on its own; tests replace
// them, and watch mode replaces system and processes with what it sampled.
// A reader reports its failures in its sections' Error and honours ctx
// where the system lets it.
type readers struct {
	host        func(ctx context.Context) hostInfo
	system      func(ctx context.Context, sample time.Duration) systemResult
	memory      func(ctx context.Context) memoryResult
	disk        func(ctx context.Context) snapshot.Disk
	processes   func(ctx context.Context, sample time.Duration, keywords []string) procResult
	sockets     func(ctx context.Context) snapshot.Sockets
	fds         func(ctx context.Context) snapshot.FileDescriptors
	filesystems func(ctx context.Context) snapshot.Filesystems
}

// hostInfo is the part of a snapshot outside any section.
type hostInfo struct {
	Hostname      string
	UptimeSeconds uint64
	Error         string
}

// systemResult is what the system-wide counters give over the sample
// window.
type systemResult struct {
	CPU      snapshot.CPU
	RunQueue snapshot.RunQueue
	SwapIn   float64 // pages per second
	SwapOut  float64
	SwapErr  string
	Pressure snapshot.Pressure
	Network  snapshot.Network
}

// memoryResult is what /proc/meminfo gives: memory, and swap space.
type memoryResult struct {
	Memory snapshot.Memory
	Swap   snapshot.Swap // without the paging rates
}

// system reads the host the probe runs on.
var system = readers{
	host:        readHost,
	system:      readSystem,
	memory:      readMemory,
	disk:        readDisk,
	processes:   readProcessesOnce,
	sockets:     readSockets,
	fds:         readFileDescriptors,
	filesystems: readFilesystems,
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
	sysC := start(readCtx, func(ctx context.Context) systemResult { return r.system(ctx, opts.sample) })
	memC := start(readCtx, r.memory)
	diskC := start(readCtx, r.disk)
	procC := start(readCtx, func(ctx context.Context) procResult {
		return r.processes(ctx, opts.sample, opts.keywords)
	})
	sockC := start(readCtx, r.sockets)
	fdsC := start(readCtx, r.fds)
	fsC := start(readCtx, r.filesystems)

	s := snapshot.Snapshot{Version: snapshot.Version, SampleSeconds: round2(opts.sample.Seconds())}
	var ok bool
	var h hostInfo
	if h, ok = await(ctx, hostC); !ok {
		h.Error = unfinished(ctx)
	}
	s.Hostname, s.UptimeSeconds, s.Error = h.Hostname, h.UptimeSeconds, h.Error

	sys, ok := await(ctx, sysC)
	if !ok {
		e := unfinished(ctx)
		sys = systemResult{
			CPU: snapshot.CPU{Error: e}, RunQueue: snapshot.RunQueue{Error: e}, SwapErr: e,
			Pressure: snapshot.Pressure{Error: e}, Network: snapshot.Network{Interfaces: []snapshot.Interface{}, Error: e},
		}
	}
	s.CPU, s.RunQueue, s.Pressure, s.Network = sys.CPU, &sys.RunQueue, &sys.Pressure, &sys.Network

	mem, ok := await(ctx, memC)
	if !ok {
		e := unfinished(ctx)
		mem = memoryResult{Memory: snapshot.Memory{Error: e}, Swap: snapshot.Swap{Error: e}}
	}
	s.Memory = mem.Memory
	swap := mem.Swap
	swap.PagesInPerSecond, swap.PagesOutPerSecond = sys.SwapIn, sys.SwapOut
	swap.Error = joinErrors(swap.Error, sys.SwapErr)
	s.Swap = &swap

	if s.Disk, ok = await(ctx, diskC); !ok {
		s.Disk = snapshot.Disk{Path: "/", Error: unfinished(ctx)}
	}
	procs, ok := await(ctx, procC)
	if !ok {
		e := unfinished(ctx)
		procs = procResult{Processes: snapshot.Processes{Error: e}, Top: snapshot.Top{Error: e}}
	}
	if procs.Processes.Matched == nil {
		procs.Processes.Matched = []snapshot.Match{}
	}
	if procs.Top.ByCPU == nil {
		procs.Top.ByCPU = []snapshot.Proc{}
	}
	if procs.Top.ByRSS == nil {
		procs.Top.ByRSS = []snapshot.Proc{}
	}
	s.Processes, s.Top = procs.Processes, &procs.Top
	s.ProcessCPUSeconds = procs.CPUSeconds

	sock, ok := await(ctx, sockC)
	if !ok {
		sock = snapshot.Sockets{Error: unfinished(ctx)}
	}
	s.Sockets = &sock
	fds, ok := await(ctx, fdsC)
	if !ok {
		fds = snapshot.FileDescriptors{Error: unfinished(ctx)}
	}
	s.FileDescriptors = &fds
	fs, ok := await(ctx, fsC)
	if !ok {
		fs = snapshot.Filesystems{Error: unfinished(ctx)}
	}
	if fs.Mounts == nil {
		fs.Mounts = []snapshot.Filesystem{}
	}
	s.Filesystems = &fs
	s.Time = now()
	return s
}

// joinErrors joins the non-empty messages with "; ".
func joinErrors(msgs ...string) string {
	var out []string
	for _, m := range msgs {
		if m != "" {
			out = append(out, m)
		}
	}
	return strings.Join(out, "; ")
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
	var buf []byte
	up, errUp := readUptime(&buf)
	h.UptimeSeconds = uint64(up)
	h.Error = errorString(errHost, errUp)
	return h
}

// readSystem reads the system-wide counters at the start and the end of
// the sample window, and the CPU counts and load averages while it runs.
// A window cut short keeps the counts, the load, the run queue and the
// pressure averages of the first reading.
func readSystem(ctx context.Context, sample time.Duration) systemResult {
	var r systemResult
	buf := make([]byte, 8192)
	begin := time.Now()
	c0 := readCounters(&buf, true)

	r.CPU.LogicalCount = c0.Stat.LogicalCount
	var errCount, errLoad error
	if r.CPU.Count = countCores(&buf); r.CPU.Count == 0 {
		r.CPU.Count = r.CPU.LogicalCount // no topology in sysfs: count each CPU as a core
	}
	if r.CPU.LogicalCount == 0 && c0.StatErr == nil {
		errCount = errors.New("count logical cpus: no cpuN lines in /proc/stat")
	}
	r.CPU.Load1, r.CPU.Load5, r.CPU.Load15, errLoad = readLoad(&buf)

	var w windowed
	var windowErr error
	switch {
	case sample == 0:
		up, err := readUptime(&buf)
		if err != nil {
			windowErr = err
			w = deriveWindow(c0, c0, 0)
			break
		}
		w = deriveWindow(counters{}, c0, up)
	default:
		if err := sleepUntil(ctx, begin.Add(sample)); err != nil {
			windowErr = err
			w = deriveWindow(c0, c0, 0)
			break
		}
		c1 := readCounters(&buf, true)
		w = deriveWindow(c0, c1, c1.At.Sub(c0.At).Seconds())
	}
	r.RunQueue, r.Pressure, r.Network = w.RunQueue, w.Pressure, w.Network
	r.CPU.Percent, r.SwapIn, r.SwapOut = w.CPUPercent, w.SwapIn, w.SwapOut
	cpuErr, swapErr := w.CPUErr, w.SwapErr
	if windowErr != nil {
		if cpuErr == nil {
			cpuErr = fmt.Errorf("sample cpu times: %w", windowErr)
		}
		if swapErr == nil {
			swapErr = fmt.Errorf("sample swap activity: %w", windowErr)
		}
		if r.Network.Error == "" {
			r.Network.Error = fmt.Sprintf("sample network: %v", windowErr)
		}
		for _, p := range []*snapshot.PSI{r.Pressure.CPU, r.Pressure.Memory, r.Pressure.IO} {
			if p != nil && p.Error == "" {
				p.Error = fmt.Sprintf("sample pressure: %v", windowErr)
			}
		}
	}
	r.CPU.Error = errorString(cpuErr, errCount, errLoad)
	if swapErr != nil {
		r.SwapErr = swapErr.Error()
	}
	return r
}

func readMemory(ctx context.Context) memoryResult {
	var buf []byte
	m, err := readMeminfo(&buf)
	if err != nil {
		return memoryResult{Memory: snapshot.Memory{Error: err.Error()}, Swap: snapshot.Swap{Error: err.Error()}}
	}
	swap := snapshot.Swap{Total: m.SwapTotal}
	if m.SwapFree <= m.SwapTotal {
		swap.Used = m.SwapTotal - m.SwapFree
	}
	swap.UsedPercent = percentOf(swap.Used, swap.Total)
	return memoryResult{Memory: m.memory(), Swap: swap}
}

// readDisk reads the usage of "/"; readFilesystems reads the others.
func readDisk(ctx context.Context) snapshot.Disk {
	const path = "/"
	total, used, free, _, _, err := statfs(path)
	if err != nil {
		return snapshot.Disk{Path: path, Error: fmt.Sprintf("read disk usage of %s: %v", path, err)}
	}
	return snapshot.Disk{Path: path, Total: total, Used: used, Free: free, UsedPercent: percentOf(used, used+free)}
}
