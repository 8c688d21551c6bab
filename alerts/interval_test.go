package alerts

import (
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// TestEvaluateWatchedInterval: the rules see a watching probe's interval:
// memory, disk and load its maxima, CPU its mean.
func TestEvaluateWatchedInterval(t *testing.T) {
	rules := inventory.AlertRules{
		CPU:    inventory.Threshold{Above: 95, For: 1},
		Memory: inventory.Threshold{Above: 90, For: 1},
		Disk:   inventory.Threshold{Above: 90, For: 1},
		Load:   inventory.Threshold{Above: 2, For: 1},
	}
	s := snap(rd{cpu: 40, mem: 60, disk: 50, load1: 4})
	s.Interval = &snapshot.Interval{
		ResolutionSeconds: 1, Samples: 60,
		CPU:    &snapshot.Stat{Max: 100, Mean: 40, MaxAt: t0},
		Memory: &snapshot.Stat{Max: 93, Mean: 61, MaxAt: t0},
		Disk:   &snapshot.Stat{Max: 91, Mean: 50, MaxAt: t0},
		Load1:  &snapshot.Stat{Max: 20, Mean: 5, MaxAt: t0},
	}
	next, notify := Evaluate(rules, nil, monitor.Result{Server: "web1", At: t0, Snapshot: s}, t0, 0, nil)
	want := map[string]monitor.AlertStatus{RuleCPU: monitor.AlertOK, RuleMemory: monitor.AlertFiring, RuleDisk: monitor.AlertFiring, RuleLoad: monitor.AlertFiring}
	for rule, status := range want {
		if got := next[rule].Status; got != status {
			t.Errorf("%s: %s, want %s (%s)", rule, got, status, next[rule].Summary)
		}
	}
	for _, a := range notify {
		if !strings.Contains(a.Summary, "highest of the 1 s samples since the last tick") {
			t.Errorf("%s: summary %q does not say it is the interval's maximum", a.Rule, a.Summary)
		}
	}
	if a := find(notify, RuleLoad); a == nil || a.Value != 2.5 || !strings.Contains(a.Summary, "load1 20.00 on 8 CPUs;") {
		t.Errorf("load alert: %+v", a)
	}

	// A one-shot snapshot reads as before.
	_, notify = Evaluate(rules, nil, monitor.Result{Server: "web1", At: t0, Snapshot: snap(rd{mem: 93})}, t0, 0, nil)
	if a := find(notify, RuleMemory); a == nil || strings.Contains(a.Summary, "samples") {
		t.Errorf("one-shot memory alert: %+v", a)
	}
}

func find(alerts []Alert, rule string) *Alert {
	for i := range alerts {
		if alerts[i].Rule == rule {
			return &alerts[i]
		}
	}
	return nil
}
