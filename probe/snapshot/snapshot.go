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

// Version is the schema version the probe writes and the collector accepts.
// Bump it on any change that an older reader would misread.
const Version = 1

// DefaultMaxBytes is the largest probe output Decode accepts by default.
// A snapshot is a few KiB; the cap exists so a broken or hostile target
// cannot make the collector buffer without bound.
const DefaultMaxBytes = 4 << 20

// A Snapshot is one reading of a host's resources, taken by the probe.
//
// Bytes are integers, percents are floats from 0 to 100. Each section carries
// its own Error when it could not be read; the other sections are still valid.
type Snapshot struct {
	Version       int       `json:"version"`
	Time          time.Time `json:"time"` // the probe's clock, RFC 3339
	Hostname      string    `json:"hostname"`
	UptimeSeconds uint64    `json:"uptime_seconds"`
	CPU           CPU       `json:"cpu"`
	Memory        Memory    `json:"memory"`
	Disk          Disk      `json:"disk"`
	Processes     Processes `json:"processes"`
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
	Keyword    string  `json:"keyword"`
	Count      int     `json:"count"`
	PIDs       []int32 `json:"pids"`
	RSSBytes   uint64  `json:"rss_bytes"`   // resident memory of the matched processes, summed
	CPUPercent float64 `json:"cpu_percent"` // of one CPU, summed over the sample window
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
// data, and any schema version other than Version.
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
	if *head.Version != Version {
		return nil, fmt.Errorf("decode snapshot: schema version %d, want %d (probe and collector from different releases)", *head.Version, Version)
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
	return &s, nil
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
