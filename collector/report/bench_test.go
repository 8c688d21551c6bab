package report

import (
	"fmt"
	"io"
	"math"
	"testing"
	"time"
)

// BenchmarkBuildAndWriteHTML builds and writes a report of 100 servers over
// 30 days of hourly rollups, one point per rollup.
func BenchmarkBuildAndWriteHTML(b *testing.B) {
	const servers, hours = 100, 30 * 24
	in := Input{From: t0, To: t0.Add(hours * time.Hour), Generated: t0}
	for i := range servers {
		name := fmt.Sprintf("crawler-%03d", i)
		rs := genRollups(name, hours, nil, func(h, k int) reading {
			p := 4 + (h+i)%17
			return reading{cpu: 5 + 1.5*float64(p) + wave(h*12+k), mem: 10 + 2.5*float64(p) + wave(h+k+i),
				disk: 40 + math.Mod(float64(h), 7), load: 1, procs: p}
		})
		in.Servers = append(in.Servers, ServerInput{Name: name, Rollups: rs, Points: PointsFromRollups(rs, ""), Attempts: hours * 12})
	}
	b.ResetTimer()
	for b.Loop() {
		if err := Build(in).WriteHTML(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
