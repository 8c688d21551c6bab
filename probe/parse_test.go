package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// The inputs below are literal /proc text, trimmed from real hosts.

func TestParseProcStat(t *testing.T) {
	const text = `cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0
cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0
cpu1 1335397 30211 456432 13449815 5283 0 5318 0 24185 0
intr 1462898 0 0 0 0 0 0 0 0 0 0 0
ctxt 2876542
btime 1698000000
processes 52317
procs_running 3
procs_blocked 1
softirq 1299 0 1 0 0 0 0 0 0 0 1298
`
	got, err := parseProcStat([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{
		CPU:          cpuTimes{User: 10132153, Nice: 290696, System: 3084719, Idle: 46828483, Iowait: 16683, Irq: 0, Softirq: 25195, Steal: 0},
		LogicalCount: 2, Running: 3, Blocked: 1, HasRunQueue: true, BootTime: 1698000000, Forks: 52317,
	}
	if got != want {
		t.Errorf("parseProcStat =\n%+v\nwant\n%+v", got, want)
	}
	// A kernel of 2.6.11 had no steal column; one without procs_ lines
	// gives no run queue.
	got, err = parseProcStat([]byte("cpu 1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n"))
	if err != nil || got.CPU != (cpuTimes{1, 2, 3, 4, 5, 6, 7, 0}) || got.HasRunQueue {
		t.Errorf("old /proc/stat = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "intr 1\n", "cpu 1 x 3 4\n", "cpu 1 2\n", "cpu 1 2 3 4 5\nprocs_running -1\n"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) accepted it", bad)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	const text = `MemTotal:       16318412 kB
MemFree:         1125316 kB
MemAvailable:    9418232 kB
Buffers:          512076 kB
Cached:          7389092 kB
SwapCached:         1184 kB
Active:          8128496 kB
SReclaimable:     644452 kB
SwapTotal:       2097148 kB
SwapFree:        1048574 kB
HugePages_Total:       0
`
	m, err := parseMeminfo([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := memInfo{
		Total: 16318412 << 10, Free: 1125316 << 10, Available: 9418232 << 10, Buffers: 512076 << 10,
		Cached: 7389092 << 10, SReclaimable: 644452 << 10, SwapTotal: 2097148 << 10, SwapFree: 1048574 << 10,
		HasAvailable: true,
	}
	if m != want {
		t.Errorf("parseMeminfo =\n%+v\nwant\n%+v", m, want)
	}
	mem := m.memory()
	// As gopsutil: cached includes SReclaimable, used is the rest.
	wantUsed := uint64(16318412-1125316-512076-7389092-644452) << 10
	if mem.Cached != (7389092+644452)<<10 || mem.Used != wantUsed || mem.Available != 9418232<<10 || mem.UsedPercent != 40.74 {
		t.Errorf("memory = %+v, want used %d, 40.74 %%", mem, wantUsed)
	}
	// Before Linux 3.14 there is no MemAvailable.
	old, err := parseMeminfo([]byte("MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 200 kB\n"))
	if err != nil || old.memory().Available != 300<<10 {
		t.Errorf("old meminfo: %+v, %v; want available = cached + free", old.memory(), err)
	}
	if _, err := parseMeminfo([]byte("MemFree: 1 kB\n")); err == nil {
		t.Error("meminfo without MemTotal accepted")
	}
	if _, err := parseMeminfo([]byte("MemTotal: lots kB\n")); err == nil {
		t.Error("bad number accepted")
	}
}

func TestParseLoadavgUptime(t *testing.T) {
	l1, l5, l15, err := parseLoadavg([]byte("0.21 0.37 0.39 1/223 4711\n"))
	if err != nil || l1 != 0.21 || l5 != 0.37 || l15 != 0.39 {
		t.Errorf("parseLoadavg = %v %v %v, %v", l1, l5, l15, err)
	}
	if _, _, _, err := parseLoadavg([]byte("0.21\n")); err == nil {
		t.Error("short loadavg accepted")
	}
	up, err := parseUptime([]byte("350735.47 234388.90\n"))
	if err != nil || up != 350735.47 {
		t.Errorf("parseUptime = %v, %v", up, err)
	}
	if _, err := parseUptime([]byte("soon\n")); err == nil {
		t.Error("bad uptime accepted")
	}
}

func TestParseVmstat(t *testing.T) {
	in, out, err := parseVmstat([]byte("nr_free_pages 282000\npswpin 17\npswpout 4242\npgpgin 1\n"))
	if err != nil || in != 17 || out != 4242 {
		t.Errorf("parseVmstat = %d %d %v, want 17 4242", in, out, err)
	}
	if _, _, err := parseVmstat([]byte("nr_free_pages 1\n")); err == nil {
		t.Error("vmstat without pswpin accepted")
	}
}

func TestParsePSI(t *testing.T) {
	p, err := parsePSI([]byte("some avg10=1.53 avg60=0.87 avg300=0.40 total=4036221\nfull avg10=0.10 avg60=0.00 avg300=0.00 total=12345\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Some != (psiLine{Avg10: 1.53, Total: 4036221}) || p.Full == nil || *p.Full != (psiLine{Avg10: 0.10, Total: 12345}) {
		t.Errorf("parsePSI = %+v full %+v", p, p.Full)
	}
	// cpu before Linux 5.13 has no full line.
	p, err = parsePSI([]byte("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"))
	if err != nil || p.Full != nil {
		t.Errorf("cpu pressure without full = %+v, %v", p, err)
	}
	for _, bad := range []string{"", "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "some avg10=x total=1\n", "some avg60=1\n"} {
		if _, err := parsePSI([]byte(bad)); err == nil {
			t.Errorf("parsePSI(%q) accepted it", bad)
		}
	}
}

func TestDerivePressure(t *testing.T) {
	a := counters{PSI: [3]psiFile{{Some: psiLine{Total: 1_000_000}}, {Some: psiLine{Total: 0}, Full: &psiLine{Total: 0}}}}
	b := counters{PSI: [3]psiFile{{Some: psiLine{Avg10: 40, Total: 1_500_000}}, {Some: psiLine{Avg10: 2, Total: 100_000}, Full: &psiLine{Avg10: 1, Total: 50_000}}}}
	a.PSIErr[2] = errUnsupported
	b.PSIErr[2] = errUnsupportedIO
	p := derivePressure(a, b, 2)
	if p.CPU == nil || *p.CPU.SomeStallPercent != 25 || p.CPU.FullAvg10 != nil || p.CPU.FullStallPercent != nil || p.CPU.SomeAvg10 != 40 {
		t.Errorf("cpu = %+v, want 25 %% stalled over 2 s and no full", p.CPU)
	}
	if p.Memory == nil || *p.Memory.SomeStallPercent != 5 || *p.Memory.FullStallPercent != 2.5 || *p.Memory.FullAvg10 != 1 {
		t.Errorf("memory = %+v", p.Memory)
	}
	if p.IO != nil || !strings.HasPrefix(p.Error, "unsupported: ") {
		t.Errorf("io = %+v, error %q; want nil and unsupported", p.IO, p.Error)
	}
}

var errUnsupportedIO = errorf("%w: no /proc/pressure/io", errUnsupported)

func TestParseNetDev(t *testing.T) {
	const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 2776770   11307    0    0    0     0          0         0  2776770   11307    0    0    0     0       0          0
  eth0: 1215645    2751    0    0    0     0          0         0  1782404    4324    0    0    0   427       0          0
docker0:      10       1    0    0    0     0          0         0       20        2    0    0    0     0       0          0
`
	got, err := parseNetDev([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []ifCounters{
		{Name: "eth0", RxBytes: 1215645, RxPackets: 2751, TxBytes: 1782404, TxPackets: 4324},
		{Name: "docker0", RxBytes: 10, RxPackets: 1, TxBytes: 20, TxPackets: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseNetDev = %+v, want %+v", got, want)
	}
	if _, err := parseNetDev([]byte("  eth0: 1 2 3\n")); err == nil {
		t.Error("short line accepted")
	}
}

func TestDeriveNetwork(t *testing.T) {
	a := counters{Net: []ifCounters{{Name: "eth0", RxBytes: 1000, TxBytes: 500, RxPackets: 10, TxPackets: 5}}}
	b := counters{Net: []ifCounters{
		{Name: "eth0", RxBytes: 3000, TxBytes: 1500, RxPackets: 30, TxPackets: 15},
		{Name: "veth1", RxBytes: 100}, // appeared during the window
	}}
	n := deriveNetwork(a, b, 2)
	want := snapshot.Network{
		Interfaces: []snapshot.Interface{
			{Name: "eth0", RxBytesPerSecond: 1000, TxBytesPerSecond: 500, RxPacketsPerSecond: 10, TxPacketsPerSecond: 5},
			{Name: "veth1", RxBytesPerSecond: 50},
		},
		RxBytesPerSecond: 1050, TxBytesPerSecond: 500,
	}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("deriveNetwork =\n%+v\nwant\n%+v", n, want)
	}
	// Many interfaces: the busiest are listed, the totals count all.
	var many counters
	for i := range snapshot.MaxInterfaces + 4 {
		many.Net = append(many.Net, ifCounters{Name: "veth" + string(rune('a'+i)), RxBytes: uint64(i)})
	}
	n = deriveNetwork(counters{}, many, 1)
	if len(n.Interfaces) != snapshot.MaxInterfaces || n.Omitted != 4 || n.Interfaces[0].Name != "vethe" {
		t.Errorf("many interfaces: %d listed from %s, %d omitted", len(n.Interfaces), n.Interfaces[0].Name, n.Omitted)
	}
}

func TestCountTCPStates(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   116        0 23116 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C5A 0100007F:0CEA 01 00000000:00000000 00:00000000 00000000  1000        0 85623 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:9C5C 0100007F:0CEA 06 00000000:00000000 03:00000F5C 00000000     0        0 0 3 0000000000000000
`
	var counts [12]int
	if err := countTCPStates([]byte(tcp), &counts); err != nil {
		t.Fatal(err)
	}
	m := tcpStateMap(&counts)
	if m["listen"] != 1 || m["established"] != 1 || m["time_wait"] != 1 || len(m) != 11 || m["close_wait"] != 0 {
		t.Errorf("states = %v", m)
	}
	for _, bad := range []string{"header\n 0: a b 0C c\n", "header\n 0: a b ZZ c\n", "header\n 0: a\n"} {
		if err := countTCPStates([]byte(bad), &counts); err == nil {
			t.Errorf("countTCPStates(%q) accepted it", bad)
		}
	}
}

func TestParseFileNr(t *testing.T) {
	a, m, err := parseFileNr([]byte("7264\t0\t9223372036854775807\n"))
	if err != nil || a != 7264 || m != 9223372036854775807 {
		t.Errorf("parseFileNr = %d %d %v", a, m, err)
	}
	if _, _, err := parseFileNr([]byte("1 2\n")); err == nil {
		t.Error("short file-nr accepted")
	}
}

func TestParseMountinfoAndLocal(t *testing.T) {
	const text = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 28 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
28 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw,errors=remount-ro
30 28 0:26 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=1634460k,mode=755
40 28 8:1 / /boot rw,relatime shared:30 - ext4 /dev/sda1 rw
41 28 0:40 / /srv/my\040data rw,relatime shared:31 - btrfs /dev/sdb rw,subvol=/
42 28 0:40 /@home /home rw,relatime shared:32 - btrfs /dev/sdb rw,subvol=/@home
43 28 0:45 / /mnt/nfs rw,relatime shared:33 - nfs4 server:/export rw
44 28 8:1 /var/lib/x /var/lib/bound rw,relatime shared:30 - ext4 /dev/sda1 rw
45 28 0:50 / /snap/core/1 ro,nodev,relatime shared:34 - squashfs /dev/loop0 ro
46 40 8:17 / /boot rw,relatime shared:35 - vfat /dev/sdc1 rw
`
	mounts, err := parseMountinfo([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 11 || mounts[5].Point != "/srv/my data" || mounts[2].Source != "/dev/mapper/vg-root" || mounts[2].Type != "ext4" {
		t.Fatalf("parseMountinfo = %+v", mounts)
	}
	var got []string
	for _, m := range localFilesystems(mounts) {
		got = append(got, m.Point+" "+m.Type)
	}
	// /boot mounted over by vfat; btrfs once at the mount of its root;
	// the ext4 bind mount of /dev/sda1 is the same file system as the
	// (hidden) /boot, so it is reported for it; nfs, squashfs and pseudo
	// file systems are left out.
	want := []string{"/ ext4", "/boot vfat", "/srv/my data btrfs", "/var/lib/bound ext4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("localFilesystems = %q, want %q", got, want)
	}
	overlay, _ := parseMountinfo([]byte("1 0 0:60 / / rw - overlay overlay rw,lowerdir=/x\n2 1 0:61 / /x rw - overlay overlay rw\n"))
	if l := localFilesystems(overlay); len(l) != 1 || l[0].Point != "/" {
		t.Errorf("overlay mounts = %+v, want only the one at /", l)
	}
	if _, err := parseMountinfo([]byte("22 28 0:21 / /sys rw\n")); err == nil {
		t.Error("mountinfo line without separator accepted")
	}
}

func TestParsePidStat(t *testing.T) {
	const text = "4711 (python3 (crawl) x) S 1 4711 4711 0 -1 4194560 3245 0 12 0 1500 250 0 0 20 0 7 0 123456 1234567890 5120 18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parsePidStat([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := pidStat{Comm: "python3 (crawl) x", State: 'S', PPID: 1, Ticks: 1750, Threads: 7, Start: 123456, RSSPages: 5120}
	if got != want {
		t.Errorf("parsePidStat =\n%+v\nwant\n%+v", got, want)
	}
	kthread := "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 20 0 1 0 1 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0\n"
	if k, err := parsePidStat([]byte(kthread)); err != nil || !k.Kernel || k.Ticks != 3 {
		t.Errorf("kthreadd = %+v, %v; want a kernel thread", k, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2 3\n", "1 x S\n", "1 (x) S 1 1 1 0 -1 y 0 0 0 0 1 1 0 0 20 0 1 0 1 0 0\n"} {
		if _, err := parsePidStat([]byte(bad)); err == nil {
			t.Errorf("parsePidStat(%q) accepted it", bad)
		}
	}
}

func TestParseStatusUIDAndPasswd(t *testing.T) {
	uid, err := parseStatusUID([]byte("Name:\tpython3\nState:\tS (sleeping)\nUid:\t1001\t1001\t1001\t1001\nGid:\t1001\t1001\t1001\t1001\n"))
	if err != nil || uid != "1001" {
		t.Errorf("parseStatusUID = %q, %v", uid, err)
	}
	if _, err := parseStatusUID([]byte("Name:\tx\n")); err == nil {
		t.Error("status without Uid accepted")
	}
	want := map[string]string{"0": "", "1001": "", "4242": ""}
	parsePasswd([]byte("root:x:0:0:root:/root:/bin/bash\n# comment\ncrawl:x:1001:1001::/home/crawl:/bin/sh\nalias:x:1001:1001::/:/bin/sh\n"), want)
	if !reflect.DeepEqual(want, map[string]string{"0": "root", "1001": "crawl", "4242": ""}) {
		t.Errorf("parsePasswd = %v", want)
	}
}

func TestCommands(t *testing.T) {
	if got := cmdlineString([]byte("python3\x00crawl.py\x00--site\x00a b\x00")); got != "python3 crawl.py --site a b" {
		t.Errorf("cmdlineString = %q", got)
	}
	if got := cmdlineString([]byte("nginx: worker process")); got != "nginx: worker process" {
		t.Errorf("cmdlineString of a retitled process = %q", got)
	}
	tests := []struct{ in, want string }{
		{"python3 crawl.py", "python3 crawl.py"},
		{"evil\x1b[31mred\x07\n", "evil[31mred"},
		{strings.Repeat("a", 100), strings.Repeat("a", 77) + "…"},
		{strings.Repeat("é", 50), strings.Repeat("é", 38) + "…"},
		{"bad \xff utf8", "bad  utf8"},
		{"sshd: root" + strings.Repeat(" ", 60), "sshd: root"},
	}
	for _, tt := range tests {
		got := shortCommand(tt.in, 80)
		if got != tt.want || len(got) > 80 {
			t.Errorf("shortCommand(%q) = %q (%d bytes), want %q", tt.in, got, len(got), tt.want)
		}
	}
}

func TestAppendPIDs(t *testing.T) {
	// linux_dirent64 records of 32 bytes each.
	rec := func(name string) []byte {
		b := make([]byte, 32)
		b[16] = 32
		copy(b[19:], name)
		return b
	}
	buf := append(append(append(rec("123"), rec("self")...), rec("4194304")...), rec(".")...)
	if got := appendPIDs(nil, buf); !reflect.DeepEqual(got, []int32{123, 4194304}) {
		t.Errorf("appendPIDs = %v, want [123 4194304]", got)
	}
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
