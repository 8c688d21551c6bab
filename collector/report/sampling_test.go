package report

import (
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

func TestSampling(t *testing.T) {
	ru := monitor.Rollup{Count: 60}
	for _, tt := range []struct {
		peak monitor.Peak
		want string
	}{
		{monitor.Peak{Watched: true, Sample: time.Second}, "max of 1 s samples"},
		{monitor.Peak{Watched: true, Sample: 500 * time.Millisecond}, "max of 0.5 s samples"},
		{monitor.Peak{Sample: time.Second}, "1 s sample, 1 of 60 that hour"},
		{monitor.Peak{}, "1 reading of 60 that hour"},
	} {
		if got := sampling(tt.peak, ru).String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.peak, got, tt.want)
		}
	}
}
