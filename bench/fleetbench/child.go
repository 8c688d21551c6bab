package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/inventory"
)

// sshdConfig lets one sshd take every server's connection at once: sshdtest's
// MaxStartups 100 (and OpenSSH's default 10:30:100) drops unauthenticated
// connections beyond it. LogLevel ERROR keeps sshd from logging every
// connection and session.
const sshdConfig = "MaxStartups 1000\nLogLevel ERROR"

// emptyHome is added to sshdConfig unless -real-home: sessions get an empty
// home directory, as a dedicated monitoring account would have. Otherwise
// bash sources the bench user's ~/.bashrc for every command sshd runs, which
// measures that file rather than the collector (root's on the development
// machine runs `pyenv init`: about 90 ms of CPU per session).
const emptyHome = "SetEnv HOME=%s"

// concurrency is the fleet's [schedule] concurrency and the ssh-cat
// baseline's: above the largest N measured, so every server starts at once.
const concurrency = 512

// A Result is what the child measured for one N.
type Result struct {
	N        int     `json:"n"`
	SampleMS float64 `json:"sample_ms"`
	Cold     Round   `json:"cold"`
	Warm     []Round `json:"warm"`
	// Reconnect is a round over new connections with the probe cached on
	// every server: a cold round without the upload.
	Reconnect Round `json:"reconnect"`
	SSHCat    Round `json:"ssh_cat"`
	// PeakRSSMiB is the child's VmHWM after the collector's rounds, before
	// the ssh-cat baseline.
	PeakRSSMiB float64  `json:"peak_rss_mib"`
	Errors     []string `json:"errors,omitempty"` // the first few distinct failures
}

// A Round is one round over all N servers.
type Round struct {
	WallMS float64 `json:"wall_ms"`
	// CPUMS is user+system CPU time: of the collector (this process) for the
	// fleet's rounds, of the ssh clients (reaped children) for ssh-cat.
	CPUMS float64 `json:"cpu_ms"`
	// MachineCPUMS is the whole machine's busy CPU time during the round
	// (/proc/stat): the collector or ssh clients, sshd, shells and probes.
	MachineCPUMS float64 `json:"machine_cpu_ms"`
	OK           int     `json:"ok"`
	Failed       int     `json:"failed"`
	Uploaded     int     `json:"uploaded"` // probes uploaded
	Reused       int     `json:"reused"`   // attempts over a kept connection
	// ListenOverflows counts connection attempts that found sshd's accept
	// queue full and were dropped (the SYN is retried a second later), from
	// TcpExt ListenOverflows in /proc/net/netstat.
	ListenOverflows int64 `json:"listen_overflows"`
}

// runChild measures one N and prints its Result as one JSON line.
func runChild(ctx context.Context, o options, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "fleetbench-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	config := sshdConfig
	if !o.realHome {
		home := filepath.Join(dir, "home")
		if err := os.Mkdir(home, 0o700); err != nil {
			return fmt.Errorf("empty home: %w", err)
		}
		config += "\n" + fmt.Sprintf(emptyHome, home)
	}
	srv, stop, err := startSSHD(o.sshdserve, config, stderr)
	if err != nil {
		return err
	}
	defer stop()

	probes := probebin.Embedded
	if o.probes != "" {
		if probes, err = probebin.Load(o.probes); err != nil {
			return err
		}
	}
	if _, err := probes.For("linux", runtime.GOARCH); err != nil {
		return fmt.Errorf("probe build: %w", err)
	}

	cache := filepath.Join(dir, "probe-cache")
	inv, err := inventory.Parse(strings.NewReader(inventoryTOML(o.n, srv, cache, true, o.sample)), "fleetbench.toml")
	if err != nil {
		return fmt.Errorf("bench inventory: %w", err)
	}
	shared := filepath.Join(cache, "shared")
	warmInv, err := inventory.Parse(strings.NewReader(inventoryTOML(o.n, srv, shared, false, o.sample)), "fleetbench.toml")
	if err != nil {
		return fmt.Errorf("bench inventory: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res := Result{N: o.n, SampleMS: ms(o.sample)}
	errs := map[string]bool{}
	note := func(e string) {
		if !errs[e] && len(errs) < 5 {
			errs[e] = true
			res.Errors = append(res.Errors, e)
		}
	}

	// The same construction as `collector collect` (collect.go).
	f := fleet.New(inv, fleet.Options{Probes: probes, Logger: logger, Concurrency: inv.Schedule.Concurrency, Splay: inv.Schedule.Splay})
	defer f.Close()
	res.Cold = fleetRound(ctx, f, inv.Servers, note)
	// Warm rounds run one probe file that the cold round uploaded, at one
	// path: N probes at N paths on this one machine would each count the
	// other N-1 as processes matching the keyword that every probe's
	// command line carries, work that no real server has to do. The
	// connections are kept: probe_dir is not a connection setting.
	if err := shareProbe(inv.Servers, shared); err != nil {
		return err
	}
	f.SetInventory(warmInv)
	stopProfile, err := startProfile(o.cpuprofile, o.n)
	if err != nil {
		return err
	}
	for range o.warm {
		res.Warm = append(res.Warm, fleetRound(ctx, f, warmInv.Servers, note))
	}
	stopProfile()
	res.PeakRSSMiB, err = peakRSSMiB()
	if err != nil {
		return err
	}
	f.Close()
	if err := ctx.Err(); err != nil {
		return err
	}

	// New connections to servers that have the probe: what the cold
	// round costs without the upload.
	f = fleet.New(warmInv, fleet.Options{Probes: probes, Logger: logger, Concurrency: warmInv.Schedule.Concurrency, Splay: warmInv.Schedule.Splay})
	res.Reconnect = fleetRound(ctx, f, warmInv.Servers, note)
	f.Close()
	if err := ctx.Err(); err != nil {
		return err
	}

	res.SSHCat = sshCatRound(ctx, srv, o.n, note)
	if err := ctx.Err(); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// fleetRound probes every server once and measures it.
func fleetRound(ctx context.Context, f *fleet.Fleet, servers []inventory.Server, note func(string)) Round {
	m := start()
	results := f.Probe(ctx, servers, nil)
	r := m.stop(syscall.RUSAGE_SELF)
	for _, res := range results {
		if res.Err != nil {
			r.Failed++
			note(fmt.Sprintf("fleet (%s): %v", res.Kind, res.Err))
			continue
		}
		r.OK++
		if res.Uploaded {
			r.Uploaded++
		}
		if res.Reused {
			r.Reused++
		}
	}
	return r
}

// shareProbe hard-links the first probe uploaded to one of servers into
// the directory to.
func shareProbe(servers []inventory.Server, to string) error {
	for _, s := range servers {
		files, err := filepath.Glob(filepath.Join(s.ProbeDir, "probe-*"))
		if err != nil || len(files) != 1 {
			continue // the cold round failed here, and says why
		}
		if err := os.MkdirAll(to, 0o700); err != nil {
			return fmt.Errorf("share the probe: %w", err)
		}
		if err := os.Link(files[0], filepath.Join(to, filepath.Base(files[0]))); err != nil {
			return fmt.Errorf("share the probe: %w", err)
		}
		return nil
	}
	return fmt.Errorf("share the probe: the cold round uploaded it nowhere")
}

// sshCatRound runs n plain `ssh host cat /proc/...` at once (at most
// concurrency), each over a new connection, and measures them.
func sshCatRound(ctx context.Context, srv sshdServer, n int, note func(string)) Round {
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		slots  = make(chan struct{}, concurrency)
		ok, no int
	)
	m := start()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			err := sshCat(ctx, srv)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				no++
				note(fmt.Sprintf("ssh-cat: %v", err))
				return
			}
			ok++
		}()
	}
	wg.Wait()
	r := m.stop(syscall.RUSAGE_CHILDREN)
	r.OK, r.Failed = ok, no
	return r
}

// sshCat reads /proc/stat, /proc/meminfo and /proc/loadavg with OpenSSH's
// client, verifying the host key, and checks that it got them.
func sshCat(ctx context.Context, srv sshdServer) error {
	cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null",
		"-i", srv.ClientKeyFile, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+srv.KnownHostsFile, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
		"-p", strconv.Itoa(srv.Port), "-l", srv.User, "127.0.0.1",
		"cat /proc/stat /proc/meminfo /proc/loadavg")
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(errOut.String()))
	}
	if !strings.HasPrefix(string(out), "cpu ") || !strings.Contains(string(out), "MemTotal:") {
		return fmt.Errorf("unexpected output %.80q", out)
	}
	return nil
}

// inventoryTOML is an inventory of n servers, srv-001 and on, all at srv.
// With perServer each has its own probe cache under probeDir, as separate
// machines would, so that a cold round uploads the probe to every one of
// them; otherwise they share probeDir.
func inventoryTOML(n int, srv sshdServer, probeDir string, perServer bool, sample time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[defaults]
user = %q
identity_file = %q
known_hosts = %q
sample = %q
timeout = "60s"
connect_timeout = "30s"

[schedule]
concurrency = %d
splay = "0s"
`, srv.User, srv.ClientKeyFile, srv.KnownHostsFile, sample.String(), concurrency)
	width := max(3, len(strconv.Itoa(n)))
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("srv-%0*d", width, i)
		dir := probeDir
		if perServer {
			dir = filepath.Join(probeDir, name)
		}
		fmt.Fprintf(&b, "\n[[server]]\nname = %q\naddress = %q\nprobe_dir = %q\n", name, srv.Addr, dir)
	}
	return b.String()
}

// sshdServer is the JSON line sshdserve prints.
type sshdServer struct {
	Addr           string `json:"addr"`
	Port           int    `json:"port"`
	User           string `json:"user"`
	ClientKeyFile  string `json:"client_key_file"`
	KnownHostsFile string `json:"known_hosts_file"`
}

// startSSHD runs sshdserve and reads its server line. stop closes its stdin,
// which stops sshd, and waits for it.
func startSSHD(bin, config string, stderr io.Writer) (srv sshdServer, stop func(), err error) {
	cmd := exec.Command(bin, "-config", config)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return srv, nil, fmt.Errorf("sshdserve: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return srv, nil, fmt.Errorf("sshdserve: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return srv, nil, fmt.Errorf("start sshdserve: %w", err)
	}
	stop = func() {
		in.Close()
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &srv)
	}
	if err != nil {
		stop()
		return srv, nil, fmt.Errorf("sshdserve did not start sshd: %w", err)
	}
	return srv, stop, nil
}

// startProfile starts a CPU profile into dir, when dir is set.
func startProfile(dir string, n int) (stop func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("warm-%d.pprof", n)))
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// A meter measures wall time, CPU time (getrusage) and the machine's busy
// CPU time (/proc/stat) from start to stop.
type meter struct {
	wall      time.Time
	self      time.Duration
	child     time.Duration
	machine   time.Duration
	overflows int64
}

func start() meter {
	return meter{wall: time.Now(), self: rusage(syscall.RUSAGE_SELF), child: rusage(syscall.RUSAGE_CHILDREN),
		machine: machineBusy(), overflows: listenOverflows()}
}

// stop returns the round so far, with the CPU time of who: RUSAGE_SELF or
// RUSAGE_CHILDREN.
func (m meter) stop(who int) Round {
	r := Round{WallMS: ms(time.Since(m.wall)), MachineCPUMS: ms(machineBusy() - m.machine), ListenOverflows: listenOverflows() - m.overflows}
	if who == syscall.RUSAGE_SELF {
		r.CPUMS = ms(rusage(who) - m.self)
	} else {
		r.CPUMS = ms(rusage(who) - m.child)
	}
	return r
}

// rusage returns user+system CPU time of who.
func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy returns the CPU time all CPUs spent neither idle nor waiting
// for I/O since boot, from the first line of /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	busy, err := parseBusy(line)
	if err != nil {
		return 0
	}
	return busy
}

// parseBusy parses /proc/stat's "cpu  user nice system idle iowait irq
// softirq steal ..." line, in USER_HZ (100 on Linux), into busy time.
func parseBusy(line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat line %.60q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		if i >= 8 { // guest and guest_nice are counted in user already
			break
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat field %d: %w", i+1, err)
		}
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond, nil
}

// listenOverflows returns TcpExt ListenOverflows of this network namespace,
// or 0 when it cannot be read.
func listenOverflows() int64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0
	}
	n, _ := parseNetstat(string(b), "TcpExt", "ListenOverflows")
	return n
}

// parseNetstat returns one counter of /proc/net/netstat, where each group is
// a line of names ("TcpExt: SyncookiesSent ...") followed by a line of values.
func parseNetstat(netstat, group, name string) (int64, error) {
	lines := strings.Split(netstat, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != group+":" || len(values) != len(names) || values[0] != group+":" {
			continue
		}
		for j, n := range names {
			if n == name {
				return strconv.ParseInt(values[j], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s %s in /proc/net/netstat", group, name)
}

// peakRSSMiB returns this process's peak resident set (VmHWM). Unlike
// getrusage's ru_maxrss it does not start from the parent's peak, which a
// child started with vfork inherits.
func peakRSSMiB() (float64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	return parseVmHWM(string(b))
}

func parseVmHWM(status string) (float64, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kib, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				break
			}
			return kib / 1024, nil
		}
	}
	return 0, fmt.Errorf("peak RSS: no VmHWM line in /proc/self/status")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the median of the rounds' values of field.
func median(rounds []Round, field func(Round) float64) float64 {
	if len(rounds) == 0 {
		return 0
	}
	v := make([]float64, len(rounds))
	for i, r := range rounds {
		v[i] = field(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
