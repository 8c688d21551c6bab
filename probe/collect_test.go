package main

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

var testTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeReaders return fixed sections at once and record what they were asked.
type fakeReaders struct {
	sample   time.Duration
	keywords []string
}

func (f *fakeReaders) readers() readers {
	return readers{
		host: func(context.Context) hostInfo { return hostInfo{Hostname: "web1", UptimeSeconds: 3600} },
		system: func(_ context.Context, sample time.Duration) systemResult {
			f.sample = sample
			return systemResult{
				CPU:      snapshot.CPU{Count: 2, LogicalCount: 4, Percent: 12.5, Load1: 1},
				RunQueue: snapshot.RunQueue{Running: 2},
				SwapIn:   1, SwapOut: 2,
				Pressure: snapshot.Pressure{Error: "unsupported: no /proc/pressure/cpu"},
				Network:  snapshot.Network{Interfaces: []snapshot.Interface{{Name: "eth0", RxBytesPerSecond: 5}}, RxBytesPerSecond: 5},
			}
		},
		memory: func(context.Context) memoryResult {
			return memoryResult{Memory: snapshot.Memory{Total: 1 << 30, Available: 1 << 29}, Swap: snapshot.Swap{Total: 100, Used: 50, UsedPercent: 50}}
		},
		disk: func(context.Context) snapshot.Disk { return snapshot.Disk{Path: "/", Total: 1 << 40} },
		processes: func(_ context.Context, _ time.Duration, keywords []string) procResult {
			f.keywords = keywords
			return procResult{Processes: snapshot.Processes{
				Total:        90,
				Matched:      []snapshot.Match{{Keyword: "python", Count: 1, PIDs: []int32{42}}},
				MatchedTotal: 1,
			}}
		},
		sockets: func(context.Context) snapshot.Sockets { return snapshot.Sockets{TCP: map[string]int{"listen": 1}} },
		fds: func(context.Context) snapshot.FileDescriptors {
			return snapshot.FileDescriptors{Allocated: 10, Max: 100}
		},
		filesystems: func(context.Context) snapshot.Filesystems { return snapshot.Filesystems{} },
	}
}

func fixedNow() time.Time { return testTime }

func TestCollectAssembles(t *testing.T) {
	var f fakeReaders
	opts := options{sample: 250 * time.Millisecond, timeout: time.Minute, keywords: []string{"python", "java"}}
	got := collect(context.Background(), f.readers(), opts, fixedNow)
	want := snapshot.Snapshot{
		Version:       snapshot.Version,
		SampleSeconds: 0.25,
		Time:          testTime,
		Hostname:      "web1",
		UptimeSeconds: 3600,
		CPU:           snapshot.CPU{Count: 2, LogicalCount: 4, Percent: 12.5, Load1: 1},
		Memory:        snapshot.Memory{Total: 1 << 30, Available: 1 << 29},
		Disk:          snapshot.Disk{Path: "/", Total: 1 << 40},
		Processes: snapshot.Processes{
			Total:        90,
			Matched:      []snapshot.Match{{Keyword: "python", Count: 1, PIDs: []int32{42}}},
			MatchedTotal: 1,
		},
		Swap:            &snapshot.Swap{Total: 100, Used: 50, UsedPercent: 50, PagesInPerSecond: 1, PagesOutPerSecond: 2},
		Pressure:        &snapshot.Pressure{Error: "unsupported: no /proc/pressure/cpu"},
		RunQueue:        &snapshot.RunQueue{Running: 2},
		Network:         &snapshot.Network{Interfaces: []snapshot.Interface{{Name: "eth0", RxBytesPerSecond: 5}}, RxBytesPerSecond: 5},
		Sockets:         &snapshot.Sockets{TCP: map[string]int{"listen": 1}},
		FileDescriptors: &snapshot.FileDescriptors{Allocated: 10, Max: 100},
		Top:             &snapshot.Top{ByCPU: []snapshot.Proc{}, ByRSS: []snapshot.Proc{}},
		Filesystems:     &snapshot.Filesystems{Mounts: []snapshot.Filesystem{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("collect =\n%+v\nwant\n%+v", got, want)
	}
	if f.sample != opts.sample {
		t.Errorf("cpu reader got sample %v, want %v", f.sample, opts.sample)
	}
	if !reflect.DeepEqual(f.keywords, opts.keywords) {
		t.Errorf("process reader got keywords %q, want %q", f.keywords, opts.keywords)
	}
}

func TestCollectSectionError(t *testing.T) {
	var f fakeReaders
	r := f.readers()
	r.processes = func(context.Context, time.Duration, []string) procResult {
		return procResult{Processes: snapshot.Processes{Error: "list processes: open /proc: permission denied"}}
	}
	got := collect(context.Background(), r, options{timeout: time.Minute}, fixedNow)
	if got.Processes.Error != "list processes: open /proc: permission denied" {
		t.Errorf("processes.error = %q, want the reader's error", got.Processes.Error)
	}
	if got.Processes.Matched == nil {
		t.Error("processes.matched is nil, want an empty list")
	}
	if got.Memory.Total != 1<<30 || got.CPU.Percent != 12.5 || got.Disk.Total != 1<<40 || got.Hostname != "web1" || got.Sockets.TCP["listen"] != 1 {
		t.Errorf("other sections lost: %+v", got)
	}
}

// TestCollectTimeout checks that a reader stuck in the kernel (a hung
// statfs, say) costs only its own section, and that collect returns at the
// deadline.
func TestCollectTimeout(t *testing.T) {
	var f fakeReaders
	r := f.readers()
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	r.disk = func(context.Context) snapshot.Disk { <-stuck; return snapshot.Disk{} } // ignores ctx
	r.processes = func(ctx context.Context, _ time.Duration, _ []string) procResult {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // finishes too late to count
		return procResult{Processes: snapshot.Processes{Total: 1}}
	}
	r.filesystems = func(context.Context) snapshot.Filesystems { <-stuck; return snapshot.Filesystems{} }
	opts := options{timeout: 100 * time.Millisecond}

	begin := time.Now()
	got := collect(context.Background(), r, opts, fixedNow)
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("collect took %v with a 100ms timeout", took)
	}
	const want = "timed out after 100ms"
	if got.Disk.Error != want || got.Disk.Path != "/" {
		t.Errorf("disk = %+v, want path / and error %q", got.Disk, want)
	}
	if got.Processes.Error != want || got.Processes.Total != 0 || got.Processes.Matched == nil {
		t.Errorf("processes = %+v, want error %q, no total and an empty matched list", got.Processes, want)
	}
	if got.Top.Error != want || got.Filesystems.Error != want || got.Filesystems.Mounts == nil {
		t.Errorf("top %+v, filesystems %+v; want error %q", got.Top, got.Filesystems, want)
	}
	if got.Memory.Total != 1<<30 || got.Memory.Error != "" || got.CPU.Percent != 12.5 || got.Hostname != "web1" || got.Error != "" {
		t.Errorf("sections that finished were lost: %+v", got)
	}
	if got.Version != snapshot.Version || !got.Time.Equal(testTime) {
		t.Errorf("version %d time %v, want %d and %v", got.Version, got.Time, snapshot.Version, testTime)
	}
}

// TestCollectKeepsPartialSections checks that sections cut short by the
// deadline, which return what they read a moment after it (as readCPU and
// readProcesses do when it ends their sample window), are kept rather than
// dropped by a collect that stopped waiting at the same instant.
func TestCollectKeepsPartialSections(t *testing.T) {
	var f fakeReaders
	r := f.readers()
	r.system = func(ctx context.Context, _ time.Duration) systemResult {
		<-ctx.Done()
		time.Sleep(5 * time.Millisecond) // the syscall returning, the error being built
		return systemResult{CPU: snapshot.CPU{Count: 2, LogicalCount: 4, Error: "sample cpu times: " + context.Cause(ctx).Error()}}
	}
	r.processes = func(ctx context.Context, _ time.Duration, _ []string) procResult {
		<-ctx.Done()
		time.Sleep(5 * time.Millisecond)
		return procResult{Processes: snapshot.Processes{Total: 90, Matched: []snapshot.Match{}, Error: "sample process cpu times: " + context.Cause(ctx).Error()}}
	}
	opts := options{sample: time.Minute, timeout: 2 * time.Second} // a grace of 100ms, time enough on a loaded machine

	begin := time.Now()
	got := collect(context.Background(), r, opts, fixedNow)
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("collect took %v with a 2s timeout", took)
	}
	if want := "sample cpu times: timed out after 2s"; got.CPU.Error != want || got.CPU.Count != 2 || got.CPU.LogicalCount != 4 {
		t.Errorf("cpu = %+v, want the counts and error %q", got.CPU, want)
	}
	if want := "sample process cpu times: timed out after 2s"; got.Processes.Error != want || got.Processes.Total != 90 {
		t.Errorf("processes = %+v, want total 90 and error %q", got.Processes, want)
	}
}

func TestReadGrace(t *testing.T) {
	for timeout, want := range map[time.Duration]time.Duration{
		20 * time.Second:       100 * time.Millisecond,
		time.Second:            100 * time.Millisecond,
		200 * time.Millisecond: 20 * time.Millisecond,
		time.Millisecond:       100 * time.Microsecond,
	} {
		if got := readGrace(timeout); got != want {
			t.Errorf("readGrace(%v) = %v, want %v", timeout, got, want)
		}
	}
}

func TestCollectInterrupted(t *testing.T) {
	var f fakeReaders
	r := f.readers()
	r.system = func(ctx context.Context, _ time.Duration) systemResult { <-ctx.Done(); return systemResult{} }
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	got := collect(ctx, r, options{timeout: time.Minute}, fixedNow)
	if !strings.HasPrefix(got.CPU.Error, "interrupted") {
		t.Errorf("cpu.error = %q, want it to start with %q", got.CPU.Error, "interrupted")
	}
	if got.Memory.Total != 1<<30 {
		t.Errorf("memory lost: %+v", got.Memory)
	}
}

// TestCollectConcurrent checks that the sections are read at the same time,
// so a run takes one sample window, not one per section.
func TestCollectConcurrent(t *testing.T) {
	const window = 300 * time.Millisecond
	var f fakeReaders
	r := f.readers()
	fakeSystem, fakeProcs := r.system, r.processes
	r.system = func(ctx context.Context, sample time.Duration) systemResult {
		time.Sleep(sample)
		return fakeSystem(ctx, sample)
	}
	r.processes = func(ctx context.Context, sample time.Duration, keywords []string) procResult {
		time.Sleep(sample)
		return fakeProcs(ctx, sample, keywords)
	}
	begin := time.Now()
	got := collect(context.Background(), r, options{sample: window, timeout: time.Minute}, fixedNow)
	if took := time.Since(begin); took >= 2*window-50*time.Millisecond {
		t.Errorf("collect took %v for two %v windows, want them to overlap", took, window)
	}
	if got.CPU.Error != "" || got.Processes.Error != "" || got.CPU.Count != 2 || got.Processes.Total != 90 {
		t.Errorf("collect = %+v, want both sections read", got)
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		errs []error
		want string
	}{
		{"none", nil, ""},
		{"all nil", []error{nil, nil}, ""},
		{"some", []error{nil, errors.New("read load average: no file"), nil, errors.New("count logical cpus: bad")},
			"read load average: no file; count logical cpus: bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorString(tt.errs...); got != tt.want {
				t.Errorf("errorString = %q, want %q", got, tt.want)
			}
		})
	}
}

// deadline returns a context that ends after d the way collect's does.
func deadline(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeoutCause(context.Background(), d, errors.New("timed out after "+d.String()))
	t.Cleanup(cancel)
	return ctx
}

// TestReadSystemDeadline checks that the system reader keeps the counts,
// load and run queue it read when the deadline cuts its sample window short.
func TestReadSystemDeadline(t *testing.T) {
	t.Parallel()
	r := readSystem(deadline(t, 300*time.Millisecond), time.Minute)
	c := r.CPU
	if want := "sample cpu times: timed out after 300ms"; c.Error != want {
		t.Errorf("cpu.error = %q, want %q", c.Error, want)
	}
	if c.LogicalCount < 1 || c.Percent != 0 {
		t.Errorf("cpu = %+v, want the counts and no percent", c)
	}
	if r.RunQueue.Running < 1 || r.RunQueue.Error != "" {
		t.Errorf("run queue = %+v, want the first reading (the probe runs)", r.RunQueue)
	}
	if want := "sample network: timed out after 300ms"; r.Network.Error != want {
		t.Errorf("network.error = %q, want %q", r.Network.Error, want)
	}
}

// TestReadProcessesDeadline checks that the process reader keeps the counts
// it read when the deadline cuts its sample window short.
func TestReadProcessesDeadline(t *testing.T) {
	t.Parallel()
	p := readProcesses(deadline(t, 300*time.Millisecond), time.Minute, []string{"probe.test"}).Processes
	if want := "sample process cpu times: timed out after 300ms"; p.Error != want {
		t.Errorf("processes.error = %q, want %q", p.Error, want)
	}
	if p.Total < 2 || len(p.Matched) != 1 || p.Matched[0].Keyword != "probe.test" {
		t.Errorf("processes = %+v, want the listing kept", p)
	}
}
