package report

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// t0 is the start of the test ranges.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// reading is one snapshot as the rollups see it.
type reading struct {
	cpu, mem, disk, load float64
	procs                int                    // matched total
	kw                   []monitor.KeywordCount // per keyword
	unknown              bool                   // the process section failed
}

// hourRollup folds readings taken ten minutes apart from start into an
// hourly rollup the way the store does: sums, counts, and peaks that keep
// the earliest of equal values with the processes of that snapshot.
func hourRollup(server string, start time.Time, rds ...reading) monitor.Rollup {
	ru := monitor.Rollup{Server: server, Period: monitor.Hour, Start: start, Count: int64(len(rds))}
	for i, rd := range rds {
		if rd.kw == nil && !rd.unknown {
			rd.kw = []monitor.KeywordCount{{Keyword: "python", Count: rd.procs}}
		}
		at := start.Add(time.Duration(i) * 10 * time.Minute)
		peak := monitor.Peak{At: at, ProcsKnown: !rd.unknown}
		if !rd.unknown {
			peak.MatchedTotal = rd.procs
			peak.Procs = rd.kw
			m := &ru.Matched
			if m.N == 0 || rd.procs < m.Min {
				m.Min = rd.procs
			}
			if m.N == 0 || rd.procs > m.Max {
				m.Max = rd.procs
			}
			m.Sum += int64(rd.procs)
			m.N++
			for _, k := range rd.kw {
				i := slices.IndexFunc(ru.Keywords, func(s monitor.KeywordSum) bool { return s.Keyword == k.Keyword })
				if i < 0 {
					ru.Keywords = append(ru.Keywords, monitor.KeywordSum{Keyword: k.Keyword})
					i = len(ru.Keywords) - 1
				}
				ru.Keywords[i].Sum += int64(k.Count)
				ru.Keywords[i].N++
			}
		}
		for _, f := range []struct {
			m *monitor.Metric
			v float64
		}{{&ru.CPU, rd.cpu}, {&ru.Mem, rd.mem}, {&ru.Disk, rd.disk}, {&ru.Load1, rd.load}} {
			f.m.Sum += f.v
			f.m.N++
			if f.m.N == 1 || f.v > f.m.Peak.Value {
				p := peak
				p.Value = f.v
				f.m.Peak = p
			}
		}
	}
	slices.SortFunc(ru.Keywords, func(a, b monitor.KeywordSum) int { return strings.Compare(a.Keyword, b.Keyword) })
	return ru
}

// linearProcs is the process count of hour i in the golden data: every
// value from 4 to 20 once in each 17 hours, in a scrambled order.
func linearProcs(i int) int { return 4 + (i*5)%17 }

// linearRollups returns n hourly rollups, one reading each, with memory
// = 10 + 2.5·procs and CPU = 5 + 1.5·procs exactly, disk 30 + i mod 24 and
// load procs/4.
func linearRollups(server string, n int) []monitor.Rollup {
	rs := make([]monitor.Rollup, n)
	for i := range rs {
		p := linearProcs(i)
		rs[i] = hourRollup(server, t0.Add(time.Duration(i)*time.Hour), reading{
			cpu: 5 + 1.5*float64(p), mem: 10 + 2.5*float64(p),
			disk: 30 + float64(i%24), load: float64(p) / 4, procs: p,
		})
	}
	return rs
}

// mapRollups returns rs with f applied to copies.
func mapRollups(rs []monitor.Rollup, f func(i int, r *monitor.Rollup)) []monitor.Rollup {
	out := make([]monitor.Rollup, len(rs))
	for i, r := range rs {
		f(i, &r)
		out[i] = r
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func wantNear(t *testing.T, what string, got, want float64) {
	t.Helper()
	if !near(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantProcs(t *testing.T, what string, got *int, want int) {
	t.Helper()
	if got == nil {
		t.Errorf("%s procs = unknown, want %d", what, want)
	} else if *got != want {
		t.Errorf("%s procs = %d, want %d", what, *got, want)
	}
}

// buildOne builds a report of one server over n hours from t0.
func buildOne(si ServerInput, hours int, keyword string) (*Report, Server) {
	r := Build(Input{
		From: t0, To: t0.Add(time.Duration(hours) * time.Hour), Generated: t0.Add(time.Duration(hours) * time.Hour),
		Keyword: keyword, Servers: []ServerInput{si},
	})
	return r, r.Servers[0]
}
