package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/internal/testutil"
)

// testState is a state of two processes, one of them a kernel thread.
func testState() *procState {
	const readAt = 5312031022417000
	return &procState{
		bootID: "0e5a7bd0-8d0e-4c33-a41e-55b5e8a9ab57", pidNS: 4026531836,
		listedAt: readAt - 1_002_000_000, readAt: readAt,
		argv0: "/home/monitor/.cache/collector/probe-0123456789abcdef", keywords: []string{"python", `a "quoted" key`},
		procs: []knownProc{
			{pid: 2, start: 2, ticks: 5, at: readAt + 61_000, comm: commHash("kthreadd"), matchedAt: 5301, kernel: true, confirmed: true},
			{pid: 4711, start: 35012, ticks: 77, at: readAt + 1_204_000, comm: commHash("python3"), matchedAt: 5302, confirmed: true, keys: []int{0, 1}},
			{pid: 4712, start: 35100, ticks: 0, at: readAt + 1_300_000, comm: commHash("sh"), matchedAt: 5312, excluded: true},
		},
	}
}

func TestStateRoundTrip(t *testing.T) {
	want := testState()
	text := appendState(nil, want)
	got, err := parseState(text)
	if err != nil {
		t.Fatalf("parseState: %v\n%s", err, text)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseState(appendState(s)) =\n%+v\nwant\n%+v", got, want)
	}
	const head = "collector-probe-state 1\nboot 0e5a7bd0-8d0e-4c33-a41e-55b5e8a9ab57\npidns 4026531836\n" +
		"listed 5312030020417000\nread 5312031022417000\n" +
		"argv0 \"/home/monitor/.cache/collector/probe-0123456789abcdef\"\nkeywords \"python\" \"a \\\"quoted\\\" key\"\nprocs 3\n" +
		"2 2 5 61 kc "
	if !strings.HasPrefix(string(text), head) || !strings.HasSuffix(string(text), " 5312 -\nend\n") {
		t.Errorf("appendState =\n%s", text)
	}
	empty := &procState{bootID: "b", keywords: []string{}, procs: []knownProc{}}
	if got, err := parseState(appendState(nil, empty)); err != nil || !reflect.DeepEqual(got, empty) {
		t.Errorf("empty state: %+v, %v", got, err)
	}
}

func TestParseStateRefusesDamage(t *testing.T) {
	good := string(appendState(nil, testState()))
	lines := strings.SplitAfter(good, "\n")
	replace := func(i int, line string) string {
		l := slices.Clone(lines)
		l[i] = line
		return strings.Join(l, "")
	}
	tests := []struct {
		name, text, want string
	}{
		{"empty", "", "not a state file"},
		{"another format", strings.Replace(good, "state 1", "state 2", 1), "not a state file"},
		{"torn in the header", good[:80], "want pidns"},
		{"torn in the processes", good[:len(good)-40], "want a process"},
		{"no end", strings.TrimSuffix(good, "end\n"), "want end"},
		{"no newline after end", strings.TrimSuffix(good, "\n"), "want end"},
		{"data after end", good + "1 2 3 4 c 5 6 -\n", "data after end"},
		{"a field missing", replace(2, "boot x\n"), "want pidns"},
		{"bad number", replace(3, "listed 12x\n"), "listed"},
		{"read before listed", replace(4, "read 1\n"), "before listed"},
		{"bad quote", replace(5, "argv0 \"unterminated\n"), "argv0"},
		{"keywords unquoted", replace(6, "keywords python\n"), "keywords"},
		{"more processes than lines", replace(7, "procs 4\n"), `process line "end"`},
		{"fewer processes than lines", replace(7, "procs 2\n"), "want end"},
		{"too many processes", replace(7, fmt.Sprintf("procs %d\n", maxStateProcs+1)), "more than"},
		{"short process line", replace(8, "2 2 5 61 kc 1\n"), "fields"},
		{"pid 0", replace(8, "0 2 5 61 kc 1 5 -\n"), "pid 0"},
		{"negative ticks", replace(8, "2 2 -5 61 kc 1 5 -\n"), "field 3"},
		{"bad flags", replace(8, "2 2 5 61 kz 1 5 -\n"), "flags"},
		{"bad name hash", replace(8, "2 2 5 61 kc xyz 5 -\n"), "name hash"},
		{"keyword out of range", replace(8, "2 2 5 61 kc 1 5 2\n"), "keywords"},
		{"keywords not ascending", replace(8, "2 2 5 61 kc 1 5 1,0\n"), "keywords"},
		{"pid twice", replace(9, lines[8]), "after pid"},
		{"pids out of order", replace(8, "5000 2 5 61 kc 1 5 -\n"), "after pid"},
		{"too many fields", replace(8, "2 2 5 61 kc 1 5 - x\n"), "more than 8 fields"},
		{"empty field", replace(8, "2 2 5 61 kc  5 -\n"), "name hash"},
		{"uppercase hash", replace(8, "2 2 5 61 kc ABC 5 -\n"), "name hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseState([]byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseState = %+v, %v; want an error containing %q", s, err, tt.want)
			}
		})
	}
}

func TestStateUsable(t *testing.T) {
	s := testState()
	h := host{bootID: s.bootID, pidNS: s.pidNS}
	tests := []struct {
		name string
		h    host
		age  time.Duration
		want string // "" for usable
	}{
		{"fresh", h, time.Minute, ""},
		{"at the bound", h, maxStateAge, ""},
		{"stale", h, maxStateAge + time.Second, "stale"},
		{"from the future", h, -time.Second, "future"},
		{"another boot", host{bootID: "other", pidNS: s.pidNS}, time.Minute, "another boot"},
		{"another pid namespace", host{bootID: s.bootID, pidNS: 1}, time.Minute, "pid namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.usable(tt.h, s.readAt+int64(tt.age))
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("usable = %v, want %q", err, tt.want)
			}
		})
	}
	if !s.matchesFor([]string{"python", `a "quoted" key`}, s.argv0) {
		t.Error("matchesFor refuses the state's own keywords")
	}
	for _, kw := range [][]string{{"python"}, {`a "quoted" key`, "python"}, {"python", `a "quoted" key`, "java"}} {
		if s.matchesFor(kw, s.argv0) {
			t.Errorf("matchesFor(%q) holds, want not", kw)
		}
	}
	if s.matchesFor(s.keywords, "/tmp/probe") {
		t.Error("matchesFor holds for another argv0")
	}
}

func TestLoadState(t *testing.T) {
	dir := t.TempDir()
	var buf []byte
	good := filepath.Join(dir, "good")
	if err := saveState(good, appendState(nil, testState())); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(good, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "huge"), make([]byte, maxStateBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "corrupt"), []byte("collector-probe-state 1\nboot"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string
		want string // "" for success
		is   error
	}{
		{"whole", "good", "", nil},
		{"missing", "missing", "no such file", fs.ErrNotExist},
		{"a symbolic link", "link", "too many levels", nil},
		{"too large", "huge", "more than", nil},
		{"corrupt", "corrupt", "want boot", nil},
		{"a directory", "dir", "is a directory", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := loadState(filepath.Join(dir, tt.file), &buf)
			if tt.want == "" {
				if err != nil || !reflect.DeepEqual(s, testState()) {
					t.Errorf("loadState = %+v, %v; want the state written", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("loadState = %+v, %v; want an error containing %q", s, err, tt.want)
			}
		})
	}
}

// TestSaveStateConcurrent writes states from many writers at once while
// readers read: a reader sees a whole state of one writer or another,
// never a torn one, and no temporary file is left behind.
func TestSaveStateConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "probe-state")
	const writers, rounds = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*2)
	for w := range writers {
		wg.Go(func() {
			s := testState()
			for i := range rounds {
				// Writers differ in size, so that a torn file would show.
				s.procs = nil
				for pid := range int32(1 + w*100 + i) {
					s.procs = append(s.procs, knownProc{pid: pid + 1, start: uint64(w), ticks: uint64(i), at: s.readAt})
				}
				if err := saveState(path, appendState(nil, s)); err != nil {
					errs <- err
				}
			}
		})
	}
	done := make(chan struct{})
	var rg sync.WaitGroup
	for range 4 {
		rg.Go(func() {
			var buf []byte
			for {
				select {
				case <-done:
					return
				default:
				}
				s, err := loadState(path, &buf)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("a reader saw a damaged state: %w", err)
					continue
				}
				for _, p := range s.procs {
					if p.start != s.procs[0].start {
						errs <- errors.New("a reader saw a state mixed from two writers")
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "probe-state" {
		t.Errorf("directory holds %v, want the state alone", entries)
	}
}

// startNamed starts a process whose command line starts with name: an idle
// sleep, or a busy shell loop; it is killed when t ends.
func startNamed(t *testing.T, name string, busy bool) int {
	t.Helper()
	cmd := exec.Command("sleep", "3600")
	if busy {
		cmd = exec.Command("sh", "-c", "while :; do :; done")
	}
	if cmd.Err != nil {
		t.Skipf("start %s: %v", name, cmd.Err)
	}
	cmd.Args[0] = name
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if busy {
		waitRunning(t, cmd.Process.Pid)
	}
	return cmd.Process.Pid
}

// stateRun is one in-process reading of the processes keeping a state.
func stateRun(t *testing.T, path string, keywords ...string) procResult {
	t.Helper()
	r := readProcessesLeaving(context.Background(), 200*time.Millisecond, keywords, 0, path)
	if r.Processes.Error != "" || r.Top.Error != "" {
		t.Fatalf("processes error %q, top error %q", r.Processes.Error, r.Top.Error)
	}
	return r
}

// editState loads the state at path, lets edit change it, and writes it
// back.
func editState(t *testing.T, path string, edit func(*procState)) {
	t.Helper()
	var buf []byte
	s, err := loadState(path, &buf)
	if err != nil {
		t.Fatalf("load state: %v", err)
	}
	edit(s)
	if err := saveState(path, appendState(nil, s)); err != nil {
		t.Fatal(err)
	}
}

// TestScanWithState runs the process reader as a one-shot probe keeping a
// state would, on this host's processes, through the states a file can be
// in.
func TestScanWithState(t *testing.T) {
	key := randomKeyword(t)
	idleKey, busyKey := key+"-idle", key+"-busy"
	idle := int32(startNamed(t, idleKey, false))
	busy := int32(startNamed(t, busyKey, true))
	path := filepath.Join(t.TempDir(), "probe-state")
	keywords := []string{idleKey, busyKey}

	// want checks that each keyword matched its own child, and the span.
	want := func(t *testing.T, r procResult, spanned bool) {
		t.Helper()
		p := r.Processes
		if len(p.Matched) != 2 || !reflect.DeepEqual(p.Matched[0].PIDs, []int32{idle}) || !reflect.DeepEqual(p.Matched[1].PIDs, []int32{busy}) {
			t.Errorf("matched = %+v, want %s = [%d], %s = [%d]", p.Matched, idleKey, idle, busyKey, busy)
		} else if p.Matched[1].CPUPercent < 5 || p.Matched[0].CPUPercent > p.Matched[1].CPUPercent {
			t.Errorf("cpu: idle %v, busy %v; want busy >= 5 and above idle", p.Matched[0].CPUPercent, p.Matched[1].CPUPercent)
		}
		if spanned != (r.CPUSeconds > 0) {
			t.Errorf("cpu seconds = %v, want it set: %v", r.CPUSeconds, spanned)
		}
	}
	var buf []byte
	t.Run("missing", func(t *testing.T) {
		r := stateRun(t, path, keywords...)
		want(t, r, false)
		s, err := loadState(path, &buf)
		if err != nil {
			t.Fatalf("no state written: %v", err)
		}
		if k := s.find(busy); k == nil || !reflect.DeepEqual(k.keys, []int{1}) || k.ticks == 0 {
			t.Errorf("state of the busy child = %+v", k)
		}
		if s.find(int32(os.Getpid())) != nil {
			t.Error("the state keeps the probe itself")
		}
	})
	t.Run("usable", func(t *testing.T) {
		before, err := loadState(path, &buf)
		if err != nil {
			t.Fatal(err)
		}
		// The run after this one spans at least half a second since the
		// first one's reading: wait for the boot clock to pass that.
		clock, err := newBootClock()
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, testutil.Patience, "half a second past the first run's reading", func() bool {
			return clock.at(time.Now())-before.readAt >= int64(500*time.Millisecond)
		})
		r := stateRun(t, path, keywords...)
		want(t, r, true)
		after, err := loadState(path, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if span := float64(after.readAt-before.readAt) / 1e9; r.CPUSeconds < 0.5 || r.CPUSeconds-span > 0.01 || span-r.CPUSeconds > 0.01 {
			t.Errorf("cpu seconds = %v, want the %.2f s between the readings, at least the 0.5 s between the runs", r.CPUSeconds, span)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("collector-probe-state 1\ngarbage\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		want(t, stateRun(t, path, keywords...), false)
		if _, err := loadState(path, &buf); err != nil {
			t.Errorf("corrupt state not replaced: %v", err)
		}
	})
	t.Run("stale", func(t *testing.T) {
		editState(t, path, func(s *procState) {
			old := int64(maxStateAge + time.Minute)
			s.listedAt, s.readAt = s.listedAt-old, s.readAt-old
		})
		want(t, stateRun(t, path, keywords...), false)
	})
	t.Run("from another boot", func(t *testing.T) {
		editState(t, path, func(s *procState) { s.bootID = "another" })
		want(t, stateRun(t, path, keywords...), false)
	})
	t.Run("cached match is used", func(t *testing.T) {
		// A state that says the idle child matched the busy keyword when
		// it was old enough to have exec'd: the run believes it, which
		// shows it did not read its command line.
		editState(t, path, func(s *procState) {
			k := s.find(idle)
			k.keys, k.confirmed = []int{1}, true
		})
		r := stateRun(t, path, keywords...)
		if m := r.Processes.Matched[1]; !slices.Contains(m.PIDs, idle) || r.CPUSeconds == 0 {
			t.Errorf("busy keyword matched %v, want the cached match of %d too", m.PIDs, idle)
		}
	})
	// Each of these makes the run read the command line again, whatever
	// the (wrong) cached match says.
	rematch := map[string]func(s *procState){
		"pid reused":         func(s *procState) { s.find(idle).start-- },
		"name changed":       func(s *procState) { s.find(idle).comm++ },
		"young when matched": func(s *procState) { s.find(idle).confirmed = false },
		"match too old":      func(s *procState) { s.find(idle).matchedAt -= int64((rematchAfter + time.Minute) / time.Second) },
		"other keywords":     func(s *procState) { s.keywords = []string{idleKey, busyKey, "x"} },
		"other argv0":        func(s *procState) { s.argv0 = "/elsewhere/probe" },
	}
	for name, edit := range rematch {
		t.Run(name, func(t *testing.T) {
			editState(t, path, func(s *procState) {
				k := s.find(idle)
				k.keys, k.confirmed = []int{1}, true
				edit(s)
			})
			want(t, stateRun(t, path, keywords...), true)
		})
	}
	t.Run("unwritable", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		want(t, stateRun(t, dir, keywords...), false) // a directory where the file should be
		want(t, stateRun(t, filepath.Join(dir, "missing", "probe-state"), keywords...), false)
	})
}

// TestProbeState runs the probe binary with -state: twice in a row (the
// second measures from the first), then twice at once on the same file.
func TestProbeState(t *testing.T) {
	key := randomKeyword(t)
	startNamed(t, key, true)
	path := filepath.Join(t.TempDir(), "probe-state")
	args := []string{"-sample", "200ms", "-state", path, "--", key}
	first := runProbe(t, args...)
	second := runProbe(t, args...)
	for i, r := range []probeRun{first, second} {
		s := r.decode(t)
		if r.stderr != "" {
			t.Errorf("run %d: stderr %q", i+1, r.stderr)
		}
		if m := matchOf(t, s, key); m.Count != 1 || m.CPUPercent < 5 {
			t.Errorf("run %d: match %+v, want the busy process", i+1, m)
		}
		if spanned := s.ProcessCPUSeconds > 0; spanned != (i == 1) {
			t.Errorf("run %d: process_cpu_seconds = %v", i+1, s.ProcessCPUSeconds)
		}
	}

	var wg sync.WaitGroup
	runs := make([]probeRun, 2)
	for i := range runs {
		wg.Go(func() { runs[i] = runProbe(t, args...) })
	}
	wg.Wait()
	for _, r := range runs {
		if s := r.decode(t); s.ProcessCPUSeconds <= 0 || s.Processes.Count(key) != 1 {
			t.Errorf("concurrent run: process_cpu_seconds %v, processes %+v", s.ProcessCPUSeconds, s.Processes)
		}
	}
	var buf []byte
	if _, err := loadState(path, &buf); err != nil {
		t.Errorf("state after two runs at once: %v", err)
	}
}
