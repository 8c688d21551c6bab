package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// sample returns a version-2 snapshot with every section set.
func sample() Snapshot {
	s := sampleV1()
	s.Version = Version
	s.SampleSeconds = 1
	s.ProcessCPUSeconds = 61.02
	s.Processes.Matched[0].Threads = 6
	s.Processes.Matched[0].FDs = 40
	s.Processes.Matched[0].FDsUnreadable = 1
	s.Processes.Matched[0].PIDsOmitted = 3
	s.Processes.Matched[0].Heaviest = &Member{PID: 99, RSSBytes: 200 << 20, CPUPercent: 80.5, Command: "python3 crawl.py"}
	s.Swap = &Swap{Total: 2 << 30, Used: 1 << 30, UsedPercent: 50, PagesInPerSecond: 1.5, PagesOutPerSecond: 20}
	s.Pressure = &Pressure{
		CPU:    &PSI{SomeAvg10: 12.5, SomeStallPercent: ptr(14.25)},
		Memory: &PSI{SomeAvg10: 1, FullAvg10: ptr(0.5), SomeStallPercent: ptr(2.0), FullStallPercent: ptr(1.0)},
		IO:     &PSI{Error: "read /proc/pressure/io: permission denied"},
	}
	s.RunQueue = &RunQueue{Running: 3, Blocked: 1}
	s.Network = &Network{
		Interfaces:       []Interface{{Name: "eth0", RxBytesPerSecond: 1000, TxBytesPerSecond: 2000, RxPacketsPerSecond: 10, TxPacketsPerSecond: 20}},
		RxBytesPerSecond: 1000, TxBytesPerSecond: 2000,
	}
	s.Sockets = &Sockets{TCP: map[string]int{"established": 12, "listen": 3}}
	s.FileDescriptors = &FileDescriptors{Allocated: 1024, Max: 1 << 20}
	s.Top = &Top{
		ByCPU: []Proc{{PID: 99, User: "crawl", Name: "python3", Command: "python3 crawl.py", CPUPercent: 80.5, RSSBytes: 200 << 20}},
		ByRSS: []Proc{{PID: 7, User: "1001", Name: "java", Command: "java -jar x.jar", CPUPercent: 1, RSSBytes: 1 << 30}},
	}
	s.Filesystems = &Filesystems{Mounts: []Filesystem{
		{Path: "/", Device: "/dev/sda1", Type: "ext4", Total: 100 << 30, Used: 40 << 30, Free: 60 << 30, UsedPercent: 40,
			Inodes: 1000, InodesUsed: 250, InodesUsedPercent: 25},
		{Path: "/data", Device: "/dev/sdb", Type: "xfs", Error: "statfs /data: timed out after 20s"},
	}, Omitted: 2}
	at := s.Time.Add(-30 * time.Second)
	s.Interval = &Interval{
		Start: s.Time.Add(-time.Minute), End: s.Time, ResolutionSeconds: 1, Samples: 60,
		CPU:             &Stat{Max: 99, Mean: 40, MaxAt: at},
		Memory:          &Stat{Max: 30, Mean: 25, MaxAt: at.Add(time.Second)},
		Load1:           &Stat{Max: 3, Mean: 1.5, MaxAt: at},
		Disk:            &Stat{Max: 40, Mean: 40, MaxAt: at},
		PressureCPU:     &Stat{Max: 50, Mean: 10, MaxAt: at},
		Keywords:        []KeywordStat{{Keyword: "python", Stat: Stat{Max: 3, Mean: 2.5, MaxAt: at}}},
		MatchedAtCPUMax: &MatchedAt{Keywords: []KeywordCount{{Keyword: "python", Count: 3}}, MatchedTotal: 3},
		Error:           "network: read /proc/net/dev: no such file",
	}
	return s
}

// sampleV1 returns a snapshot as version 1 had it.
func sampleV1() Snapshot {
	return Snapshot{
		Version:       1,
		Time:          time.Date(2025, 6, 1, 12, 30, 0, 123456789, time.UTC),
		Hostname:      "web1",
		UptimeSeconds: 86400,
		CPU:           CPU{Count: 4, LogicalCount: 8, Percent: 37.5, Load1: 1.25, Load5: 0.75, Load15: 0.5},
		Memory: Memory{
			Total: 16 << 30, Used: 4 << 30, Free: 2 << 30, Available: 12 << 30,
			Buffers: 1 << 20, Cached: 8 << 30, UsedPercent: 25,
		},
		Disk: Disk{Path: "/", Total: 100 << 30, Used: 40 << 30, Free: 60 << 30, UsedPercent: 40},
		Processes: Processes{
			Total: 321,
			Matched: []Match{
				{Keyword: "python", Count: 2, PIDs: []int32{42, 99}, RSSBytes: 300 << 20, CPUPercent: 120.5},
				{Keyword: "x'; rm -rf /; '", Count: 0, PIDs: []int32{}},
			},
			MatchedTotal: 2,
			Error:        "",
		},
		Error: "read uptime: permission denied",
	}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// edit returns the sample snapshot as JSON after change has edited it as a
// generic object, for fields the Snapshot type cannot express.
func edit(t *testing.T, change func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(marshal(t, sample()), &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	return marshal(t, m)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRoundTrip(t *testing.T) {
	for name, want := range map[string]Snapshot{"version 2": sample(), "version 1": sampleV1()} {
		t.Run(name, func(t *testing.T) {
			data := append(marshal(t, want), '\n') // as the probe prints it
			got, err := Decode(bytes.NewReader(data), 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("round trip =\n%+v\nwant\n%+v", *got, want)
			}
		})
	}
}

// TestVersion1HasNoNewFields checks that a version-1 snapshot marshals
// without any field of version 2, so the sections are true additions.
func TestVersion1HasNoNewFields(t *testing.T) {
	data := string(marshal(t, sampleV1()))
	for _, f := range []string{"sample_seconds", "process_cpu_seconds", "swap", "pressure", "run_queue", "network", "sockets",
		"file_descriptors", "top", "filesystems", "interval", "threads", "fds", "heaviest", "pids_omitted"} {
		if strings.Contains(data, `"`+f+`"`) {
			t.Errorf("a version-1 snapshot marshals with %q: %s", f, data)
		}
	}
}

// TestDecodeProbeOutput decodes what a version-1 probe printed on a test
// machine (go build ./probe; probe python bash > testdata/probe-output.json):
// stored snapshots of version 1 keep decoding.
func TestDecodeProbeOutput(t *testing.T) {
	s, err := Decode(bytes.NewReader(readFile(t, "probe-output.json")), 0)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if s.Swap != nil || s.Top != nil || s.Interval != nil || s.SampleSeconds != 0 {
		t.Errorf("version-1 snapshot decoded with version-2 sections: %+v", s)
	}
	if s.Version != 1 || s.Hostname == "" || s.Memory.Total == 0 || s.Disk.Path != "/" || s.CPU.LogicalCount == 0 {
		t.Errorf("decoded %+v, want a filled snapshot", s)
	}
	if s.Processes.Count("bash") == 0 || s.Processes.Count("python") != 0 || s.Processes.Count("absent") != 0 {
		t.Errorf("counts: bash %d python %d absent %d, want >0, 0, 0",
			s.Processes.Count("bash"), s.Processes.Count("python"), s.Processes.Count("absent"))
	}
	for _, e := range []string{s.Error, s.CPU.Error, s.Memory.Error, s.Disk.Error, s.Processes.Error} {
		if e != "" {
			t.Errorf("section error %q in a clean run", e)
		}
	}
}

// TestDecodeProbeTimeout decodes a real probe run whose deadline passed
// before the sample window ended (probe -sample 10s -timeout 200ms).
func TestDecodeProbeTimeout(t *testing.T) {
	s, err := Decode(bytes.NewReader(readFile(t, "probe-timeout.json")), 0)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !strings.Contains(s.CPU.Error, "timed out") || !strings.Contains(s.Processes.Error, "timed out") {
		t.Errorf("cpu.error %q, processes.error %q; want both timed out", s.CPU.Error, s.Processes.Error)
	}
	if s.Memory.Error != "" || s.Memory.Total == 0 {
		t.Errorf("memory = %+v, want it read", s.Memory)
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := marshal(t, sample())
	tests := []struct {
		name    string
		input   []byte
		max     int64
		wantErr string // substring of the message
		wantIs  error  // when set, checked with errors.Is
	}{
		{name: "empty", input: nil, wantErr: "empty output"},
		{name: "only whitespace", input: []byte(" \n\t\n"), wantErr: "empty output"},
		{name: "shell banner", input: []byte("Welcome to Ubuntu\n"), wantErr: `output starts "Welcome to Ubuntu\n"`},
		{name: "banner before the snapshot", input: append([]byte("Last login: today\n"), valid...), wantErr: `output starts "Last login`},
		{name: "truncated", input: valid[:len(valid)/2], wantErr: "unexpected EOF"},
		{name: "not an object", input: []byte(`[1, 2]`), wantErr: "cannot unmarshal array"},
		{name: "null", input: []byte("null"), wantErr: "no version field"},
		{
			name:    "missing version",
			input:   edit(t, func(m map[string]any) { delete(m, "version") }),
			wantErr: "no version field",
		},
		{
			name:    "newer version",
			input:   edit(t, func(m map[string]any) { m["version"] = 3 }),
			wantErr: "schema version 3, want 1 to 2",
		},
		{
			name:    "version 0",
			input:   edit(t, func(m map[string]any) { m["version"] = 0 }),
			wantErr: "schema version 0, want 1 to 2",
		},
		{
			name:    "version 1 with a section of version 2",
			input:   edit(t, func(m map[string]any) { m["version"] = 1 }),
			wantErr: `field "sample_seconds" is not in schema version 1`,
		},
		{
			name:    "version 1 with the span of per-process cpu",
			input:   edit(t, func(m map[string]any) { delete(m, "sample_seconds"); m["version"] = 1 }),
			wantErr: `field "process_cpu_seconds" is not in schema version 1`,
		},
		{
			name: "version 1 with a group field of version 2",
			input: edit(t, func(m map[string]any) {
				for _, k := range []string{"sample_seconds", "process_cpu_seconds", "swap", "pressure", "run_queue", "network", "sockets", "file_descriptors", "top", "filesystems", "interval"} {
					delete(m, k)
				}
				m["version"] = 1
			}),
			wantErr: `field "pids_omitted" is not in schema version 1`,
		},
		{
			name:    "unknown field in a new section",
			input:   edit(t, func(m map[string]any) { m["swap"].(map[string]any)["zswap"] = 1 }),
			wantErr: `unknown field "zswap"`,
		},
		{
			name: "unknown field in an interval stat",
			input: edit(t, func(m map[string]any) {
				m["interval"].(map[string]any)["cpu"].(map[string]any)["min"] = 1
			}),
			wantErr: `unknown field "min"`,
		},
		{
			name:    "version as a string",
			input:   edit(t, func(m map[string]any) { m["version"] = "1" }),
			wantErr: "cannot unmarshal string",
		},
		{
			name:    "unknown top-level field",
			input:   edit(t, func(m map[string]any) { m["temperature"] = 1 }),
			wantErr: `unknown field "temperature"`,
		},
		{
			name:    "unknown field in a section",
			input:   edit(t, func(m map[string]any) { m["cpu"].(map[string]any)["temperature"] = 70 }),
			wantErr: `unknown field "temperature"`,
		},
		{
			name:    "missing time",
			input:   edit(t, func(m map[string]any) { delete(m, "time") }),
			wantErr: "no time",
		},
		{
			name:    "bad time",
			input:   edit(t, func(m map[string]any) { m["time"] = "yesterday" }),
			wantErr: "parsing time",
		},
		{name: "trailing object", input: append(append([]byte{}, valid...), []byte("\n{}")...), wantErr: "trailing data"},
		{name: "trailing garbage", input: append(append([]byte{}, valid...), []byte("\nrm: cannot remove")...), wantErr: "trailing data"},
		{name: "two snapshots", input: append(append(append([]byte{}, valid...), '\n'), valid...), wantErr: "trailing data"},
		{name: "too large", input: valid, max: int64(len(valid)) - 1, wantIs: ErrTooLarge, wantErr: "too large"},
		{name: "too large by default", input: bytes.Repeat([]byte(" "), DefaultMaxBytes+1), wantIs: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode(bytes.NewReader(tt.input), tt.max)
			if err == nil {
				t.Fatalf("Decode = %+v, want an error", s)
			}
			if s != nil {
				t.Errorf("Decode returned a snapshot along with %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Decode error = %q, want it to contain %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Decode error = %v, want errors.Is %v", err, tt.wantIs)
			}
			if tt.wantIs == nil && errors.Is(err, ErrTooLarge) {
				t.Errorf("Decode error = %v, which is ErrTooLarge", err)
			}
		})
	}
}

func TestDecodeLimit(t *testing.T) {
	valid := marshal(t, sample())
	tests := []struct {
		name string
		max  int64
	}{
		{"exactly at the limit", int64(len(valid))},
		{"default limit", 0},
		{"negative means default", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(bytes.NewReader(valid), tt.max); err != nil {
				t.Errorf("Decode(%d bytes, max %d): %v", len(valid), tt.max, err)
			}
		})
	}
}

func TestUnmarshalMatchesDecode(t *testing.T) {
	valid := marshal(t, sample())
	s, err := Unmarshal(valid)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(*s, sample()) {
		t.Errorf("Unmarshal = %+v, want %+v", *s, sample())
	}
	if _, err := Unmarshal([]byte("Welcome to Ubuntu\n")); err == nil {
		t.Error("Unmarshal accepted a shell banner")
	}
}

func TestFreePercent(t *testing.T) {
	tests := []struct {
		name string
		m    Memory
		want float64
	}{
		{"quarter available", Memory{Total: 400, Available: 100}, 25},
		{"all available", Memory{Total: 400, Available: 400}, 100},
		{"unread memory", Memory{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.FreePercent(); got != tt.want {
				t.Errorf("FreePercent = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDecodeProbeOutputV2 decodes what the version-2 probe printed on a test
// machine: one snapshot (probe -sample 1s -- python bash >
// testdata/probe-output-v2.json), one of watch mode ((sleep 2.2; echo) |
// probe -watch -resolution 500ms -- python bash > testdata/probe-watch-v2.json),
// and one measured from the state of a run 2 s before (probe -sample 1s
// -state st -- python bash; sleep 2; the same > testdata/probe-state-v2.json).
func TestDecodeProbeOutputV2(t *testing.T) {
	for _, name := range []string{"probe-output-v2.json", "probe-watch-v2.json", "probe-state-v2.json"} {
		t.Run(name, func(t *testing.T) {
			s, err := Decode(bytes.NewReader(readFile(t, name)), 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if s.Version != 2 || s.SampleSeconds <= 0 || s.Swap == nil || s.Pressure == nil || s.RunQueue == nil ||
				s.Network == nil || s.Sockets == nil || s.FileDescriptors == nil || s.Top == nil || s.Filesystems == nil {
				t.Errorf("decoded %+v, want every section of version 2", s)
			}
			if s.Processes.Count("bash") == 0 || len(s.Top.ByRSS) == 0 || len(s.Filesystems.Mounts) == 0 || s.Sockets.TCP["listen"] == 0 {
				t.Errorf("decoded %+v, want a filled snapshot", s)
			}
			for _, e := range []string{s.Error, s.CPU.Error, s.Memory.Error, s.Disk.Error, s.Processes.Error, s.Swap.Error,
				s.Pressure.Error, s.RunQueue.Error, s.Network.Error, s.Sockets.Error, s.FileDescriptors.Error, s.Top.Error, s.Filesystems.Error} {
				if e != "" {
					t.Errorf("section error %q in a clean run", e)
				}
			}
			if state := name == "probe-state-v2.json"; state != (s.ProcessCPUSeconds > s.SampleSeconds) {
				t.Errorf("process_cpu_seconds = %v, sample_seconds %v; want more than the window only when measured from a state", s.ProcessCPUSeconds, s.SampleSeconds)
			}
			watch := name == "probe-watch-v2.json"
			if iv := s.Interval; watch != (iv != nil) {
				t.Errorf("interval = %+v, want one only in watch mode", iv)
			} else if watch && (iv.Samples < 1 || iv.CPU == nil || iv.MatchedAtCPUMax == nil || len(iv.Keywords) != 2 || iv.Error != "") {
				t.Errorf("interval = %+v, want samples and their figures", iv)
			}
		})
	}
}
