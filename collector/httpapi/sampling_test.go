package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// withWatched makes web1's latest snapshot one of a watching probe (a burst
// to 97.5 % in a minute of 42.5 % mean) and web2's a one-shot one with a
// 1 s sample.
func withWatched(f *fixture) {
	s := f.store.recs["web1"][0].Snapshot
	s.SampleSeconds = 60
	at := s.Time
	s.Interval = &snapshot.Interval{
		Start: at.Add(-time.Minute), End: at, ResolutionSeconds: 1, Samples: 60,
		CPU:    &snapshot.Stat{Max: 97.5, Mean: 42.5, MaxAt: at.Add(-20 * time.Second)},
		Memory: &snapshot.Stat{Max: 63, Mean: 61, MaxAt: at.Add(-10 * time.Second)},
		Disk:   &snapshot.Stat{Max: 70, Mean: 70, MaxAt: at},
	}
	f.store.recs["web2"][0].Snapshot.SampleSeconds = 1
}

func TestServersSampling(t *testing.T) {
	f := newFixture(t)
	withWatched(f)
	var got []ServerSummary
	decode(t, do(t, New(f.opts), http.MethodGet, "/api/servers", ""), http.StatusOK, &got)
	w := got[0].Sampling
	if w == nil || !w.Watched || w.ResolutionSeconds != 1 || w.IntervalSeconds != 60 || w.SampleSeconds != 60 ||
		w.CPUMax == nil || *w.CPUMax != 97.5 || *w.MemoryMax != 63 || *w.DiskMax != 70 {
		t.Errorf("web1 sampling %+v", w)
	}
	if o := got[1].Sampling; o == nil || o.Watched || o.SampleSeconds != 1 || o.CPUMax != nil {
		t.Errorf("web2 sampling %+v", o)
	}
	if got[2].Sampling != nil {
		t.Errorf("web3, without a snapshot: sampling %+v", got[2].Sampling)
	}
}

func TestPageSamplingInChromium(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t)
	withWatched(f)
	f.opts.Now = time.Now
	srv := httptest.NewServer(New(f.opts))
	t.Cleanup(srv.Close)
	dom := string(headless(t, bin, srv.URL+"/", "--dump-dom"))
	for _, want := range []string{
		`<small class="seen" title="the highest of the 1 s samples over the 60 s since the previous snapshot; the figure above is the mean over them">max 97.5 %</small>`,
		`<small class="seen" title="the highest of the 1 s samples over the 60 s since the previous snapshot; the figure above is at its end">max 63.0 %</small>`,
		`<small class="seen" title="one reading per probe over its 1 s sample window; what happened between probes was not seen">1 s sample</small>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}
