package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/probetest"
	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/inventory"
)

// cpuTime returns this process's user+system CPU time: the collector's, not
// sshd's or the probes' (other processes).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWatch measures the collector's CPU in watch mode at 1 s
// resolution: n servers (all the loopback sshd, each its own connection and
// watching probe), on the real clock (keepalives every 15 s). One iteration
// is one tick over all of them, a second or more after the last (so that
// each interval holds samples); the CPU is counted during the ticks, and
// separately over an idle stretch between ticks with every probe watching.
// Reported:
//
//	cpu-ms/snapshot      collector CPU per server per tick
//	idle-cpu-ms/server/s collector CPU per server per second between ticks,
//	                     over the process's own (nearly all of it the SSH
//	                     keepalives, one per connection every 15 s)
//	cpu-ms/server/s@10s  per server per second at a 10 s interval: the two above
//	cpu-ms/server/s@60s  the same at the default one-minute interval
//	oneshot-cpu-ms/snapshot  a one-shot probe over the kept connection, for comparison
//	process-idle-cpu-ms/s    the test process idle before any connection (not per server)
//
// go test -run '^$' -bench Watch -benchtime 10x ./collector/fleet
func BenchmarkWatch(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) { benchWatch(b, n) })
	}
}

func benchWatch(b *testing.B, n int) {
	home := b.TempDir()
	// As bench/fleetbench: every handshake at once, quiet logs, and an empty
	// home so that no ~/.bashrc runs per session.
	srv := sshdtest.Start(b, sshdtest.WithConfig("MaxStartups 1000\nLogLevel ERROR\nSetEnv HOME="+home))
	var servers strings.Builder
	for i := range n {
		fmt.Fprintf(&servers, "\n[[server]]\nname = \"s%03d\"\naddress = %q\nkeywords = [\"python\"]\n", i, srv.Addr)
	}
	text := fmt.Sprintf(`
[defaults]
user = %q
identity_file = %q
known_hosts = %q
probe_dir = %q
sample = "1s"
timeout = "2m"
connect_timeout = "1m"
[schedule]
cron = "@every 10s"
resolution = "1s"
`, srv.User, srv.ClientKeyFile, srv.KnownHostsFile, filepath.Join(home, "probe-cache")) + servers.String()
	inv, err := inventory.Parse(strings.NewReader(text), "servers.toml")
	if err != nil {
		b.Fatal(err)
	}
	// The process's own idle cost (runtime, test framework), before any
	// connection: the idle cost per server is what comes on top of it. The
	// garbage of an earlier run is collected and returned first, as it is
	// before the idle stretch measured below.
	const idle = 10 * time.Second
	debug.FreeOSMemory()
	before := cpuTime(b)
	time.Sleep(idle)
	baseCPU := cpuTime(b) - before

	f := New(inv, Options{Probes: probetest.Set(b), Logger: slog.New(slog.DiscardHandler), Concurrency: 512, Watch: true})
	defer f.Close()
	ctx := context.Background()
	tick := func() {
		for _, r := range f.Probe(ctx, inv.Servers, nil) {
			if r.Err != nil {
				b.Fatalf("%s: %v", r.Server, r.Err)
			}
		}
	}

	// The first tick probes once (uploading the probe) and starts the
	// watching probes; the second reads a first interval from each.
	tick()
	if got := len(f.Watching()); got != n {
		b.Fatalf("%d servers watched, want %d", got, n)
	}
	time.Sleep(1100 * time.Millisecond)
	tick()

	// Idle: every probe watching, the collector waiting for the next tick.
	debug.FreeOSMemory()
	before = cpuTime(b)
	time.Sleep(idle)
	idleCPU := cpuTime(b) - before - baseCPU

	b.ResetTimer()
	var tickCPU time.Duration
	for range b.N {
		b.StopTimer()
		time.Sleep(1100 * time.Millisecond) // an interval with a sample or more
		b.StartTimer()
		before := cpuTime(b)
		tick()
		tickCPU += cpuTime(b) - before
	}
	b.StopTimer()

	// The one-shot probe over the same kept connections, for comparison.
	f.watch = false
	f.stopWatch(f.Watching()...)
	tick() // the first one-shot round after the watches ended
	var oneShotCPU time.Duration
	const oneShotRounds = 3
	for range oneShotRounds {
		before := cpuTime(b)
		tick()
		oneShotCPU += cpuTime(b) - before
	}

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	perSnapshot := ms(tickCPU) / float64(b.N*n)
	idlePerServerSecond := ms(idleCPU) / float64(n) / idle.Seconds()
	b.ReportMetric(perSnapshot, "cpu-ms/snapshot")
	b.ReportMetric(idlePerServerSecond, "idle-cpu-ms/server/s")
	b.ReportMetric(perSnapshot/10+idlePerServerSecond, "cpu-ms/server/s@10s")
	b.ReportMetric(perSnapshot/60+idlePerServerSecond, "cpu-ms/server/s@60s")
	b.ReportMetric(ms(oneShotCPU)/float64(oneShotRounds*n), "oneshot-cpu-ms/snapshot")
	b.ReportMetric(ms(baseCPU)/idle.Seconds(), "process-idle-cpu-ms/s")
}
