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

func sample() Snapshot {
	return Snapshot{
		Version:       Version,
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
	want := sample()
	data := append(marshal(t, want), '\n') // as the probe prints it
	got, err := Decode(bytes.NewReader(data), 0)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("round trip =\n%+v\nwant\n%+v", *got, want)
	}
}

// TestDecodeProbeOutput decodes what the real probe printed on a test
// machine (go build ./probe; probe python bash > testdata/probe-output.json).
func TestDecodeProbeOutput(t *testing.T) {
	s, err := Decode(bytes.NewReader(readFile(t, "probe-output.json")), 0)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if s.Version != Version || s.Hostname == "" || s.Memory.Total == 0 || s.Disk.Path != "/" || s.CPU.LogicalCount == 0 {
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
			name:    "wrong version",
			input:   edit(t, func(m map[string]any) { m["version"] = 2 }),
			wantErr: "schema version 2, want 1",
		},
		{
			name:    "version as a string",
			input:   edit(t, func(m map[string]any) { m["version"] = "1" }),
			wantErr: "cannot unmarshal string",
		},
		{
			name:    "unknown top-level field",
			input:   edit(t, func(m map[string]any) { m["swap"] = 1 }),
			wantErr: `unknown field "swap"`,
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
