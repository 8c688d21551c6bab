// Command probe prints snapshots of the host it runs on: CPU, memory, swap,
// pressure stall, run queue, network, TCP sockets, file handles, the local
// file systems, the busiest processes, and the processes that match some
// keywords.
//
// Usage:
//
//	probe [-sample 1s] [-timeout 20s] [-state file] [-version] [--] [keyword ...]
//	probe -watch [-resolution 1s] [-silence 5m] [-timeout 20s] [--] [keyword ...]
//
// The collector uploads probe to a target over SSH and runs it; it needs no
// shell, interpreter or root. Flags come before the keywords; use "--" before
// a keyword that starts with "-". With no keywords, no process matches: the
// processes section then only counts all processes (total) and its matched
// list is empty. There are no default keywords here; the collector's default
// list is inventory.DefaultKeywords, and it always passes the keywords to
// use. A process matches a keyword when its name or its command line contains the
// keyword as a literal, case-sensitive substring. Repeated keywords are
// reported once; an empty keyword is a usage error, as it would match every
// process. The probe never counts itself, nor any process whose command line
// names its own path (argv[0]): other runs of the same binary (two
// collectors probing one host at once) and the shells that start them (such
// as sh -c './probe python; rm probe'), nor any collector's cached probe
// build (…/probe-<16 hex>), since all those command lines contain the
// keywords. With a bare argv[0] only the parent is checked. The top lists
// leave the same processes out.
//
// The probe reads /proc itself (no gopsutil): the stat file of each
// process once, again over the same descriptor at the end of the sample
// window, its command line only for keyword matching (none for kernel
// threads, none at all without keywords) and for the processes it shows,
// and its status (for the user) and open descriptors only for those. With
// -state it reads most processes once, and few command lines (below).
//
// # One snapshot
//
// -sample is the window over which CPU percents, rates and stall percents
// are measured (Snapshot.SampleSeconds; each process is measured from when
// it is first read, over at least the window). Its default, 1s, is for manual
// runs only: the collector always passes -sample, so a configured sample =
// "0s" is honoured. With -sample 0 there is no window: the CPU percent is
// the average since boot, each process's percent is its average since it
// started, as ps shows it, and rates and stall percents are averages since
// boot.
//
// -timeout bounds the whole run (default 20s). The sections are asked to
// stop a short grace before it (min(100ms, timeout/10)), so that one cut
// short still arrives in time with what it had, such as the CPU counts and
// the process list when only the sample window was cut short, and an error
// ending in "timed out after 20s". A section still not read at the timeout
// is left empty with that error. The rest still prints and the exit status
// is still 0. Each local file system is read on its own, so one that hangs
// costs only its own entry.
//
// Output: exactly one JSON object, a snapshot.Snapshot of schema version
// snapshot.Version, then a newline, on stdout. A section that could not be
// read carries its own error; one whose source the kernel lacks (no
// /proc/pressure) says "unsupported: ..." instead of showing zeros.
// Diagnostics go to stderr.
//
// # State between runs
//
// -state names a file (the collector passes probe-state in its probe
// directory) where a one-shot run keeps what it learned of each process:
// its CPU time at the end of the run's window, and which keywords its
// command line matched. A run that finds a usable state reads a process
// the previous run read only once, at the end of its window, and measures
// its CPU from that run's reading: Snapshot.ProcessCPUSeconds is the time
// between the two. A process new since then is measured from when the
// previous run listed /proc, as all its CPU time was spent since. Command
// lines are read only of processes new since the previous run, of those
// whose name changed, that were young when read (caught between fork and
// exec) or are the probe's parent, and of a few a run whose match is older
// than 10 minutes. Memory, threads, counts and the lists are as of the end
// of the window, as always. A state that is missing, older than 10
// minutes, from another boot or pid namespace, unreadable or damaged is
// not used: the run measures over its sample window, as without -state,
// and writes a new one. The file is replaced atomically (a temporary file
// renamed over it), so that runs at once each read a whole state, the last
// writer's; it keeps at most 32,768 processes (a host with more gets
// none). The state is a cache: nothing about it fails a run. It is not
// used with -sample 0, nor in watch mode. See state.go for the format.
//
// Exit status: 0 when the snapshot was printed, even with section errors
// (and for -version and -help); 1 when it could not be written; 2 for a
// usage error, with nothing on stdout.
//
// # Watch mode
//
// With -watch the probe runs for as long as the session that started it:
//
//   - Every -resolution (default 1s, at least 100ms) it samples CPU busy,
//     memory used, load1, "/" used, the "some" stall percent of cpu, memory
//     and io pressure, network bytes per second (received plus sent, all
//     non-loopback interfaces) and each keyword's matched-process count. It
//     keeps what it knows of each pid, so a sample lists /proc only when
//     processes were created since the last one, and reads only the new
//     ones.
//   - Each time it reads a line on stdin (its content is ignored; the
//     collector sends one at each schedule tick), it prints one line: a
//     full snapshot, as a one-shot run would print it, whose window is the
//     interval since the previous line (or since the start), so CPU busy is
//     the interval's mean and each process's CPU percent is over the
//     interval; plus Snapshot.Interval, the maximum, mean and time of the
//     maximum of each sampled figure and the matched counts at the CPU and
//     memory maxima. -timeout bounds the making of each snapshot. A sample
//     belongs to the interval its end falls in; processes that both started
//     and ended within an interval are seen by the samples but add nothing
//     to its per-process CPU.
//   - It exits with status 0 when stdin reaches its end (the session
//     closed) or on SIGINT, SIGTERM or SIGHUP; with 1 (or SIGPIPE) when its
//     stdout is gone; and with 3, saying so on stderr, when no line arrived
//     for -silence (default 5m): -silence after the last line, or after
//     the start (give or take the milliseconds of a sample in progress), no
//     probe is left running whatever became of the collector. The collector passes about twice its schedule interval
//     plus 30 s.
//
// -sample and -state are not used in watch mode.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

const usageLine = "usage: probe [-sample 1s] [-timeout 20s] [-state file] [-watch [-resolution 1s] [-silence 5m]] [-version] [--] [keyword ...]"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, collects one snapshot and writes it to stdout. It returns
// the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sample := fs.Duration("sample", time.Second, "CPU sample `window` (the collector always sets it); 0 gives averages since boot and since each process started")
	timeout := fs.Duration("timeout", 20*time.Second, "`deadline` for the whole run; sections unread by then report \"timed out\"")
	version := fs.Bool("version", false, "print the snapshot schema version and exit")
	watch := fs.Bool("watch", false, "watch mode: sample every -resolution; print one snapshot of the interval for each line read on stdin")
	resolution := fs.Duration("resolution", time.Second, "watch mode: how often the system-wide figures are sampled")
	silence := fs.Duration("silence", 5*time.Minute, "watch mode: exit when no line arrives on stdin for this long")
	state := fs.String("state", "", "keep what is known of each process between one-shot runs in this `file`, and measure each process's CPU since the previous run read it")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usageLine)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // flag has printed the error and the usage
	}
	if *version {
		fmt.Fprintln(stdout, snapshot.Version)
		return 0
	}
	opts, err := newOptions(*sample, *timeout, fs.Args())
	if err == nil && *watch {
		err = opts.setWatch(*resolution, *silence)
	}
	if err != nil {
		fmt.Fprintf(stderr, "probe: %v\n%s\n", err, usageLine)
		return 2
	}
	if opts.watch {
		return runWatch(ctx, opts, stdin, stdout, stderr)
	}

	r := system
	if *state != "" {
		r.processes = readProcessesState(*state)
	}
	snap := collect(ctx, r, opts, time.Now)
	if err := json.NewEncoder(stdout).Encode(snap); err != nil {
		fmt.Fprintf(stderr, "probe: write snapshot: %v\n", err)
		return 1
	}
	return 0
}

// options are the validated command-line settings of one run.
type options struct {
	sample   time.Duration // CPU sample window; 0 for averages
	timeout  time.Duration // deadline for the whole run; in watch mode, for each snapshot
	keywords []string      // in the order given, none empty; none at all counts no process

	watch      bool
	resolution time.Duration // watch mode: the sampling period
	silence    time.Duration // watch mode: exit after this long without a line
}

// minResolution is the shortest -resolution: sampling costs about a
// millisecond of CPU on a host with 1,000 processes.
const minResolution = 100 * time.Millisecond

// setWatch validates and sets the watch-mode settings.
func (o *options) setWatch(resolution, silence time.Duration) error {
	if resolution < minResolution {
		return fmt.Errorf("-resolution %v is below %v", resolution, minResolution)
	}
	if silence <= 0 {
		return fmt.Errorf("-silence %v must be positive", silence)
	}
	o.watch, o.resolution, o.silence = true, resolution, silence
	return nil
}

// newOptions validates the flags and keywords. No keywords is valid: no
// process matches.
func newOptions(sample, timeout time.Duration, keywords []string) (options, error) {
	if sample < 0 {
		return options{}, fmt.Errorf("-sample %v is negative; use 0 for no window", sample)
	}
	if timeout <= 0 {
		return options{}, fmt.Errorf("-timeout %v must be positive", timeout)
	}
	for i, k := range keywords {
		if k == "" {
			return options{}, fmt.Errorf("keyword %d is empty; it would match every process", i+1)
		}
	}
	return options{sample: sample, timeout: timeout, keywords: keywords}, nil
}
