package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// TestSpoolCorruptLines replays a hand-written spool with a broken line, a
// result of an unknown kind and a last line cut short: each is reported
// with its line number, kept aside, and skipped; the rest is replayed.
func TestSpoolCorruptLines(t *testing.T) {
	ctx := context.Background()
	input, err := os.ReadFile(filepath.Join("testdata", "spool-corrupt.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "spool"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spool", "results.jsonl"), input, 0o600); err != nil {
		t.Fatal(err)
	}
	s, logs := openTest(t, Config{DataDir: dir})

	n, err := s.Replay(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Replay = %d, %v; want 3 results, nil", n, err)
	}
	lines := strings.SplitAfter(string(input), "\n")
	if err := containsAll(logs.String(),
		"line=2", "line=4", "line=6",
		"decode: unexpected EOF", `error kind \"bogus\"`, "truncated line",
	); err != nil {
		t.Errorf("log: %v", err)
	}
	rejected, err := os.ReadFile(filepath.Join(dir, "spool", "rejected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if want := lines[1] + lines[3] + lines[5] + "\n"; string(rejected) != want {
		t.Errorf("rejected.jsonl:\n%s\nwant lines 2, 4 and 6:\n%s", rejected, want)
	}

	if got := count(t, s, snapshotsName, nil); got != 2 {
		t.Errorf("%d snapshots stored, want 2", got)
	}
	if got := count(t, s, attemptsName, bson.D{{Key: "server", Value: "web2"}, {Key: "kind", Value: "timeout"}}); got != 1 {
		t.Errorf("%d timeouts of web2 stored, want 1", got)
	}
	latest, err := s.Latest(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if !latest.At.Equal(mustTime(t, "2024-05-01T10:01:00Z")) || latest.Snapshot.CPU.Percent != 61.25 || latest.Duration != 790*time.Millisecond {
		t.Errorf("Latest(web1) = %+v, want line 5's snapshot", latest)
	}
	if s.spool.pending() {
		t.Error("spool still pending after replay")
	}
	if fi, err := os.Stat(s.spool.path); err != nil || fi.Size() != 0 {
		t.Errorf("spool after replay: %v, %v; want an empty file", fi, err)
	}
}

// TestSpoolMark resumes a replay from the mark a crashed replay left, and
// replays from the start when the mark cannot be trusted.
func TestSpoolMark(t *testing.T) {
	ctx := context.Background()
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	var results []Result
	for i := 0; i < 5; i++ {
		results = append(results, snapResult("web1", t0.Add(time.Duration(i)*time.Minute), reading{cpu: float64(i)}))
	}
	// The spool as Write leaves it.
	logger, _ := testLogger(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	sp, err := openSpool(spoolDir, DefaultSpoolMax, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.append(results); err != nil {
		t.Fatal(err)
	}
	sp.close()
	content, err := os.ReadFile(sp.path)
	if err != nil {
		t.Fatal(err)
	}
	afterTwo := len(strings.SplitAfter(string(content), "\n")[0]) + len(strings.SplitAfter(string(content), "\n")[1])

	for _, tc := range []struct {
		name string
		mark string // "" for none
		want []int  // results replayed
	}{
		{"no mark", "", []int{0, 1, 2, 3, 4}},
		{"mark after line 2", fmt.Sprintf("%d 2\n", afterTwo), []int{2, 3, 4}},
		{"garbage mark", "not a mark\n", []int{0, 1, 2, 3, 4}},
		{"mark past the end", fmt.Sprintf("%d 9\n", len(content)+10), []int{0, 1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "spool"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "spool", "results.jsonl"), content, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.mark != "" {
				if err := os.WriteFile(filepath.Join(dir, "spool", "results.offset"), []byte(tc.mark), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, _ := openTest(t, Config{DataDir: dir})
			n, err := s.Replay(ctx)
			if err != nil || n != len(tc.want) {
				t.Fatalf("Replay = %d, %v; want %d, nil", n, err, len(tc.want))
			}
			got, err := s.Snapshots(ctx, "web1", t0, t0.Add(time.Hour), 0)
			if err != nil {
				t.Fatal(err)
			}
			var gotIdx []int
			for _, r := range got {
				gotIdx = append(gotIdx, int(r.At.Sub(t0)/time.Minute))
			}
			if fmt.Sprint(gotIdx) != fmt.Sprint(tc.want) {
				t.Errorf("replayed results %v, want %v", gotIdx, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "spool", "results.offset")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("mark left after a full replay: %v", err)
			}
		})
	}
}

// TestSpoolFull fills a small spool while the database is down: Write
// reports the results it had to drop, loudly, and keeps the rest.
func TestSpoolFull(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	ctx := context.Background()
	t0 := mustTime(t, "2024-05-01T10:00:00Z")
	one := spoolLineSize(t, snapResult("web1", t0, reading{cpu: 1}))
	const fits = 3
	cfg := Config{
		URI:      "mongodb://" + freePort(t) + "/",
		DataDir:  t.TempDir(),
		SpoolMax: int64(fits*one + one/2),
		Timeout:  200 * time.Millisecond,
	}
	s, logs := openTest(t, cfg)

	var results []Result
	for i := 0; i < 5; i++ {
		results = append(results, snapResult("web1", t0.Add(time.Duration(i)*time.Minute), reading{cpu: 1}))
	}
	if err := s.Write(ctx, results[:2]); err != nil {
		t.Fatalf("Write while down, spool not full: %v", err)
	}
	err := s.Write(ctx, results[2:])
	if !errors.Is(err, ErrSpoolFull) || !strings.Contains(err.Error(), "2 results dropped") {
		t.Errorf("Write into a full spool = %v, want ErrSpoolFull with 2 results dropped", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"SPOOL FULL") {
		t.Errorf("no loud log about the full spool")
	}
	content, err := os.ReadFile(s.spool.path)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(content, []byte("\n")); n != fits || int64(len(content)) > cfg.SpoolMax {
		t.Errorf("spool holds %d lines in %d bytes, want %d lines within %d", n, len(content), fits, cfg.SpoolMax)
	}
}

// spoolLineSize returns the bytes r takes in the spool.
func spoolLineSize(t *testing.T, r Result) int {
	t.Helper()
	logger, _ := testLogger(t)
	sp, err := openSpool(t.TempDir(), DefaultSpoolMax, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	r, err = r.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.append([]Result{r}); err != nil {
		t.Fatal(err)
	}
	return int(sp.size)
}

func TestParseSpoolLine(t *testing.T) {
	snap := `{"version":1,"time":"2024-05-01T10:00:00Z","hostname":"h","uptime_seconds":1,"cpu":{"count":1,"logical_count":1,"percent":1,"load1":0,"load5":0,"load15":0},"memory":{"total":1,"used":1,"free":0,"available":0,"buffers":0,"cached":0,"used_percent":100},"disk":{"path":"/","total":1,"used":1,"free":0,"used_percent":100},"processes":{"total":1,"matched":[],"matched_total":0}}`
	for _, tc := range []struct {
		name    string
		line    string
		wantErr string // "" for a valid line
	}{
		{"snapshot", `{"v":1,"server":"a","at":"2024-05-01T10:00:00Z","duration_ms":5,"snapshot":` + snap + `}`, ""},
		{"failure", `{"v":1,"server":"a","at":"2024-05-01T10:00:00Z","duration_ms":5,"err_kind":"auth","err":"denied"}`, ""},
		{"empty", ``, "empty line"},
		{"not json", `hello`, "decode"},
		{"cut short", `{"v":1,"server":"a"`, "decode"},
		{"unknown field", `{"v":1,"server":"a","at":"2024-05-01T10:00:00Z","colour":"red","err_kind":"auth"}`, "unknown field"},
		{"unknown snapshot field", `{"v":1,"server":"a","at":"2024-05-01T10:00:00Z","snapshot":{"version":1,"extra":1}}`, "unknown field"},
		{"two entries", `{"v":1,"server":"a","at":"2024-05-01T10:00:00Z","err_kind":"auth"}{"v":1}`, "trailing data"},
		{"other version", `{"v":2,"server":"a","at":"2024-05-01T10:00:00Z","err_kind":"auth"}`, "version 2"},
		{"no server", `{"v":1,"at":"2024-05-01T10:00:00Z","err_kind":"auth"}`, "no server"},
		{"no time", `{"v":1,"server":"a","err_kind":"auth"}`, "no time"},
		{"neither", `{"v":1,"server":"a","at":"2024-05-01T10:00:00Z"}`, "no snapshot"},
		{"both", `{"v":1,"server":"a","at":"2024-05-01T10:00:00Z","err_kind":"auth","snapshot":` + snap + `}`, "both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseSpoolLine([]byte(tc.line + "\n"))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("parse: %v", err)
			case tc.wantErr == "" && (r.Server != "a" || !r.At.Equal(mustTime(t, "2024-05-01T10:00:00Z"))):
				t.Errorf("parse = %+v", r)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("parse error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSpoolBytes(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, Config{DataDir: dir})
	if got := s.SpoolBytes(); got != 0 {
		t.Errorf("empty spool: %d bytes", got)
	}
	if err := s.spool.append([]Result{{Server: "web1", At: time.Now(), ErrKind: KindTimeout, Err: "x"}}); err != nil {
		t.Fatal(err)
	}
	if got := s.SpoolBytes(); got <= 0 {
		t.Errorf("spool with one result: %d bytes", got)
	}
}
