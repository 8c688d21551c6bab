package alerts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// rd is what a hand-made snapshot reads; the zero rd is a quiet server.
type rd struct {
	cpu, mem, disk, load1 float64
	noLogical             bool // no logical CPU count
	procs                 map[string]int
	cpuErr, memErr        bool
	diskErr, procErr      bool
}

func snap(r rd) *snapshot.Snapshot {
	s := &snapshot.Snapshot{
		Version: snapshot.Version,
		Time:    t0,
		CPU:     snapshot.CPU{Count: 4, LogicalCount: 8, Percent: r.cpu, Load1: r.load1},
		Memory:  snapshot.Memory{Total: 100, UsedPercent: r.mem},
		Disk:    snapshot.Disk{Path: "/", Total: 100, UsedPercent: r.disk},
		Processes: snapshot.Processes{
			Total:   100,
			Matched: []snapshot.Match{},
		},
	}
	if r.noLogical {
		s.CPU.LogicalCount = 0
	}
	for kw, n := range r.procs {
		s.Processes.Matched = append(s.Processes.Matched, snapshot.Match{Keyword: kw, Count: n})
	}
	if r.cpuErr {
		s.CPU = snapshot.CPU{Error: "read /proc/stat: permission denied"}
	}
	if r.memErr {
		s.Memory = snapshot.Memory{Error: "read /proc/meminfo: permission denied"}
	}
	if r.diskErr {
		s.Disk = snapshot.Disk{Error: "statfs /: permission denied"}
	}
	if r.procErr {
		s.Processes = snapshot.Processes{Matched: []snapshot.Match{}, Error: "list processes: permission denied"}
	}
	return s
}

func ok(r rd) monitor.Result { return monitor.Result{Snapshot: snap(r)} }

func fail(kind monitor.Kind, msg string) monitor.Result {
	return monitor.Result{Kind: kind, Err: errors.New(msg)}
}

func keyChanged() monitor.Result {
	return monitor.Result{Kind: monitor.KindHostKey, Err: errors.New("web1: host key CHANGED: the server offers ssh-ed25519 SHA256:abc"), HostKeyChanged: true}
}

// A step is one result and what the rule under test must do with it.
type step struct {
	at      time.Duration         // result time and clock, after t0
	obs     monitor.Result        // Server and At are filled in
	rules   *inventory.AlertRules // replaces the case's rules from this step on
	silence bool                  // every rule is silenced
	want    monitor.AlertStatus   // state of the rule under test afterwards ("" = gone)
	streak  int                   // its streak afterwards
	notify  monitor.AlertStatus   // the one alert expected (of that rule), or "" for none
	summary string                // a substring of the alert's (or else the state's) summary
}

func TestEvaluate(t *testing.T) {
	mem := inventory.AlertRules{Memory: inventory.Threshold{Above: 90, Clear: 85, For: 3}, Down: inventory.DownRule{After: 3}}
	disk := inventory.AlertRules{Disk: inventory.Threshold{Above: 90, Clear: 85, For: 1}, Down: inventory.DownRule{After: 3}}
	noClear := inventory.AlertRules{Disk: inventory.Threshold{Above: 90, For: 1}, Down: inventory.DownRule{After: 3}}
	diskOff := inventory.AlertRules{Down: inventory.DownRule{After: 3}}
	load := inventory.AlertRules{Load: inventory.Threshold{Above: 2, Clear: 1.5, For: 1}, Down: inventory.DownRule{After: 3}}
	down := inventory.AlertRules{Down: inventory.DownRule{After: 3}}
	procs := inventory.AlertRules{
		Processes: []inventory.ProcessRule{{Keyword: "python", Min: 5, Max: 10, For: 1}},
		Down:      inventory.DownRule{After: 3},
	}
	procsOff := inventory.AlertRules{Down: inventory.DownRule{After: 3}}
	procs2 := inventory.AlertRules{
		Processes: []inventory.ProcessRule{{Keyword: "python", Min: 5, For: 2}},
		Down:      inventory.DownRule{After: 3},
	}
	const m = time.Minute

	cases := []struct {
		name   string
		rules  inventory.AlertRules
		rule   string
		repeat time.Duration
		steps  []step
	}{
		{"fires after for consecutive breaching snapshots", mem, RuleMemory, 0, []step{
			{at: 0, obs: ok(rd{mem: 93.2}), want: monitor.AlertPending, streak: 1, summary: "memory 93.2 % ≥ 90 %"},
			{at: 1 * m, obs: ok(rd{mem: 95}), want: monitor.AlertPending, streak: 2},
			{at: 2 * m, obs: ok(rd{mem: 93.2}), want: monitor.AlertFiring, streak: 3, notify: monitor.AlertFiring, summary: "memory 93.2 % ≥ 90 % for 3 snapshots"},
			{at: 3 * m, obs: ok(rd{mem: 94}), want: monitor.AlertFiring, streak: 4},
		}},
		{"a reading exactly at above breaches", disk, RuleDisk, 0, []step{
			{at: 0, obs: ok(rd{disk: 90}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring, summary: "disk 90.0 % ≥ 90 %"},
		}},
		{"a pending alert that drops below never notifies", mem, RuleMemory, 0, []step{
			{at: 0, obs: ok(rd{mem: 93}), want: monitor.AlertPending, streak: 1},
			{at: 1 * m, obs: ok(rd{mem: 93}), want: monitor.AlertPending, streak: 2},
			{at: 2 * m, obs: ok(rd{mem: 80}), want: monitor.AlertOK},
			{at: 3 * m, obs: ok(rd{mem: 93}), want: monitor.AlertPending, streak: 1},
		}},
		{"a pending alert between clear and above goes back to ok", mem, RuleMemory, 0, []step{
			{at: 0, obs: ok(rd{mem: 93}), want: monitor.AlertPending, streak: 1},
			{at: 1 * m, obs: ok(rd{mem: 93}), want: monitor.AlertPending, streak: 2},
			{at: 2 * m, obs: ok(rd{mem: 87}), want: monitor.AlertOK},
		}},
		{"between clear and above a firing alert stays firing", disk, RuleDisk, 0, []step{
			{at: 0, obs: ok(rd{disk: 91}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 1 * m, obs: ok(rd{disk: 87}), want: monitor.AlertFiring, streak: 2, summary: "not yet below 85 %"},
			{at: 2 * m, obs: ok(rd{disk: 85}), want: monitor.AlertFiring, streak: 3},
			{at: 3 * m, obs: ok(rd{disk: 84.9}), want: monitor.AlertResolved, notify: monitor.AlertResolved, summary: "disk back to 84.9 % (below 85 %)"},
			{at: 4 * m, obs: ok(rd{disk: 84.9}), want: monitor.AlertOK},
		}},
		{"without clear a firing alert resolves below above", noClear, RuleDisk, 0, []step{
			{at: 0, obs: ok(rd{disk: 91}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 1 * m, obs: ok(rd{disk: 89.9}), want: monitor.AlertResolved, notify: monitor.AlertResolved},
		}},
		{"a resolved alert that breaches again fires anew", disk, RuleDisk, 0, []step{
			{at: 0, obs: ok(rd{disk: 91}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 1 * m, obs: ok(rd{disk: 50}), want: monitor.AlertResolved, notify: monitor.AlertResolved},
			{at: 2 * m, obs: ok(rd{disk: 92}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring, summary: "disk 92.0 %"},
		}},
		{"repeat while firing", disk, RuleDisk, 4 * time.Hour, []step{
			{at: 0, obs: ok(rd{disk: 91}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: time.Hour, obs: ok(rd{disk: 91}), want: monitor.AlertFiring, streak: 2},
			{at: 4*time.Hour - time.Second, obs: ok(rd{disk: 91}), want: monitor.AlertFiring, streak: 3},
			{at: 4 * time.Hour, obs: ok(rd{disk: 92.5}), want: monitor.AlertFiring, streak: 4, notify: monitor.AlertFiring, summary: "disk 92.5 % ≥ 90 % for 4 snapshots"},
			{at: 5 * time.Hour, obs: ok(rd{disk: 91}), want: monitor.AlertFiring, streak: 5},
			{at: 8 * time.Hour, obs: ok(rd{disk: 91}), want: monitor.AlertFiring, streak: 6, notify: monitor.AlertFiring},
		}},
		{"a section error counts neither for nor against", mem, RuleMemory, 0, []step{
			{at: 0, obs: ok(rd{mem: 93}), want: monitor.AlertPending, streak: 1},
			{at: 1 * m, obs: ok(rd{memErr: true}), want: monitor.AlertPending, streak: 1},
			{at: 2 * m, obs: ok(rd{mem: 93}), want: monitor.AlertPending, streak: 2},
			{at: 3 * m, obs: ok(rd{mem: 93}), want: monitor.AlertFiring, streak: 3, notify: monitor.AlertFiring},
			{at: 4 * m, obs: ok(rd{memErr: true}), want: monitor.AlertFiring, streak: 3},
		}},
		{"another section's error does not matter", disk, RuleDisk, 0, []step{
			{at: 0, obs: ok(rd{disk: 95, cpuErr: true, memErr: true, procErr: true}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
		}},
		{"a failed attempt keeps other rules as they are", disk, RuleDisk, time.Hour, []step{
			{at: 0, obs: ok(rd{disk: 95}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 2 * time.Hour, obs: fail("timeout", "probe web1: context deadline exceeded"), want: monitor.AlertFiring, streak: 1},
			{at: 3 * time.Hour, obs: ok(rd{disk: 95}), want: monitor.AlertFiring, streak: 2, notify: monitor.AlertFiring},
		}},
		{"a failed attempt does not resolve", disk, RuleDisk, 0, []step{
			{at: 0, obs: ok(rd{disk: 95}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 1 * m, obs: fail("unreachable", "dial tcp 10.0.0.1:22: connect: connection refused"), want: monitor.AlertFiring, streak: 1},
		}},
		{"down after N failed attempts with the kind", down, RuleDown, 0, []step{
			{at: 0, obs: fail("unreachable", "dial tcp 10.0.0.1:22: connect: connection refused"), want: monitor.AlertPending, streak: 1, summary: "down: 1 failed attempt (unreachable: dial tcp"},
			{at: 1 * m, obs: fail("timeout", "context deadline exceeded"), want: monitor.AlertPending, streak: 2},
			{at: 2 * m, obs: fail("unreachable", "dial tcp 10.0.0.1:22: connect: connection refused"), want: monitor.AlertFiring, streak: 3, notify: monitor.AlertFiring,
				summary: "down: 3 failed attempts (unreachable: dial tcp 10.0.0.1:22: connect: connection refused)"},
			{at: 3 * m, obs: fail("unreachable", "refused"), want: monitor.AlertFiring, streak: 4},
		}},
		{"a success resets the down streak", down, RuleDown, 0, []step{
			{at: 0, obs: fail("auth", "ssh: unable to authenticate"), want: monitor.AlertPending, streak: 1},
			{at: 1 * m, obs: fail("auth", "ssh: unable to authenticate"), want: monitor.AlertPending, streak: 2},
			{at: 2 * m, obs: ok(rd{}), want: monitor.AlertOK},
			{at: 3 * m, obs: fail("auth", "ssh: unable to authenticate"), want: monitor.AlertPending, streak: 1},
		}},
		{"a success resolves a firing down", down, RuleDown, 0, []step{
			{at: 0, obs: fail("probe", "probe exited 1"), want: monitor.AlertPending, streak: 1},
			{at: 1 * m, obs: fail("probe", "probe exited 1"), want: monitor.AlertPending, streak: 2},
			{at: 2 * m, obs: fail("probe", "probe exited 1"), want: monitor.AlertFiring, streak: 3, notify: monitor.AlertFiring},
			{at: 3 * m, obs: ok(rd{}), want: monitor.AlertResolved, notify: monitor.AlertResolved, summary: "up again after 3 failed attempts"},
			{at: 4 * m, obs: ok(rd{}), want: monitor.AlertOK},
		}},
		{"a changed host key fires down at once", down, RuleDown, 0, []step{
			{at: 0, obs: keyChanged(), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring, summary: "down: host key changed (hostkey: web1: host key CHANGED"},
			{at: 1 * m, obs: keyChanged(), want: monitor.AlertFiring, streak: 2},
		}},
		{"an unknown host key is an ordinary failure", down, RuleDown, 0, []step{
			{at: 0, obs: fail("hostkey", "web1: host key is not known"), want: monitor.AlertPending, streak: 1, summary: "(hostkey: web1: host key is not known)"},
		}},
		{"a host key change while down fires notifies at once", down, RuleDown, 0, []step{
			{at: 0, obs: fail("unreachable", "refused"), want: monitor.AlertPending, streak: 1},
			{at: 1 * m, obs: fail("unreachable", "refused"), want: monitor.AlertPending, streak: 2},
			{at: 2 * m, obs: fail("unreachable", "refused"), want: monitor.AlertFiring, streak: 3, notify: monitor.AlertFiring},
			{at: 3 * m, obs: keyChanged(), want: monitor.AlertFiring, streak: 4, notify: monitor.AlertFiring, summary: "host key changed"},
			{at: 4 * m, obs: keyChanged(), want: monitor.AlertFiring, streak: 5},
		}},
		{"processes below min", procs, "processes:python", 0, []step{
			{at: 0, obs: ok(rd{procs: map[string]int{"python": 2}}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring, summary: "python processes 2 < min 5"},
			{at: 1 * m, obs: ok(rd{procs: map[string]int{"python": 5}}), want: monitor.AlertResolved, notify: monitor.AlertResolved, summary: "python processes back to 5 (min 5, max 10)"},
		}},
		{"processes above max", procs, "processes:python", 0, []step{
			{at: 0, obs: ok(rd{procs: map[string]int{"python": 12}}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring, summary: "python processes 12 > max 10"},
			{at: 1 * m, obs: ok(rd{procs: map[string]int{"python": 10}}), want: monitor.AlertResolved, notify: monitor.AlertResolved},
		}},
		{"processes for consecutive snapshots", procs2, "processes:python", 0, []step{
			{at: 0, obs: ok(rd{procs: map[string]int{"python": 0}}), want: monitor.AlertPending, streak: 1},
			{at: 1 * m, obs: ok(rd{procs: map[string]int{"python": 0}}), want: monitor.AlertFiring, streak: 2, notify: monitor.AlertFiring, summary: "python processes 0 < min 5 for 2 snapshots"},
		}},
		{"processes section error is skipped", procs, "processes:python", 0, []step{
			{at: 0, obs: ok(rd{procErr: true}), want: monitor.AlertOK},
			{at: 1 * m, obs: ok(rd{procs: map[string]int{"python": 1}}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 2 * m, obs: ok(rd{procErr: true}), want: monitor.AlertFiring, streak: 1},
		}},
		{"load per logical CPU", load, RuleLoad, 0, []step{
			{at: 0, obs: ok(rd{load1: 15.9}), want: monitor.AlertOK},
			{at: 1 * m, obs: ok(rd{load1: 20}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring, summary: "load 2.50 per CPU ≥ 2 (load1 20.00 on 8 CPUs)"},
			{at: 2 * m, obs: ok(rd{load1: 13}), want: monitor.AlertFiring, streak: 2},
			{at: 3 * m, obs: ok(rd{load1: 11.9}), want: monitor.AlertResolved, notify: monitor.AlertResolved},
		}},
		{"load without a logical CPU count is skipped", load, RuleLoad, 0, []step{
			{at: 0, obs: ok(rd{load1: 20, noLogical: true}), want: monitor.AlertOK},
		}},
		{"a silence suppresses firing; its end notifies", disk, RuleDisk, 4 * time.Hour, []step{
			{at: 0, obs: ok(rd{disk: 95}), silence: true, want: monitor.AlertFiring, streak: 1},
			{at: 1 * m, obs: ok(rd{disk: 95}), silence: true, want: monitor.AlertFiring, streak: 2},
			{at: 2 * m, obs: ok(rd{disk: 95}), want: monitor.AlertFiring, streak: 3, notify: monitor.AlertFiring},
			{at: 3 * m, obs: ok(rd{disk: 95}), want: monitor.AlertFiring, streak: 4},
		}},
		{"a silence suppresses repeats; a missed repeat goes out at its end", disk, RuleDisk, time.Hour, []step{
			{at: 0, obs: ok(rd{disk: 95}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 2 * time.Hour, obs: ok(rd{disk: 95}), silence: true, want: monitor.AlertFiring, streak: 2},
			{at: 2*time.Hour + m, obs: ok(rd{disk: 95}), want: monitor.AlertFiring, streak: 3, notify: monitor.AlertFiring},
		}},
		{"a silence suppresses the resolve", disk, RuleDisk, 0, []step{
			{at: 0, obs: ok(rd{disk: 95}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 1 * m, obs: ok(rd{disk: 50}), silence: true, want: monitor.AlertResolved},
			{at: 2 * m, obs: ok(rd{disk: 50}), want: monitor.AlertOK},
		}},
		{"an alert never notified resolves quietly", disk, RuleDisk, 0, []step{
			{at: 0, obs: ok(rd{disk: 95}), silence: true, want: monitor.AlertFiring, streak: 1},
			{at: 1 * m, obs: ok(rd{disk: 50}), want: monitor.AlertResolved},
		}},
		{"a silenced down still advances", down, RuleDown, 0, []step{
			{at: 0, obs: keyChanged(), silence: true, want: monitor.AlertFiring, streak: 1},
			{at: 1 * m, obs: keyChanged(), want: monitor.AlertFiring, streak: 2, notify: monitor.AlertFiring, summary: "host key changed"},
		}},
		{"a firing rule turned off resolves and is dropped", disk, RuleDisk, 0, []step{
			{at: 0, obs: ok(rd{disk: 95}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 1 * m, obs: ok(rd{disk: 95}), rules: &diskOff, want: "", notify: monitor.AlertResolved, summary: "disk alert turned off"},
		}},
		{"a pending rule turned off is dropped quietly", mem, RuleMemory, 0, []step{
			{at: 0, obs: ok(rd{mem: 95}), want: monitor.AlertPending, streak: 1},
			{at: 1 * m, obs: ok(rd{mem: 95}), rules: &diskOff, want: ""},
		}},
		{"a removed process keyword is dropped", procs, "processes:python", 0, []step{
			{at: 0, obs: ok(rd{procs: map[string]int{"python": 1}}), want: monitor.AlertFiring, streak: 1, notify: monitor.AlertFiring},
			{at: 1 * m, obs: fail("timeout", "deadline"), rules: &procsOff, want: "", notify: monitor.AlertResolved, summary: "python processes alert turned off"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rules := tc.rules
			var prev map[string]monitor.AlertState
			for i, s := range tc.steps {
				if s.rules != nil {
					rules = *s.rules
				}
				now := t0.Add(s.at)
				obs := s.obs
				obs.Server, obs.At = "web1", now
				silenced := func(string) bool { return s.silence }
				snapshotPrev := clone(prev)
				next, notify := Evaluate(rules, prev, obs, now, tc.repeat, silenced)
				if !equalStates(prev, snapshotPrev) {
					t.Fatalf("step %d: Evaluate modified prev", i)
				}
				st, have := next[tc.rule]
				switch {
				case s.want == "" && have:
					t.Errorf("step %d: %s still has state %s, want it dropped", i, tc.rule, st.Status)
				case s.want != "" && st.Status != s.want:
					t.Errorf("step %d: state %q, want %q (summary %q)", i, st.Status, s.want, st.Summary)
				case s.want != "" && st.Streak != s.streak:
					t.Errorf("step %d: streak %d, want %d", i, st.Streak, s.streak)
				}
				var got []Alert
				for _, a := range notify {
					if a.Rule != tc.rule {
						t.Errorf("step %d: unexpected alert %s %s: %s", i, a.Rule, a.State, a.Summary)
						continue
					}
					got = append(got, a)
				}
				switch {
				case s.notify == "" && len(got) > 0:
					t.Errorf("step %d: notified %s %q, want nothing", i, got[0].State, got[0].Summary)
				case s.notify != "" && len(got) != 1:
					t.Errorf("step %d: %d alerts, want one %s", i, len(got), s.notify)
				case s.notify != "" && got[0].State != s.notify:
					t.Errorf("step %d: alert %s, want %s", i, got[0].State, s.notify)
				}
				summary := st.Summary
				if len(got) == 1 {
					summary = got[0].Summary
					checkAlert(t, i, got[0], now)
				}
				if s.summary != "" && !strings.Contains(summary, s.summary) {
					t.Errorf("step %d: summary %q, want it to contain %q", i, summary, s.summary)
				}
				prev = next
			}
		})
	}
}

// checkAlert checks what every alert must carry.
func checkAlert(t *testing.T, step int, a Alert, now time.Time) {
	t.Helper()
	if a.Server != "web1" || a.Labels["server"] != "web1" || a.Labels["rule"] != a.Rule || a.Labels["alertname"] == "" {
		t.Errorf("step %d: alert %+v lacks its server or labels", step, a)
	}
	wantSeverity := SeverityWarning
	if a.Rule == RuleDown {
		wantSeverity = SeverityCritical
		if a.Kind == "" {
			t.Errorf("step %d: down alert without a kind", step)
		}
	}
	if a.Labels["severity"] != wantSeverity {
		t.Errorf("step %d: severity %q, want %q", step, a.Labels["severity"], wantSeverity)
	}
	if a.StartsAt.IsZero() || a.StartsAt.After(now) {
		t.Errorf("step %d: StartsAt %s", step, a.StartsAt)
	}
	if a.State == monitor.AlertFiring && !a.EndsAt.IsZero() {
		t.Errorf("step %d: firing alert with EndsAt %s", step, a.EndsAt)
	}
	if a.State == monitor.AlertResolved && !a.EndsAt.Equal(now) {
		t.Errorf("step %d: resolved alert with EndsAt %s, want %s", step, a.EndsAt, now)
	}
}

func clone(m map[string]monitor.AlertState) map[string]monitor.AlertState {
	if m == nil {
		return nil
	}
	out := make(map[string]monitor.AlertState, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func equalStates(a, b map[string]monitor.AlertState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			return false
		}
	}
	return true
}

// TestEvaluateStartsAt checks the times an alert carries: StartsAt is the
// reading that fired, also in repeats and the resolve.
func TestEvaluateStartsAt(t *testing.T) {
	rules := inventory.AlertRules{Memory: inventory.Threshold{Above: 90, Clear: 85, For: 2}, Down: inventory.DownRule{After: 3}}
	var prev map[string]monitor.AlertState
	var all []Alert
	for i, v := range []float64{95, 95, 95, 95, 50} {
		at := t0.Add(time.Duration(i) * time.Hour)
		var notify []Alert
		prev, notify = Evaluate(rules, prev, monitor.Result{Server: "web1", At: at, Snapshot: snap(rd{mem: v})}, at, 2*time.Hour, nil)
		all = append(all, notify...)
	}
	if len(all) != 3 {
		t.Fatalf("got %d alerts, want firing, repeat, resolved: %+v", len(all), all)
	}
	fired := t0.Add(time.Hour)
	for i, a := range all {
		if !a.StartsAt.Equal(fired) {
			t.Errorf("alert %d (%s): StartsAt %s, want %s", i, a.State, a.StartsAt, fired)
		}
	}
	if got := all[2].EndsAt; !got.Equal(t0.Add(4 * time.Hour)) {
		t.Errorf("resolved EndsAt %s", got)
	}
	if all[0].Value != 95 || all[0].Threshold != 90 || all[2].Value != 50 || all[2].Threshold != 85 {
		t.Errorf("values: %+v", all)
	}
}

// TestEvaluateDefaults runs the built-in rules: a quiet snapshot changes
// nothing, every enabled rule is in the result.
func TestEvaluateDefaults(t *testing.T) {
	rules := inventory.DefaultAlertRules()
	next, notify := Evaluate(rules, nil, monitor.Result{Server: "web1", At: t0, Snapshot: snap(rd{cpu: 10, mem: 40, disk: 50, load1: 1})}, t0, 0, nil)
	if len(notify) != 0 {
		t.Fatalf("notified %+v", notify)
	}
	all := []string{RuleCPU, RuleMemory, RuleDisk, RuleLoad, RuleSwap, RuleMemoryPressure, RuleCPUPressure, RuleFD, RuleDiskFull, RuleDown}
	for _, r := range all {
		if st := next[r]; st != okState("web1", r) {
			t.Errorf("%s: %+v, want ok", r, st)
		}
	}
	if len(next) != len(all) {
		t.Errorf("got %d rules, want %d: %v", len(next), len(all), next)
	}
	// A full disk fires at once with the defaults.
	_, notify = Evaluate(rules, next, monitor.Result{Server: "web1", At: t0, Snapshot: snap(rd{disk: 97})}, t0, 0, nil)
	if len(notify) != 1 || notify[0].Rule != RuleDisk {
		t.Errorf("full disk: %+v", notify)
	}
}

// TestEvaluateFailureWithoutKind: a failed result without a kind counts as
// unreachable, as fleet classifies an untyped failure.
func TestEvaluateFailureWithoutKind(t *testing.T) {
	rules := inventory.AlertRules{Down: inventory.DownRule{After: 1}}
	next, notify := Evaluate(rules, nil, monitor.Result{Server: "web1", At: t0, Err: errors.New("broken pipe")}, t0, 0, nil)
	if st := next[RuleDown]; st.Status != monitor.AlertFiring || st.Kind != monitor.KindUnreachable {
		t.Errorf("down = %+v, want firing, unreachable", st)
	}
	if len(notify) != 1 || notify[0].Kind != monitor.KindUnreachable || notify[0].Summary != "down: 1 failed attempt (unreachable: broken pipe)" {
		t.Errorf("notified %+v", notify)
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"plain", "dial tcp: refused", 100, "dial tcp: refused"},
		{"newlines and controls", "a\n\tb\x1b[31m c ", 100, "a b [31m c"},
		{"cut", strings.Repeat("x", 10), 4, "xxxx…"},
		{"fits exactly", "xxxx", 4, "xxxx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cleanText(tc.in, tc.n); got != tc.want {
				t.Errorf("cleanText(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}

// TestSaturationRules: swap paging, memory and CPU pressure and file
// handles go pending, fire after their For, hold down to Clear and resolve
// below it, as the other level rules do; a snapshot without the section
// (version 1, or a kernel without pressure stall information) leaves them
// as they were.
func TestSaturationRules(t *testing.T) {
	rules := inventory.AlertRules{
		Swap:           inventory.Threshold{Above: 256, Clear: 64, For: 2},
		MemoryPressure: inventory.Threshold{Above: 10, Clear: 5, For: 2},
		CPUPressure:    inventory.Threshold{Above: 20, Clear: 10, For: 2},
		FD:             inventory.Threshold{Above: 90, Clear: 85, For: 2},
		Down:           inventory.DownRule{After: 3},
	}
	v2 := func(swap, memPSI, cpuPSI, fd float64) monitor.Result {
		s := snap(rd{})
		s.Swap = &snapshot.Swap{PagesInPerSecond: swap / 2, PagesOutPerSecond: swap / 2}
		s.Pressure = &snapshot.Pressure{Memory: &snapshot.PSI{SomeAvg10: 99, SomeStallPercent: &memPSI}, CPU: &snapshot.PSI{SomeAvg10: cpuPSI}}
		s.FileDescriptors = &snapshot.FileDescriptors{Allocated: uint64(fd * 100), Max: 10000}
		return monitor.Result{Server: "web1", Snapshot: s}
	}
	var states map[string]monitor.AlertState
	step := func(r monitor.Result, at time.Time) []Alert {
		r.At = at
		var notify []Alert
		states, notify = Evaluate(rules, states, r, at, time.Hour, nil)
		return notify
	}
	rulesOf := func(as []Alert) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Rule+" "+string(a.State))
		}
		return out
	}
	if n := step(v2(300, 12, 25, 95), t0); len(n) != 0 {
		t.Fatalf("first breach notified %v", rulesOf(n))
	}
	for _, r := range []string{RuleSwap, RuleMemoryPressure, RuleCPUPressure, RuleFD} {
		if states[r].Status != monitor.AlertPending {
			t.Errorf("%s after one breach: %+v, want pending", r, states[r])
		}
	}
	// A version-1 snapshot: no reading, no change.
	step(monitor.Result{Server: "web1", Snapshot: snap(rd{})}, t0.Add(time.Minute))
	n := step(v2(300, 12, 25, 95), t0.Add(2*time.Minute))
	if got := strings.Join(rulesOf(n), ", "); got != "swap firing, memory_pressure firing, cpu_pressure firing, fd firing" {
		t.Errorf("second breach notified %s", got)
	}
	if s := states[RuleSwap].Summary; s != "swap paging 300 pages/s ≥ 256 pages/s (in 150, out 150) for 2 snapshots" {
		t.Errorf("swap summary %q", s)
	}
	if s := states[RuleMemoryPressure].Summary; !strings.HasPrefix(s, "memory pressure 12.0 % ≥ 10 %") {
		t.Errorf("memory pressure summary %q: want the stall over the window, not the 10 s average", s)
	}
	// Between clear and above: still firing; below clear: resolved.
	if n := step(v2(100, 6, 15, 87), t0.Add(3*time.Minute)); len(n) != 0 {
		t.Errorf("between clear and above notified %v", rulesOf(n))
	}
	n = step(v2(10, 1, 2, 50), t0.Add(4*time.Minute))
	if got := strings.Join(rulesOf(n), ", "); got != "swap resolved, memory_pressure resolved, cpu_pressure resolved, fd resolved" {
		t.Errorf("below clear notified %s", got)
	}
}

// TestDiskFullRule: the forecast decides; without forecasts the rule
// keeps its state, and a forecast beyond the horizon resolves it.
func TestDiskFullRule(t *testing.T) {
	rules := inventory.AlertRules{DiskFull: inventory.DiskFullRule{Within: 24 * time.Hour}, Down: inventory.DownRule{After: 3}}
	r := monitor.Result{Server: "web1", At: t0, Snapshot: snap(rd{disk: 95})}
	soon := map[string]monitor.DiskForecast{
		"/":    {PerDay: 1, Last: monitor.DailyPeak{Day: t0, Value: 50}, FullIn: 50 * 24 * time.Hour},
		"/var": {PerDay: 10, Last: monitor.DailyPeak{Day: t0, Value: 95}, FullIn: 12 * time.Hour},
	}
	next, n := EvaluateForecast(rules, nil, r, soon, t0, time.Hour, nil)
	if len(n) != 1 || n[0].Rule != RuleDiskFull || n[0].Value != 12 || n[0].Threshold != 24 {
		t.Fatalf("notified %+v, want disk_full firing at 12 h", n)
	}
	if want := "disk /var full in 12h at the trend of its daily peaks (95.0 %, +10.0 %/day), within 24h"; n[0].Summary != want {
		t.Errorf("summary %q, want %q", n[0].Summary, want)
	}
	if n[0].Labels["alertname"] != "DiskFillingUp" {
		t.Errorf("labels %v", n[0].Labels)
	}
	kept, n := EvaluateForecast(rules, next, r, nil, t0.Add(time.Minute), time.Hour, nil)
	if len(n) != 0 || kept[RuleDiskFull].Status != monitor.AlertFiring {
		t.Errorf("without forecasts: %+v, %v; want the rule left firing", kept[RuleDiskFull], n)
	}
	later := map[string]monitor.DiskForecast{"/var": {PerDay: 1, Last: monitor.DailyPeak{Day: t0, Value: 95}, FullIn: 5 * 24 * time.Hour}}
	_, n = EvaluateForecast(rules, kept, r, later, t0.Add(2*time.Minute), time.Hour, nil)
	if len(n) != 1 || n[0].State != monitor.AlertResolved || !strings.Contains(n[0].Summary, "no file system full within 24h") {
		t.Errorf("forecast past the horizon: %+v, want resolved", n)
	}
}
