package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// BenchmarkWrite measures the write path into the embedded store, as a
// round takes it: each batch is journalled to the spool file, then drained
// into WriteResults: raw snapshots, hourly and daily rollup upkeep, server
// pointers. Each batch carries one or more rounds of 100 servers, a round a
// minute apart; the store grows as it runs, as in production. One round is
// a live round; 50 rounds (5,000 snapshots) is one chunk of a spool replay.
func BenchmarkWrite(b *testing.B) {
	const servers = 100
	for _, rounds := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("servers=%d/rounds_per_write=%d", servers, rounds), func(b *testing.B) {
			ctx := context.Background()
			s, _ := openTest(b, Config{})
			sp := openSpool(b, s)
			t0 := mustTime(b, "2024-05-01T00:00:00Z")
			procs := []monitor.KeywordCount{{Keyword: "python", Count: 5}, {Keyword: "scrapy", Count: 3}, {Keyword: "chrome", Count: 4}}
			names := make([]string, servers)
			for i := range names {
				names[i] = fmt.Sprintf("crawler-%03d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				batch := make([]monitor.Result, 0, servers*rounds)
				for r := 0; r < rounds; r++ {
					at := t0.Add(time.Duration(i*rounds+r) * time.Minute)
					for j, name := range names {
						v := float64((i*rounds + r + j) % 97)
						batch = append(batch, snapResult(name, at, reading{cpu: v, mem: v / 2, disk: 40 + v/10, load1: v / 20, procs: procs}))
					}
				}
				b.StartTimer()
				if err := sp.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if err := sp.Drain(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if sp.Bytes() > 0 {
				b.Fatal("results went to the spool: the figure would not measure the database")
			}
			b.ReportMetric(float64(b.N*servers*rounds)/b.Elapsed().Seconds(), "snapshots/s")
		})
	}
}
