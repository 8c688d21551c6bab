package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseBusy(t *testing.T) {
	tests := []struct {
		name, line string
		want       time.Duration
		wantErr    bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{name: "linux", line: "cpu  100 2 30 5000 40 1 6 0 7 0", want: 1390 * time.Millisecond},
		{name: "old kernel", line: "cpu 10 0 5 100 0", want: 150 * time.Millisecond},
		{name: "per cpu line", line: "cpu0 1 2 3 4 5 6 7 8", wantErr: true},
		{name: "garbage", line: "cpu  1 x 3 4 5 6", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBusy(tt.line)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseBusy(%q) = %v, %v; want %v, error %v", tt.line, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseVmHWM(t *testing.T) {
	got, err := parseVmHWM("Name:\tfleetbench\nVmPeak:\t 1300000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40000 kB\n")
	if err != nil || got != 50 {
		t.Errorf("parseVmHWM = %v, %v; want 50", got, err)
	}
	if _, err := parseVmHWM("Name:\tx\n"); err == nil {
		t.Error("parseVmHWM without VmHWM: no error")
	}
}

func TestParseNetstat(t *testing.T) {
	const netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 1543 1544\n" +
		"IpExt: InNoRoutes\nIpExt: 0\n"
	if got, err := parseNetstat(netstat, "TcpExt", "ListenOverflows"); err != nil || got != 1543 {
		t.Errorf("ListenOverflows = %d, %v; want 1543", got, err)
	}
	if _, err := parseNetstat(netstat, "TcpExt", "Nope"); err == nil {
		t.Error("unknown counter: no error")
	}
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if got := cpuModel(info); got != "AMD EPYC 7B13" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel("processor : 0\n"); got != "unknown" {
		t.Errorf("cpuModel without a model = %q", got)
	}
}

func TestMedian(t *testing.T) {
	wall := func(r Round) float64 { return r.WallMS }
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		var rounds []Round
		for _, v := range tt.in {
			rounds = append(rounds, Round{WallMS: v})
		}
		if got := median(rounds, wall); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestTargets(t *testing.T) {
	warm := func(wallMS, cpuMS float64) []Round {
		return []Round{{WallMS: wallMS, CPUMS: cpuMS, OK: 1}, {WallMS: wallMS, CPUMS: cpuMS, OK: 1}}
	}
	rep := report{Results: []Result{
		{N: 1, Warm: warm(1010, 1.5)},
		{N: 20, Cold: Round{WallMS: 4000, OK: 20}, Warm: warm(1600, 20)},
		{N: 100, Warm: warm(1500, 60)},
		{N: 500, Cold: Round{OK: 499, Failed: 1}, Warm: warm(9000, 200), PeakRSSMiB: 330},
	}}
	got := rep.targets()
	want := []struct{ measured, ratio, met string }{
		{"1.50 s", "0.75", "yes"},
		{"1.50 ms (N=1)", "0.75", "yes"},
		{"1 of 502 probes failed", "–", "no"},
		{"330 MiB", "1.10", "no"},
		{"4.00 s ÷ 1.60 s = 2.50×", "1.67", "no"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d targets, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Measured != w.measured || got[i].Ratio != w.ratio || got[i].Met != w.met {
			t.Errorf("target %q = %q, %q, %q; want %q, %q, %q", got[i].What, got[i].Measured, got[i].Ratio, got[i].Met, w.measured, w.ratio, w.met)
		}
	}

	none := report{}.targets()
	for _, tg := range none {
		if tg.Met != "not measured" {
			t.Errorf("target %q with no results: %q", tg.What, tg.Met)
		}
	}
}

func TestInventoryTOML(t *testing.T) {
	srv := sshdServer{Addr: "127.0.0.1:2222", Port: 2222, User: "mon", ClientKeyFile: "/k/id", KnownHostsFile: "/k/kh"}
	got := inventoryTOML(12, srv, "/tmp/cache", true, time.Second)
	for _, want := range []string{`user = "mon"`, `sample = "1s"`, "concurrency = 512", `splay = "0s"`,
		`name = "srv-001"`, `name = "srv-012"`, `probe_dir = "/tmp/cache/srv-012"`, `address = "127.0.0.1:2222"`} {
		if !strings.Contains(got, want) {
			t.Errorf("inventory lacks %s:\n%s", want, got)
		}
	}
	shared := inventoryTOML(2, srv, "/tmp/shared", false, time.Second)
	if strings.Count(shared, `probe_dir = "/tmp/shared"`) != 2 {
		t.Errorf("servers do not share the probe dir:\n%s", shared)
	}
}

func TestParseFlags(t *testing.T) {
	var stderr strings.Builder
	o, err := parseFlags([]string{"-n", "1, 10,500", "-warm", "2"}, &stderr)
	if err != nil || len(o.sizes) != 3 || o.sizes[2] != 500 || o.warm != 2 || o.sample != time.Second {
		t.Errorf("parseFlags = %+v, %v", o, err)
	}
	for _, args := range [][]string{{"-n", "0"}, {"-n", "a"}, {"-warm", "0"}, {"-child", "-n", "1,2", "-sshdserve", "x"}, {"extra"}} {
		if _, err := parseFlags(args, &stderr); err == nil {
			t.Errorf("parseFlags(%q): no error", args)
		}
	}
}
