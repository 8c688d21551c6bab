package main

import (
	"fmt"
	"strings"
	"time"
)

// The targets of the issue, on a 2-core machine with a 1 s sample window.
const (
	targetWarmWallN    = 100
	targetWarmWallMS   = 2000
	targetCPUMS        = 2 // collector CPU per warm snapshot
	targetMemN         = 500
	targetPeakRSSMiB   = 300
	targetCompleteNote = "every round completes"
	targetColdN        = 20
	targetColdTimes    = 1.5 // cold round ÷ warm round
)

// A report is the results of one run, one Result per N.
type report struct {
	Machine  machine
	Warm     int
	RealHome bool
	Results  []Result
	Duration time.Duration
}

// A target is one line of the targets table.
type target struct {
	What     string
	Measured string
	Ratio    string // measured ÷ target; at most 1 meets it
	Met      string // "yes", "no" or "not measured"
}

// targets checks the targets against the results.
func (rep report) targets() []target {
	var out []target
	r, ok := rep.find(targetWarmWallN)
	t := target{What: fmt.Sprintf("warm round of %d servers: wall under %.0f s", targetWarmWallN, targetWarmWallMS/1000.0), Met: "not measured"}
	if ok {
		w := r.warmWall()
		t.Measured = secs(w)
		t.Ratio = ratio(w / targetWarmWallMS)
		t.Met = yes(w < targetWarmWallMS)
	}
	out = append(out, t)

	t = target{What: fmt.Sprintf("collector CPU per warm snapshot: under %d ms (worst N)", targetCPUMS), Met: "not measured"}
	worst, worstN := -1.0, 0
	for _, r := range rep.Results {
		if c := r.warmCPUPerSnapshot(); c > worst {
			worst, worstN = c, r.N
		}
	}
	if worst >= 0 {
		t.Measured = fmt.Sprintf("%.2f ms (N=%d)", worst, worstN)
		t.Ratio = ratio(worst / targetCPUMS)
		t.Met = yes(worst < targetCPUMS)
	}
	out = append(out, t)

	r, ok = rep.find(targetMemN)
	t = target{What: fmt.Sprintf("%d servers: %s", targetMemN, targetCompleteNote), Met: "not measured"}
	if ok {
		total, failed := r.fleetAttempts()
		t.Measured = fmt.Sprintf("%d of %d probes failed", failed, total)
		t.Ratio = "–"
		t.Met = yes(failed == 0)
	}
	out = append(out, t)
	t = target{What: fmt.Sprintf("%d servers: peak RSS under %d MiB", targetMemN, targetPeakRSSMiB), Met: "not measured"}
	if ok {
		t.Measured = fmt.Sprintf("%.0f MiB", r.PeakRSSMiB)
		t.Ratio = ratio(r.PeakRSSMiB / targetPeakRSSMiB)
		t.Met = yes(r.PeakRSSMiB < targetPeakRSSMiB)
	}
	out = append(out, t)

	r, ok = rep.find(targetColdN)
	t = target{What: fmt.Sprintf("cold round of %d servers: at most %.1f× the warm round", targetColdN, targetColdTimes), Met: "not measured"}
	if ok && r.warmWall() > 0 {
		x := r.Cold.WallMS / r.warmWall()
		t.Measured = fmt.Sprintf("%s ÷ %s = %.2f×", secs(r.Cold.WallMS), secs(r.warmWall()), x)
		t.Ratio = ratio(x / targetColdTimes)
		t.Met = yes(x <= targetColdTimes)
	}
	out = append(out, t)
	return out
}

func (rep report) find(n int) (Result, bool) {
	for _, r := range rep.Results {
		if r.N == n {
			return r, true
		}
	}
	return Result{}, false
}

func (r Result) warmWall() float64 { return median(r.Warm, func(w Round) float64 { return w.WallMS }) }

// warmRange returns the shortest and longest warm round, "1.9–2.1 s".
func (r Result) warmRange() string {
	if len(r.Warm) == 0 {
		return "–"
	}
	lo, hi := r.Warm[0].WallMS, r.Warm[0].WallMS
	for _, w := range r.Warm {
		lo, hi = min(lo, w.WallMS), max(hi, w.WallMS)
	}
	if hi < 1000 {
		return fmt.Sprintf("%.0f–%.0f ms", lo, hi)
	}
	return fmt.Sprintf("%.2f–%.2f s", lo/1000, hi/1000)
}

func (r Result) warmCPUPerSnapshot() float64 {
	return median(r.Warm, func(w Round) float64 { return w.CPUMS }) / float64(r.N)
}

func (r Result) warmMachinePerSnapshot() float64 {
	return median(r.Warm, func(w Round) float64 { return w.MachineCPUMS }) / float64(r.N)
}

// fleetAttempts counts the fleet's probes over all rounds, and the failed ones.
func (r Result) fleetAttempts() (total, failed int) {
	for _, w := range append([]Round{r.Cold, r.Reconnect}, r.Warm...) {
		total += w.OK + w.Failed
		failed += w.Failed
	}
	return total, failed
}

// markdown renders the report.
func (rep report) markdown() string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "# Fleet benchmark\n\n")
	fmt.Fprintf(&b, "`make bench` (`go run ./bench/fleetbench`), %s, %d CPUs (%s), Linux %s, %s, %s. "+
		"The run took %s; in the 3 s before it the CPUs were %.0f%% busy with other work.\n\n",
		m.Date.UTC().Format("2006-01-02 15:04 MST"), m.CPUs, m.CPU, m.Kernel, m.Go, m.OpenSSH,
		rep.Duration.Round(time.Second), m.Busy)

	sample := "1 s"
	if len(rep.Results) > 0 {
		sample = secs(rep.Results[0].SampleMS)
	}
	fmt.Fprintf(&b, "N servers, all one loopback sshd under different names; CPU sample window %s; "+
		"warm figures are the median of %d warm rounds. CPU is user+system time: the collector's own (getrusage "+
		"RUSAGE_SELF), or the ssh clients' (RUSAGE_CHILDREN). × is ssh-cat ÷ collector: above 1 the collector is "+
		"faster or cheaper.\n\n", sample, rep.Warm)
	b.WriteString("| N | cold wall | warm wall (range) | warm CPU ms/snapshot | cold CPU ms/snapshot | peak RSS MiB | ssh-cat wall | ssh-cat CPU ms/snapshot | wall × | wall × without the sample window | CPU × | failures (collector / ssh-cat) |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Results {
		warm := r.warmWall()
		cpu := r.warmCPUPerSnapshot()
		sshCPU := r.SSHCat.CPUMS / float64(r.N)
		_, failed := r.fleetAttempts()
		fmt.Fprintf(&b, "| %d | %s | %s | %.2f | %.2f | %.0f | %s | %.2f | %s | %s | %s | %d / %d |\n",
			r.N, secs(r.Cold.WallMS), secs(warm)+" ("+r.warmRange()+")", cpu, r.Cold.CPUMS/float64(r.N), r.PeakRSSMiB,
			secs(r.SSHCat.WallMS), sshCPU,
			times(r.SSHCat.WallMS, warm), times(r.SSHCat.WallMS, warm-r.SampleMS), times(sshCPU, cpu),
			failed, r.SSHCat.Failed)
	}

	b.WriteString("\n## Targets\n\n| target | measured | ratio to target | met |\n|---|---|---:|---|\n")
	for _, t := range rep.targets() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.What, or(t.Measured, "–"), or(t.Ratio, "–"), t.Met)
	}

	section(&b, "Where the machine's CPU went",
		"Busy time of all CPUs during a round (/proc/stat), per snapshot: the collector or the ssh clients, "+
			"and sshd, the login shells and the probes or `cat`, which all run on this same machine.",
		"N", "collector warm: all CPU ms/snapshot", "of it the collector", "ssh-cat: all CPU ms/snapshot", "of it the ssh clients",
		"probes uploaded (cold / warm)", "kept connections reused (warm)", "connects dropped by sshd's full accept queue (cold / warm / ssh-cat)")
	for _, r := range rep.Results {
		all := r.warmMachinePerSnapshot()
		sshAll := r.SSHCat.MachineCPUMS / float64(r.N)
		var reused, uploaded int
		var overflows int64
		for _, w := range r.Warm {
			reused += w.Reused
			uploaded += w.Uploaded
			overflows += w.ListenOverflows
		}
		fmt.Fprintf(&b, "| %d | %.1f | %s | %.1f | %s | %d of %d / %d | %d of %d | %d / %d / %d |\n",
			r.N, all, share(r.warmCPUPerSnapshot(), all), sshAll, share(r.SSHCat.CPUMS/float64(r.N), sshAll),
			r.Cold.Uploaded, r.N, uploaded, reused, r.N*len(r.Warm), r.Cold.ListenOverflows, overflows, r.SSHCat.ListenOverflows)
	}

	section(&b, "Cold rounds",
		"A cold round is new connections and the probe uploaded to every server; a reconnect round is new "+
			"connections to servers that have the probe cached: the cold round but for the upload. × is ÷ the warm round.",
		"N", "cold wall", "reconnect wall", "warm wall", "cold ×", "reconnect ×", "upload's share of the cold round")
	for _, r := range rep.Results {
		warm := r.warmWall()
		upload := "–"
		if r.Cold.WallMS > 0 {
			upload = fmt.Sprintf("%.0f%%", 100*max(r.Cold.WallMS-r.Reconnect.WallMS, 0)/r.Cold.WallMS)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", r.N, secs(r.Cold.WallMS), secs(r.Reconnect.WallMS), secs(warm),
			times(r.Cold.WallMS, warm), times(r.Reconnect.WallMS, warm), upload)
	}

	var errs []string
	for _, r := range rep.Results {
		for _, e := range r.Errors {
			errs = append(errs, fmt.Sprintf("- N=%d: %s", r.N, e))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\n## Failures (first few per N)\n\n" + strings.Join(errs, "\n") + "\n")
	}

	home := "Sessions get an empty home directory (sshd `SetEnv HOME=`), as a dedicated monitoring\n" +
		"  account would have: bash sources ~/.bashrc for every command sshd runs, and the bench user's own\n" +
		"  start-up files would be measured instead of the collector (`-real-home` keeps them)."
	if rep.RealHome {
		home = "Sessions use the bench user's real home directory (`-real-home`): bash sources its ~/.bashrc\n" +
			"  for every command sshd runs, for the collector and ssh-cat alike."
	}
	b.WriteString(`
## How to read it

- **Cold** is fleet.New and one Probe of every server: N new SSH connections, ` + "`uname -sm`" + `, and the
  probe uploaded to every server (each server has its own, empty probe_dir, as separate machines would).
  **Warm** rounds reuse the kept connections: one SSH session per server, running the cached probe. For
  them the inventory is reloaded (Fleet.SetInventory, connections kept) with one probe_dir for all,
  holding one of the uploaded probes: N probes at N paths on one machine would each count the other
  N−1 as processes matching the keyword on their command lines, work no real server does.
- **ssh-cat** is N parallel ` + "`ssh -o StrictHostKeyChecking=yes -o BatchMode=yes host 'cat /proc/stat /proc/meminfo /proc/loadavg'`" + `,
  each a new connection with OpenSSH's client, at most ` + fmt.Sprint(concurrency) + ` at once like the collector. It reads
  counters once and takes no CPU sample, so it returns no busy % and no process list: to get the
  collector's figures it would need a second read a sample window later. The wall ratio is therefore
  shown twice: as measured, and with the sample window taken off the collector's warm wall time.
- **Everything runs on the same CPUs.** sshd, a shell and a probe per server run on this machine next to
  the collector: a warm round of N servers is N sshd sessions and N probes sampling the CPU over the same
  window, and every probe walks a process table that holds all of those sessions and probes, so the
  machine's work grows faster than N. Wall times at large N measure this machine serving N servers at
  once more than the collector; real servers bring their own CPUs. The collector's own CPU is measured
  apart (RUSAGE_SELF) and is the figure the CPU target is about; the machine's total is in the table above.
- ` + home + `
- **Reconnect** is fleet.New and one Probe of every server again, with the warm rounds' inventory:
  new connections and ` + "`uname -sm`" + `, the probe found in place.
- **Peak RSS** is the child process's VmHWM after the cold and warm rounds (each N runs in its own
  process), before the reconnect round and the ssh-cat baseline. It includes the probe builds embedded in the binary.
- One sshd takes all N connections (MaxStartups raised to 1000, LogLevel ERROR). Its accept queue holds
  128 connections: beyond that a connect is dropped and its SYN retried a second or more later (the last
  column above), which lengthens cold and ssh-cat rounds at large N. A real fleet spreads them over N sshds.
`)
	return b.String()
}

// section writes a heading, a paragraph and the head of a table of
// right-aligned columns.
func section(b *strings.Builder, title, intro string, columns ...string) {
	fmt.Fprintf(b, "\n## %s\n\n%s\n\n| %s |\n|%s\n", title, intro, strings.Join(columns, " | "), strings.Repeat("---:|", len(columns)))
}

func secs(ms float64) string {
	if ms < 1000 {
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.2f s", ms/1000)
}

func ratio(x float64) string { return fmt.Sprintf("%.2f", x) }

// times returns a ÷ b as "1.5×", or "–" when b is not positive.
func times(a, b float64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func share(part, whole float64) string {
	if whole <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms (%.0f%%)", part, 100*part/whole)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
