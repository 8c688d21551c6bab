package main

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

func TestBusyPercent(t *testing.T) {
	tests := []struct {
		name string
		a, b cpuTimes
		want float64
	}{
		{"all idle", cpuTimes{Idle: 100}, cpuTimes{Idle: 200}, 0},
		{"half busy", cpuTimes{User: 10, Idle: 10}, cpuTimes{User: 60, Idle: 60}, 50},
		{"all busy", cpuTimes{User: 10, Idle: 10}, cpuTimes{User: 15, System: 5, Idle: 10}, 100},
		{"iowait is idle", cpuTimes{}, cpuTimes{User: 25, Iowait: 75}, 25},
		{
			"nice system irq softirq steal are busy",
			cpuTimes{},
			cpuTimes{Nice: 10, System: 10, Irq: 10, Softirq: 10, Steal: 10, Idle: 50},
			50,
		},
		{"since boot from a zero sample", cpuTimes{}, cpuTimes{User: 30, Idle: 70}, 30},
		{"no time passed", cpuTimes{User: 5, Idle: 5}, cpuTimes{User: 5, Idle: 5}, 0},
		{"counters went backwards", cpuTimes{User: 50, Idle: 50}, cpuTimes{User: 10, Idle: 10}, 0},
		{"iowait went backwards, clamped to 100", cpuTimes{Iowait: 50}, cpuTimes{User: 20, Iowait: 40}, 100},
		{"idle went up more than total, clamped to 0", cpuTimes{User: 20}, cpuTimes{User: 10, Idle: 20}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := busyPercent(tt.a, tt.b); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("busyPercent(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestProcPercent(t *testing.T) {
	tests := []struct {
		name    string
		a, b    uint64 // clock ticks
		elapsed time.Duration
		want    float64
	}{
		{"one cpu busy", 100, 200, time.Second, 100},
		{"two cpus busy", 1000, 1200, time.Second, 200},
		{"short window", 300, 305, 200 * time.Millisecond, 25},
		{"idle process", 700, 700, time.Second, 0},
		{"lifetime average from a zero sample", 0, 6000, 10 * time.Minute, 10},
		{"zero elapsed", 0, 100, 0, 0},
		{"negative elapsed", 0, 100, -time.Second, 0},
		{"pid reused, times went backwards", 10000, 100, time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := procPercent(tt.a, tt.b, tt.elapsed); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("procPercent(%v, %v, %v) = %v, want %v", tt.a, tt.b, tt.elapsed, got, tt.want)
			}
		})
	}
}

// match runs matchKeys and groups the way a scan does.
func match(procs []procInfo, keywords []string) ([]snapshot.Match, []int32) {
	kw := distinct(keywords)
	uses := make([]procUse, len(procs))
	for i, p := range procs {
		uses[i] = procUse{PID: p.PID, Name: p.Name, Keys: matchKeys(kw, p.Name, p.Cmdline)}
	}
	matches, all := groups(kw, uses)
	for i := range matches {
		matches[i].Heaviest = nil // tested apart
	}
	return matches, all
}

func TestMatch(t *testing.T) {
	procs := []procInfo{
		{PID: 1, Name: "systemd", Cmdline: "/sbin/init splash"},
		{PID: 42, Name: "python3", Cmdline: "python3 /srv/app.py --port 8000"},
		{PID: 7, Name: "bash", Cmdline: "bash -c python3 -m http.server"},
		{PID: 99, Name: "gunicorn", Cmdline: "/usr/bin/python3 /usr/bin/gunicorn app:wsgi"},
		{PID: 5, Name: "Python", Cmdline: "Python"},
		{PID: 13, Name: "sh", Cmdline: "sh -c x'; touch /tmp/pwned; '"},
		{PID: 21, Name: "kworker/0:1", Cmdline: ""},
	}
	m := func(keyword string, pids ...int32) snapshot.Match {
		if pids == nil {
			pids = []int32{}
		}
		return snapshot.Match{Keyword: keyword, Count: len(pids), PIDs: pids}
	}
	tests := []struct {
		name     string
		keywords []string
		want     []snapshot.Match
		wantAll  []int32
	}{
		{
			name:     "name or cmdline, pids sorted",
			keywords: []string{"python"},
			want:     []snapshot.Match{m("python", 7, 42, 99)},
			wantAll:  []int32{7, 42, 99},
		},
		{
			name:     "a process under two keywords counts once in all",
			keywords: []string{"gunicorn", "python"},
			want:     []snapshot.Match{m("gunicorn", 99), m("python", 7, 42, 99)},
			wantAll:  []int32{7, 42, 99},
		},
		{
			name:     "name only",
			keywords: []string{"systemd"},
			want:     []snapshot.Match{m("systemd", 1)},
			wantAll:  []int32{1},
		},
		{
			name:     "cmdline only",
			keywords: []string{"app.py"},
			want:     []snapshot.Match{m("app.py", 42)},
			wantAll:  []int32{42},
		},
		{
			name:     "across arguments joined by a space",
			keywords: []string{"--port 8000"},
			want:     []snapshot.Match{m("--port 8000", 42)},
			wantAll:  []int32{42},
		},
		{
			name:     "case sensitive",
			keywords: []string{"Python"},
			want:     []snapshot.Match{m("Python", 5)},
			wantAll:  []int32{5},
		},
		{
			name:     "kernel thread by name",
			keywords: []string{"kworker"},
			want:     []snapshot.Match{m("kworker", 21)},
			wantAll:  []int32{21},
		},
		{
			name:     "no match gives an empty, non-nil pid list",
			keywords: []string{"ruby"},
			want:     []snapshot.Match{m("ruby")},
			wantAll:  []int32{},
		},
		{
			name:     "shell metacharacters are literal",
			keywords: []string{"x'; touch /tmp/pwned; '", "$(id)", "*"},
			want:     []snapshot.Match{m("x'; touch /tmp/pwned; '", 13), m("$(id)"), m("*")},
			wantAll:  []int32{13},
		},
		{
			name:     "repeated keyword reported once",
			keywords: []string{"python", "app.py", "python"},
			want:     []snapshot.Match{m("python", 7, 42, 99), m("app.py", 42)},
			wantAll:  []int32{7, 42, 99},
		},
		{
			name:     "empty keyword skipped",
			keywords: []string{"", "gunicorn"},
			want:     []snapshot.Match{m("gunicorn", 99)},
			wantAll:  []int32{99},
		},
		{
			name:     "no keywords",
			keywords: nil,
			want:     []snapshot.Match{},
			wantAll:  []int32{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, all := match(procs, tt.keywords)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("match(%q) = %+v, want %+v", tt.keywords, got, tt.want)
			}
			if !reflect.DeepEqual(all, tt.wantAll) {
				t.Errorf("match(%q) all = %v, want %v", tt.keywords, all, tt.wantAll)
			}
		})
	}
}

func TestMatchDuplicatePID(t *testing.T) {
	procs := []procInfo{{PID: 3, Name: "python"}, {PID: 3, Name: "python"}}
	got, all := match(procs, []string{"python"})
	if want := []int32{3}; !reflect.DeepEqual(got[0].PIDs, want) || got[0].Count != 1 || !reflect.DeepEqual(all, want) {
		t.Errorf("match of a pid listed twice = %+v, all %v; want pids %v once", got, all, want)
	}
}

func TestSelfExcludes(t *testing.T) {
	me := self{pid: 100, ppid: 50, argv0: "/tmp/probe"}
	tests := []struct {
		name string
		me   self
		p    procInfo
		want bool
	}{
		{"itself", me, procInfo{PID: 100, Name: "probe", Cmdline: "/tmp/probe python"}, true},
		{"wrapper shell", me, procInfo{PID: 50, Name: "sh", Cmdline: "sh -c /tmp/probe python; rm -f /tmp/probe"}, true},
		{"another run of the same probe", me, procInfo{PID: 300, Name: "probe", Cmdline: "/tmp/probe -sample 1s -- python"}, true},
		{"another program under the probe's path", me, procInfo{PID: 301, Name: "probe2", Cmdline: "/tmp/probe2 python"}, false},
		{"a shell about to exec another run", me, procInfo{PID: 302, Name: "bash", Cmdline: "bash -c exec '/tmp/probe' '--' 'python'"}, true},
		{"a path that only starts like the probe's", me, procInfo{PID: 303, Name: "probe.sh", Cmdline: "sh /tmp/probe.sh python"}, false},
		{"a bare argv0 in another command line", self{pid: 100, ppid: 50, argv0: "probe"}, procInfo{PID: 304, Cmdline: "python probe"}, false},
		{"parent that is no wrapper", me, procInfo{PID: 50, Name: "python3", Cmdline: "python3 runner.py"}, false},
		{"parent when argv0 is unknown", self{pid: 100, ppid: 50}, procInfo{PID: 50, Cmdline: "sh -c probe"}, false},
		{"unrelated", me, procInfo{PID: 1, Name: "systemd", Cmdline: "/sbin/init"}, false},
		{"another collector's probe build", me, procInfo{PID: 400, Name: "probe-0123456789abcdef", Cmdline: "/home/mon/.cache/collector/probe-0123456789abcdef -sample 1s -- python"}, true},
		{"the shell starting another collector's probe", me, procInfo{PID: 401, Name: "bash", Cmdline: `bash -c exec "$HOME"/'.cache/collector/probe-89abcdef01234567' '--' 'python'`}, true},
		{"a probe build name that is no whole path", me, procInfo{PID: 402, Name: "python", Cmdline: "python /srv/probe-0123456789abcdef.py"}, false},
		{"a name like a build but not hex", me, procInfo{PID: 403, Name: "python", Cmdline: "python /srv/probe-0123456789abcdeg"}, false},
		{"a name like a build but upper case", me, procInfo{PID: 404, Name: "python", Cmdline: "python /srv/probe-0123456789ABCDEF"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.me.excludes(tt.p); got != tt.want {
				t.Errorf("%+v.excludes(%+v) = %v, want %v", tt.me, tt.p, got, tt.want)
			}
		})
	}
}

func TestNamesWhole(t *testing.T) {
	tests := []struct {
		cmdline, path string
		want          bool
	}{
		{"/tmp/probe", "/tmp/probe", true},
		{"sh -c /tmp/probe;rm /tmp/x", "/tmp/probe", true},
		{"(/tmp/probe)", "/tmp/probe", true},
		{"/tmp/probe&", "/tmp/probe", true},
		{"/tmp/probe|cat", "/tmp/probe", true},
		{`"/tmp/probe"`, "/tmp/probe", true},
		{"/tmp/probe\tx", "/tmp/probe", true},
		{"/tmp/probe2 /tmp/probe.sh /tmp/probe/x", "/tmp/probe", false},
		{"/tmp/probe2 then /tmp/probe", "/tmp/probe", true}, // a later occurrence counts
		{"anything", "", false},
	}
	for _, tt := range tests {
		if got := namesPath(tt.cmdline, tt.path); got != tt.want {
			t.Errorf("namesPath(%q, %q) = %v, want %v", tt.cmdline, tt.path, got, tt.want)
		}
	}
	for cmdline, want := range map[string]bool{
		"/c/probe-0123456789abcdef":            true,
		"/c/probe-0123456789abcdef;":           true,
		"/c/probe-0123456789abcde":             false, // too short
		"/c/probe-0123456789abcdef0":           false, // longer name
		"/c/probe-x /c/probe-0123456789abcdef": true,
	} {
		if got := namesProbeBuild(cmdline); got != want {
			t.Errorf("namesProbeBuild(%q) = %v, want %v", cmdline, got, want)
		}
	}
}

func TestGroups(t *testing.T) {
	kw := []string{"python", "gunicorn", "ruby"}
	uses := []procUse{
		{PID: 3, Keys: []int{0}, RSSBytes: 100, CPUPercent: 10.5, Threads: 2},
		{PID: 1, Keys: []int{0, 1}, RSSBytes: 300, CPUPercent: 20.25, Threads: 4},
		{PID: 2, Keys: []int{0}, RSSBytes: 300, CPUPercent: 0.334, Threads: 1},
		{PID: 4, RSSBytes: 1000, CPUPercent: 99}, // matched by no keyword
	}
	got, all := groups(kw, uses)
	want := []snapshot.Match{
		{Keyword: "python", Count: 3, PIDs: []int32{1, 2, 3}, RSSBytes: 700, CPUPercent: 31.08, Threads: 7,
			Heaviest: &snapshot.Member{PID: 1, RSSBytes: 300, CPUPercent: 20.25}}, // the first of equals
		{Keyword: "gunicorn", Count: 1, PIDs: []int32{1}, RSSBytes: 300, CPUPercent: 20.25, Threads: 4,
			Heaviest: &snapshot.Member{PID: 1, RSSBytes: 300, CPUPercent: 20.25}},
		{Keyword: "ruby", PIDs: []int32{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("groups =\n%+v\nwant\n%+v", got, want)
	}
	if !reflect.DeepEqual(all, []int32{1, 2, 3}) {
		t.Errorf("all = %v, want [1 2 3]", all)
	}
}

func TestGroupsCapsPIDs(t *testing.T) {
	var uses []procUse
	for pid := int32(1); pid <= snapshot.MaxPIDs+7; pid++ {
		uses = append(uses, procUse{PID: pid, Keys: []int{0}})
	}
	got, all := groups([]string{"k"}, uses)
	m := got[0]
	if m.Count != snapshot.MaxPIDs+7 || len(m.PIDs) != snapshot.MaxPIDs || m.PIDsOmitted != 7 || m.PIDs[0] != 1 || len(all) != m.Count {
		t.Errorf("count %d, %d pids from %d, %d omitted, all %d; want %d, %d from 1, 7, %d",
			m.Count, len(m.PIDs), m.PIDs[0], m.PIDsOmitted, len(all), snapshot.MaxPIDs+7, snapshot.MaxPIDs, snapshot.MaxPIDs+7)
	}
}

func TestTopBy(t *testing.T) {
	uses := []procUse{
		{PID: 10, CPUPercent: 5}, {PID: 11, CPUPercent: 50}, {PID: 12}, {PID: 13, CPUPercent: 5},
		{PID: 9, CPUPercent: 5}, {PID: 14, CPUPercent: 120}, {PID: 15, CPUPercent: 1}, {PID: 16, CPUPercent: 0.5},
	}
	got := topBy(uses, 5, func(u procUse) float64 { return u.CPUPercent })
	var pids []int32
	for _, i := range got {
		pids = append(pids, uses[i].PID)
	}
	if want := []int32{14, 11, 9, 10, 13}; !reflect.DeepEqual(pids, want) {
		t.Errorf("topBy = %v, want %v (most first, ties by pid, zeros never)", pids, want)
	}
	if got := topBy(uses[2:3], 5, func(u procUse) float64 { return u.CPUPercent }); len(got) != 0 {
		t.Errorf("topBy of an idle process = %v, want none", got)
	}
}
