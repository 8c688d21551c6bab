package main

import (
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

func TestPeakText(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 4, 0, 0, time.Local)
	for _, tc := range []struct {
		name string
		peak monitor.Peak
		want string
	}{
		{"none", monitor.Peak{}, "-"},
		{"watched", monitor.Peak{At: at, Value: 97.25, ProcsKnown: true, MatchedTotal: 12, Watched: true, Sample: time.Second}, "97.2 at 03-02 10:04 (12, max of 1 s)"},
		{"watched, resolution unknown", monitor.Peak{At: at, Value: 50, Watched: true}, "50.0 at 03-02 10:04 (?, max of the samples)"},
		{"one-shot", monitor.Peak{At: at, Value: 40, ProcsKnown: true, MatchedTotal: 3, Sample: 1500 * time.Millisecond}, "40.0 at 03-02 10:04 (3, 1.5 s sample)"},
		{"stored before sampling was kept", monitor.Peak{At: at, Value: 40, ProcsKnown: true, MatchedTotal: 3}, "40.0 at 03-02 10:04 (3)"},
	} {
		if got := peakText(tc.peak); got != tc.want {
			t.Errorf("%s: peakText = %q, want %q", tc.name, got, tc.want)
		}
		if strings.ContainsAny(tc.want, "\t\n") {
			t.Errorf("%s: a tab or newline would break the table", tc.name)
		}
	}
}
