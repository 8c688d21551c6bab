package store

import (
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// FuzzStoredTexts reads any text as a sealed day and as a peak, as a
// damaged document in the database would hold them: a value or an error,
// never a panic; a day it reads is written back as it was read.
func FuzzStoredTexts(f *testing.F) {
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	peak := monitor.Peak{Value: 42.5, At: day.Add(10 * time.Hour), Watched: true, Sample: time.Second, ProcsKnown: true,
		MatchedTotal: 3, Procs: []monitor.KeywordCount{{Keyword: "python", Count: 3}}}
	text, err := sealText(day, []monitor.Rollup{
		{Server: "web1", Period: monitor.Hour, Start: day, Count: 1},
		{Server: "web1", Period: monitor.Hour, Start: day.Add(10 * time.Hour), Count: 2, CPU: monitor.Metric{Sum: 80, N: 2, Peak: peak},
			Matched: monitor.Matched{Min: 2, Max: 3, Sum: 5, N: 2}, Keywords: []monitor.KeywordSum{{Keyword: "python", Sum: 5, N: 2}}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(text)
	f.Add(peakText(&peakDoc{Value: 42.5, Order: -peak.At.UnixMilli(), At: docTime(peak.At), SampleMS: 1000, Watched: true}))
	f.Fuzz(func(t *testing.T, text string) {
		parsePeakText(text)
		rs, err := parseSealText("web1", day, text)
		if err != nil {
			return
		}
		again, err := sealText(day, rs)
		if err != nil {
			t.Fatalf("%q read as %+v, which does not seal: %v", text, rs, err)
		}
		if _, err := parseSealText("web1", day, again); err != nil {
			t.Fatalf("%q read as %+v, sealed as %q, which does not read: %v", text, rs, again, err)
		}
	})
}
