// Package snapshot defines the JSON wire schema that the probe prints and
// the collector reads: one Snapshot per run, shared by both sides.
//
// It imports only the standard library so that the probe stays small and the
// schema has exactly one definition.
package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is the schema version the probe writes. Bump it on any change
// that an older reader would misread.
//
// Version 2 added SampleSeconds and the sections Swap, Pressure, RunQueue,
// Network, Sockets, FileDescriptors, Top, Filesystems and Interval, and
// per matched group Threads, FDs, FDsUnreadable, Heaviest and PIDsOmitted.
// All of them are additions: a version-1 snapshot decodes with them zero
// or nil.
const Version = 2

// MinVersion is the oldest schema version Decode accepts: snapshots of
// version 1 already stored keep decoding.
const MinVersion = 1

// DefaultMaxBytes is the largest probe output Decode accepts by default.
// A snapshot is a few KiB; the cap exists so a broken or hostile target
// cannot make the collector buffer without bound.
const DefaultMaxBytes = 4 << 20

// A Snapshot is one reading of a host's resources, taken by the probe.
//
// Bytes are integers, percents are floats from 0 to 100 (per-process and
// per-group CPU percents are of one CPU and may exceed 100), rates are per
// second. Each section carries its own Error when it could not be read; the
// other sections are still valid. A section of version 2 is nil in a
// version-1 snapshot; one whose source the kernel lacks carries an Error
// that starts with "unsupported: ", never made-up zeros.
type Snapshot struct {
	Version       int       `json:"version"`
	Time          time.Time `json:"time"` // the probe's clock, RFC 3339
	Hostname      string    `json:"hostname"`
	UptimeSeconds uint64    `json:"uptime_seconds"`
	// SampleSeconds is the window, in seconds, that CPU busy percent,
	// per-process CPU percents (unless ProcessCPUSeconds is set), rates
	// and stall percents are measured over: the -sample window of a
	// one-shot run, or the whole interval in watch mode. 0 (absent) means no window: those figures are averages since
	// boot (or since each process started). Absent in version 1.
	SampleSeconds float64 `json:"sample_seconds,omitempty"`
	// ProcessCPUSeconds, when set, is about how long the per-process CPU
	// percents (each matched group's, its heaviest member's, the top list
	// by CPU) are measured over instead of SampleSeconds: a one-shot probe
	// that keeps a state file between runs (-state) reads each process
	// once, at the end of its window, and measures it from the previous
	// run's reading of it; this is the time between the two readings. A
	// process new since the previous run is measured from when that run
	// listed the processes (all its CPU time was spent since); one that
	// run did not see although it was already running (rare), over the
	// sample window. Absent when the probe kept no state, or its state was
	// missing, stale or unusable: then SampleSeconds holds for them too.
	// An optional field of version 2.
	ProcessCPUSeconds float64   `json:"process_cpu_seconds,omitempty"`
	CPU               CPU       `json:"cpu"`
	Memory            Memory    `json:"memory"`
	Disk              Disk      `json:"disk"`
	Processes         Processes `json:"processes"`

	Swap            *Swap            `json:"swap,omitempty"`
	Pressure        *Pressure        `json:"pressure,omitempty"`
	RunQueue        *RunQueue        `json:"run_queue,omitempty"`
	Network         *Network         `json:"network,omitempty"`
	Sockets         *Sockets         `json:"sockets,omitempty"`
	FileDescriptors *FileDescriptors `json:"file_descriptors,omitempty"`
	Top             *Top             `json:"top,omitempty"`
	Filesystems     *Filesystems     `json:"filesystems,omitempty"`
	// Interval is set in watch mode only: the figures sampled every
	// resolution over the interval the snapshot covers.
	Interval *Interval `json:"interval,omitempty"`

	// Error reports a failure outside any one section (hostname, uptime).
	Error string `json:"error,omitempty"`
}

// CPU is the processor section: counts, busy percent over the probe's sample
// window, and load averages.
type CPU struct {
	Count        int     `json:"count"`         // physical cores
	LogicalCount int     `json:"logical_count"` // hardware threads
	Percent      float64 `json:"percent"`       // busy, all CPUs, over the sample window
	Load1        float64 `json:"load1"`
	Load5        float64 `json:"load5"`
	Load15       float64 `json:"load15"`
	Error        string  `json:"error,omitempty"`
}

// Memory is the virtual-memory section, in bytes.
type Memory struct {
	Total       uint64  `json:"total"`
	Used        uint64  `json:"used"`
	Free        uint64  `json:"free"`
	Available   uint64  `json:"available"`
	Buffers     uint64  `json:"buffers"`
	Cached      uint64  `json:"cached"`
	UsedPercent float64 `json:"used_percent"`
	Error       string  `json:"error,omitempty"`
}

// FreePercent is the share of memory that is available to new processes.
func (m Memory) FreePercent() float64 {
	if m.Total == 0 {
		return 0
	}
	return float64(m.Available) / float64(m.Total) * 100
}

// Disk is the usage of one file system; the probe reads only "/".
type Disk struct {
	Path        string  `json:"path"`
	Total       uint64  `json:"total"`
	Used        uint64  `json:"used"`
	Free        uint64  `json:"free"`
	UsedPercent float64 `json:"used_percent"`
	Error       string  `json:"error,omitempty"`
}

// Processes counts all processes and those matching each keyword.
type Processes struct {
	Total   int     `json:"total"`
	Matched []Match `json:"matched"`
	// MatchedTotal counts distinct processes matching any keyword; a process
	// matching two keywords is counted once here and once under each.
	MatchedTotal int    `json:"matched_total"`
	Error        string `json:"error,omitempty"`
}

// Match is what one keyword matched: a process matches when its name or its
// command line contains the keyword.
type Match struct {
	Keyword string `json:"keyword"`
	Count   int    `json:"count"`
	// PIDs lists the matched processes, sorted, at most MaxPIDs of them
	// (the lowest); PIDsOmitted counts the rest. Count is always exact.
	PIDs        []int32 `json:"pids"`
	PIDsOmitted int     `json:"pids_omitted,omitempty"`
	RSSBytes    uint64  `json:"rss_bytes"`   // resident memory of the matched processes, summed
	CPUPercent  float64 `json:"cpu_percent"` // of one CPU, summed over the sample window
	// Threads is the number of threads of the matched processes, summed.
	// 0 (absent) in version 1.
	Threads int `json:"threads,omitempty"`
	// FDs is the number of open file descriptors of the matched processes
	// whose descriptor table the probe could read, summed. FDsUnreadable
	// counts the matched processes it could not read (another user's,
	// without root): when it is not 0, FDs is a lower bound. Both 0
	// (absent) in version 1.
	FDs           int `json:"fds,omitempty"`
	FDsUnreadable int `json:"fds_unreadable,omitempty"`
	// Heaviest is the matched process with the most resident memory; nil
	// when none matched, and in version 1.
	Heaviest *Member `json:"heaviest,omitempty"`
}

// MaxPIDs is the most pids a Match lists, so that a keyword matching
// thousands of processes keeps the snapshot small.
const MaxPIDs = 50

// A Member is one process of a matched group.
type Member struct {
	PID        int32   `json:"pid"`
	RSSBytes   uint64  `json:"rss_bytes"`   // resident memory, bytes
	CPUPercent float64 `json:"cpu_percent"` // of one CPU, over the sample window
	Command    string  `json:"command"`     // short command line, see Proc.Command
}

// Swap is the swap space and the paging to and from it.
type Swap struct {
	Total       uint64  `json:"total"`        // bytes; 0 when the host has no swap
	Used        uint64  `json:"used"`         // bytes
	UsedPercent float64 `json:"used_percent"` // 0 when there is no swap
	// PagesInPerSecond and PagesOutPerSecond are the pages swapped in and
	// out per second over the sample window (pswpin and pswpout of
	// /proc/vmstat); a page is 4 KiB on most hosts.
	PagesInPerSecond  float64 `json:"pages_in_per_second"`
	PagesOutPerSecond float64 `json:"pages_out_per_second"`
	Error             string  `json:"error,omitempty"`
}

// Pressure is the kernel's pressure stall information (/proc/pressure):
// the share of time some (or all) runnable tasks were stalled waiting for
// a resource. Where the kernel has none (before 4.20, or booted with
// psi=0) the resources are nil and Error starts with "unsupported: ".
type Pressure struct {
	CPU    *PSI   `json:"cpu,omitempty"`
	Memory *PSI   `json:"memory,omitempty"`
	IO     *PSI   `json:"io,omitempty"`
	Error  string `json:"error,omitempty"`
}

// A PSI is the pressure on one resource, in percent of wall time.
type PSI struct {
	// SomeAvg10 is the kernel's 10-second running average of the share of
	// time at least one task was stalled on the resource, percent.
	SomeAvg10 float64 `json:"some_avg10"`
	// FullAvg10 is the same for all non-idle tasks stalled at once,
	// percent; nil when the kernel has no "full" line (cpu before 5.13).
	// For cpu the kernel reports it as 0 at the system level.
	FullAvg10 *float64 `json:"full_avg10,omitempty"`
	// SomeStallPercent and FullStallPercent are the stall time within the
	// sample window as a percent of it, from the kernel's cumulative
	// total= counters; nil when the window was not measured (or, for
	// full, the kernel has no "full" line).
	SomeStallPercent *float64 `json:"some_stall_percent,omitempty"`
	FullStallPercent *float64 `json:"full_stall_percent,omitempty"`
	Error            string   `json:"error,omitempty"`
}

// RunQueue is what /proc/stat counts at the end of the sample window.
type RunQueue struct {
	// Running is the number of tasks (threads) runnable or running
	// (procs_running), the probe itself included.
	Running int `json:"running"`
	// Blocked is the number of tasks blocked waiting for I/O
	// (procs_blocked).
	Blocked int    `json:"blocked"`
	Error   string `json:"error,omitempty"`
}

// Network is the traffic of the host's non-loopback interfaces over the
// sample window.
type Network struct {
	// Interfaces lists every non-loopback interface by name, at most
	// MaxInterfaces of them (the busiest); Omitted counts the rest.
	Interfaces []Interface `json:"interfaces"`
	Omitted    int         `json:"omitted,omitempty"`
	// RxBytesPerSecond and TxBytesPerSecond sum all non-loopback
	// interfaces, omitted ones included. Traffic that crosses virtual
	// interfaces (bridges, veth pairs, tunnels) counts on each of them.
	RxBytesPerSecond float64 `json:"rx_bytes_per_second"`
	TxBytesPerSecond float64 `json:"tx_bytes_per_second"`
	Error            string  `json:"error,omitempty"`
}

// MaxInterfaces is the most interfaces Network lists.
const MaxInterfaces = 12

// An Interface is one network interface's traffic over the sample window,
// from /proc/net/dev.
type Interface struct {
	Name               string  `json:"name"`
	RxBytesPerSecond   float64 `json:"rx_bytes_per_second"`
	TxBytesPerSecond   float64 `json:"tx_bytes_per_second"`
	RxPacketsPerSecond float64 `json:"rx_packets_per_second"`
	TxPacketsPerSecond float64 `json:"tx_packets_per_second"`
}

// Sockets counts the host's sockets (in the probe's network namespace).
type Sockets struct {
	// TCP counts TCP sockets, IPv4 and IPv6 together, by state. Every
	// state is present, 0 included: established, syn_sent, syn_recv,
	// fin_wait1, fin_wait2, time_wait, close, close_wait, last_ack,
	// listen, closing.
	TCP   map[string]int `json:"tcp"`
	Error string         `json:"error,omitempty"`
}

// TCPStates are the names of Sockets.TCP's keys, in the kernel's order
// (state 1 to 11).
var TCPStates = []string{
	"established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
	"close", "close_wait", "last_ack", "listen", "closing",
}

// FileDescriptors is the system-wide file handle count
// (/proc/sys/fs/file-nr).
type FileDescriptors struct {
	Allocated uint64 `json:"allocated"` // file handles in use
	Max       uint64 `json:"max"`       // the system-wide limit (fs.file-max)
	Error     string `json:"error,omitempty"`
}

// Top lists the processes of any user that use the most CPU and memory,
// so that what else loads a host is seen. The probe leaves itself out.
type Top struct {
	ByCPU []Proc `json:"by_cpu"` // at most TopN, most CPU first
	ByRSS []Proc `json:"by_rss"` // at most TopN, most resident memory first
	Error string `json:"error,omitempty"`
}

// TopN is the length of each list of Top.
const TopN = 5

// A Proc is one process of Top.
type Proc struct {
	PID  int32  `json:"pid"`
	User string `json:"user"` // real user name, or the numeric uid when unknown
	Name string `json:"name"` // short name (comm)
	// Command is the command line, its arguments joined by spaces, control
	// characters dropped, cut to at most MaxCommand bytes; empty for
	// kernel threads.
	Command    string  `json:"command"`
	CPUPercent float64 `json:"cpu_percent"` // of one CPU, over the sample window
	RSSBytes   uint64  `json:"rss_bytes"`   // resident memory, bytes
}

// MaxCommand is the longest Proc.Command and Member.Command, in bytes.
const MaxCommand = 80

// Filesystems is the usage of every local file system: those on a block
// device (ext2/3/4, xfs, btrfs, zfs, f2fs, vfat, ...), and an overlay
// mounted at "/". Pseudo file systems (proc, sysfs, cgroup, tmpfs, ...)
// and network ones are left out; a file system mounted at several points
// (bind mounts, subvolumes) is listed once, at its shortest mount point.
type Filesystems struct {
	Mounts  []Filesystem `json:"mounts"` // sorted by path, at most MaxFilesystems
	Omitted int          `json:"omitted,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// MaxFilesystems is the most file systems Filesystems lists.
const MaxFilesystems = 16

// A Filesystem is the usage of one mounted file system, in bytes and
// inodes, the way df counts them: UsedPercent is Used of Used+Free, Free
// being what unprivileged users may still use.
type Filesystem struct {
	Path        string  `json:"path"`   // mount point
	Device      string  `json:"device"` // mount source, such as /dev/sda1
	Type        string  `json:"type"`   // file system type, such as ext4
	Total       uint64  `json:"total"`
	Used        uint64  `json:"used"`
	Free        uint64  `json:"free"`
	UsedPercent float64 `json:"used_percent"`
	// Inodes and InodesUsed are 0 on file systems without a fixed
	// number of inodes (btrfs).
	Inodes            uint64  `json:"inodes"`
	InodesUsed        uint64  `json:"inodes_used"`
	InodesUsedPercent float64 `json:"inodes_used_percent"`
	Error             string  `json:"error,omitempty"`
}

// Interval holds what watch mode sampled every resolution over the interval
// a snapshot covers. Each sample spans the time since the previous one and
// belongs to the interval its end falls in. A Stat is nil when no sample
// of the interval had that figure (its source failed or is unsupported);
// Error says why.
type Interval struct {
	Start             time.Time `json:"start"`
	End               time.Time `json:"end"`
	ResolutionSeconds float64   `json:"resolution_seconds"`
	Samples           int       `json:"samples"`
	CPU               *Stat     `json:"cpu,omitempty"`    // busy percent, all CPUs
	Memory            *Stat     `json:"memory,omitempty"` // used percent, as Memory.UsedPercent
	Load1             *Stat     `json:"load1,omitempty"`
	Disk              *Stat     `json:"disk,omitempty"` // used percent of "/"
	// PressureCPU, PressureMemory and PressureIO are the "some" stall
	// percent over each sample.
	PressureCPU    *Stat `json:"pressure_cpu,omitempty"`
	PressureMemory *Stat `json:"pressure_memory,omitempty"`
	PressureIO     *Stat `json:"pressure_io,omitempty"`
	// NetworkBytesPerSecond is received plus sent bytes per second over
	// all non-loopback interfaces, as Network's totals.
	NetworkBytesPerSecond *Stat `json:"network_bytes_per_second,omitempty"`
	// Keywords holds each keyword's matched-process count, in the order
	// of Processes.Matched.
	Keywords []KeywordStat `json:"keywords"`
	// MatchedAtCPUMax and MatchedAtMemoryMax are the matched-process
	// counts at the sample of CPU.MaxAt and Memory.MaxAt.
	MatchedAtCPUMax    *MatchedAt `json:"matched_at_cpu_max,omitempty"`
	MatchedAtMemoryMax *MatchedAt `json:"matched_at_memory_max,omitempty"`
	Error              string     `json:"error,omitempty"`
}

// A Stat summarizes one figure over the samples of an interval.
type Stat struct {
	Max   float64   `json:"max"`
	Mean  float64   `json:"mean"`
	MaxAt time.Time `json:"max_at"` // the end of the first sample that reached Max
}

// A KeywordStat is one keyword's matched-process count over an interval.
type KeywordStat struct {
	Keyword string `json:"keyword"`
	Stat
}

// MatchedAt is the matched-process counts at one sample.
type MatchedAt struct {
	Keywords     []KeywordCount `json:"keywords"`
	MatchedTotal int            `json:"matched_total"` // distinct processes matching any keyword
}

// A KeywordCount is the number of processes one keyword matched.
type KeywordCount struct {
	Keyword string `json:"keyword"`
	Count   int    `json:"count"`
}

// Count returns the matched-process count for keyword, or 0 when the
// snapshot has no entry for it.
func (p Processes) Count(keyword string) int {
	for _, m := range p.Matched {
		if m.Keyword == keyword {
			return m.Count
		}
	}
	return 0
}

// ErrTooLarge is returned by Decode when the output exceeds its limit.
var ErrTooLarge = errors.New("probe output too large")

// Decode reads exactly one snapshot from r, reading at most maxBytes (or
// DefaultMaxBytes when maxBytes <= 0). It rejects unknown fields, trailing
// data, and any schema version but MinVersion to Version; a version-1
// snapshot may not carry the fields of version 2.
func Decode(r io.Reader, maxBytes int64) (*Snapshot, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	return Unmarshal(data)
}

// Unmarshal decodes one snapshot from data with the same strictness as Decode.
func Unmarshal(data []byte) (*Snapshot, error) {
	// A valid snapshot is read in one strict pass (a watching probe's
	// collector decodes one per server per tick); anything else takes the
	// passes below, whose errors say what is wrong in the order a person
	// wants to know it.
	if s, ok := unmarshalValid(data); ok {
		return s, nil
	}
	return unmarshalExplained(data)
}

// unmarshalExplained is Unmarshal in the passes whose errors say what is
// wrong; it takes what unmarshalValid takes, and more slowly.
func unmarshalExplained(data []byte) (*Snapshot, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("decode snapshot: empty output")
	}
	// Take exactly one JSON value first, so that trailing data and garbage
	// get their own messages rather than a syntax error from the decoders
	// below.
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w (output starts %q)", err, preview(data))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode snapshot: trailing data after the snapshot")
	}
	// Check the version before the strict decode, so a probe from another
	// release gets a version error rather than an unknown-field error.
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w (output starts %q)", err, preview(data))
	}
	if head.Version == nil {
		return nil, errors.New("decode snapshot: no version field")
	}
	if *head.Version < MinVersion || *head.Version > Version {
		return nil, fmt.Errorf("decode snapshot: schema version %d, want %d to %d (probe and collector from different releases)", *head.Version, MinVersion, Version)
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	var s Snapshot
	if err := strict.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w", err)
	}
	if s.Time.IsZero() {
		return nil, errors.New("decode snapshot: no time")
	}
	if s.Version == 1 {
		if f := s.fieldsOfVersion2(); f != "" {
			return nil, fmt.Errorf("decode snapshot: field %q is not in schema version 1", f)
		}
	}
	return &s, nil
}

// unmarshalValid decodes data in one strict pass and reports whether it is
// a valid snapshot; when it is not, Unmarshal's other passes say why.
func unmarshalValid(data []byte) (*Snapshot, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Snapshot
	if err := dec.Decode(&s); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	if s.Version < MinVersion || s.Version > Version || s.Time.IsZero() || s.Version == 1 && s.fieldsOfVersion2() != "" {
		return nil, false
	}
	return &s, true
}

// fieldsOfVersion2 returns the JSON name of the first field of schema
// version 2 that s carries, or "".
func (s *Snapshot) fieldsOfVersion2() string {
	switch {
	case s.SampleSeconds != 0:
		return "sample_seconds"
	case s.ProcessCPUSeconds != 0:
		return "process_cpu_seconds"
	case s.Swap != nil:
		return "swap"
	case s.Pressure != nil:
		return "pressure"
	case s.RunQueue != nil:
		return "run_queue"
	case s.Network != nil:
		return "network"
	case s.Sockets != nil:
		return "sockets"
	case s.FileDescriptors != nil:
		return "file_descriptors"
	case s.Top != nil:
		return "top"
	case s.Filesystems != nil:
		return "filesystems"
	case s.Interval != nil:
		return "interval"
	}
	for _, m := range s.Processes.Matched {
		switch {
		case m.PIDsOmitted != 0:
			return "pids_omitted"
		case m.Threads != 0:
			return "threads"
		case m.FDs != 0:
			return "fds"
		case m.FDsUnreadable != 0:
			return "fds_unreadable"
		case m.Heaviest != nil:
			return "heaviest"
		}
	}
	return ""
}

// preview returns the start of data for an error message, so a user can see
// what a target printed instead of a snapshot (a shell banner, say).
func preview(data []byte) []byte {
	const n = 64
	if len(data) > n {
		return data[:n]
	}
	return data
}
