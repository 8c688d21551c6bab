package pull

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// Clock skew between the probe and the collector: a snapshot whose time is
// further than MaxClockSkew from the collector's is refused (a clock that
// far off, or a time such as the year 9999, makes its figures untrustworthy),
// and one further than NoteClockSkew is kept with the skew noted.
const (
	MaxClockSkew  = 24 * time.Hour
	NoteClockSkew = 10 * time.Second
)

// maxLoad is far above any real load average; a larger one is garbage.
const maxLoad = 1e6

// check refuses a snapshot that cannot be physically true, so that nonsense
// is never stored or rolled up: percentages outside 0–100, parts larger
// than their whole, numbers that are not finite, a keyword that was not
// asked for, a probe clock more than MaxClockSkew from now. Sections that
// carry an error are not checked (their figures are not used). The error
// names the field as the snapshot's JSON names it, and the value.
func check(s *snapshot.Snapshot, keywords []string, now time.Time) error {
	if skew := s.Time.Sub(now); skew > MaxClockSkew || skew < -MaxClockSkew {
		return fmt.Errorf("implausible snapshot: time = %s, %s from the collector's clock (at most %s)",
			s.Time.UTC().Format(time.RFC3339), skew.Round(time.Second), MaxClockSkew)
	}
	var problems []string
	percent := func(field string, v float64) {
		if !(v >= 0 && v <= 100) { // also NaN
			problems = append(problems, fmt.Sprintf("%s = %g (want 0 to 100)", field, v))
		}
	}
	atMost := func(field string, v uint64, whole string, w uint64) {
		if v > w {
			problems = append(problems, fmt.Sprintf("%s = %d is more than %s = %d", field, v, whole, w))
		}
	}
	nonNegative := func(field string, v float64, max float64) {
		if !(v >= 0 && v <= max) || math.IsInf(v, 0) {
			problems = append(problems, fmt.Sprintf("%s = %g (want 0 to %g)", field, v, max))
		}
	}
	count := func(field string, v int) {
		if v < 0 {
			problems = append(problems, fmt.Sprintf("%s = %d (want 0 or more)", field, v))
		}
	}
	if c := s.CPU; c.Error == "" {
		percent("cpu.percent", c.Percent)
		nonNegative("cpu.load1", c.Load1, maxLoad)
		nonNegative("cpu.load5", c.Load5, maxLoad)
		nonNegative("cpu.load15", c.Load15, maxLoad)
		count("cpu.count", c.Count)
		count("cpu.logical_count", c.LogicalCount)
	}
	if m := s.Memory; m.Error == "" {
		percent("memory.used_percent", m.UsedPercent)
		atMost("memory.used", m.Used, "memory.total", m.Total)
		atMost("memory.free", m.Free, "memory.total", m.Total)
		atMost("memory.available", m.Available, "memory.total", m.Total)
		atMost("memory.buffers", m.Buffers, "memory.total", m.Total)
		atMost("memory.cached", m.Cached, "memory.total", m.Total)
	}
	if d := s.Disk; d.Error == "" {
		percent("disk.used_percent", d.UsedPercent)
		atMost("disk.used", d.Used, "disk.total", d.Total)
		atMost("disk.free", d.Free, "disk.total", d.Total)
	}
	if p := s.Processes; p.Error == "" {
		count("processes.total", p.Total)
		count("processes.matched_total", p.MatchedTotal)
		if p.MatchedTotal > p.Total {
			problems = append(problems, fmt.Sprintf("processes.matched_total = %d is more than processes.total = %d", p.MatchedTotal, p.Total))
		}
		for _, m := range p.Matched {
			if !slices.Contains(keywords, m.Keyword) {
				problems = append(problems, fmt.Sprintf("processes.matched keyword %q was not asked for (asked: %q)", m.Keyword, keywords))
				continue
			}
			field := fmt.Sprintf("processes.matched[%q]", m.Keyword)
			count(field+".count", m.Count)
			if m.Count > p.Total {
				problems = append(problems, fmt.Sprintf("%s.count = %d is more than processes.total = %d", field, m.Count, p.Total))
			}
			if len(m.PIDs) > m.Count {
				problems = append(problems, fmt.Sprintf("%s lists %d pids for a count of %d", field, len(m.PIDs), m.Count))
			}
			nonNegative(field+".cpu_percent", m.CPUPercent, 100*1e4) // of one CPU: up to 100 × the CPUs
		}
	}
	// The sections of version 2.
	finite := func(field string, v float64) {
		if !(v >= 0) || math.IsInf(v, 0) {
			problems = append(problems, fmt.Sprintf("%s = %g (want a finite number, 0 or more)", field, v))
		}
	}
	if s.ProcessCPUSeconds != 0 {
		finite("process_cpu_seconds", s.ProcessCPUSeconds)
	}
	if w := s.Swap; w != nil && w.Error == "" {
		percent("swap.used_percent", w.UsedPercent)
		atMost("swap.used", w.Used, "swap.total", w.Total)
		finite("swap.pages_in_per_second", w.PagesInPerSecond)
		finite("swap.pages_out_per_second", w.PagesOutPerSecond)
	}
	if p := s.Pressure; p != nil && p.Error == "" {
		for name, psi := range map[string]*snapshot.PSI{"cpu": p.CPU, "memory": p.Memory, "io": p.IO} {
			if psi == nil || psi.Error != "" {
				continue
			}
			percent("pressure."+name+".some_avg10", psi.SomeAvg10)
			for f, v := range map[string]*float64{"full_avg10": psi.FullAvg10, "some_stall_percent": psi.SomeStallPercent, "full_stall_percent": psi.FullStallPercent} {
				if v != nil {
					percent("pressure."+name+"."+f, *v)
				}
			}
		}
	}
	if q := s.RunQueue; q != nil && q.Error == "" {
		count("run_queue.running", q.Running)
		count("run_queue.blocked", q.Blocked)
	}
	if n := s.Network; n != nil && n.Error == "" {
		finite("network.rx_bytes_per_second", n.RxBytesPerSecond)
		finite("network.tx_bytes_per_second", n.TxBytesPerSecond)
	}
	if f := s.FileDescriptors; f != nil && f.Error == "" && f.Max > 0 {
		atMost("file_descriptors.allocated", f.Allocated, "file_descriptors.max", f.Max)
	}
	if fs := s.Filesystems; fs != nil && fs.Error == "" {
		for _, m := range fs.Mounts {
			if m.Error != "" {
				continue
			}
			percent(fmt.Sprintf("filesystems[%q].used_percent", m.Path), m.UsedPercent)
			atMost(fmt.Sprintf("filesystems[%q].used", m.Path), m.Used, "its total", m.Total)
			if m.Inodes > 0 {
				percent(fmt.Sprintf("filesystems[%q].inodes_used_percent", m.Path), m.InodesUsedPercent)
			}
		}
	}
	if iv := s.Interval; iv != nil && iv.Error == "" {
		for name, st := range map[string]*snapshot.Stat{"cpu": iv.CPU, "memory": iv.Memory, "disk": iv.Disk} {
			if st != nil {
				percent("interval."+name+".max", st.Max)
				percent("interval."+name+".mean", st.Mean)
			}
		}
		if iv.Load1 != nil {
			nonNegative("interval.load1.max", iv.Load1.Max, maxLoad)
		}
		for _, k := range iv.Keywords {
			if !slices.Contains(keywords, k.Keyword) {
				problems = append(problems, fmt.Sprintf("interval.keywords keyword %q was not asked for", k.Keyword))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems) // maps above: a stable message
	if len(problems) > 3 {
		problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
	}
	msg := "implausible snapshot: " + problems[0]
	for _, p := range problems[1:] {
		msg += "; " + p
	}
	return fmt.Errorf("%s", msg)
}
