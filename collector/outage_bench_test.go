package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/probetest"
)

// BenchmarkCollectDatabaseDown times `collector collect` (the crontab mode)
// over 5 servers against a MongoDB-wire server (FerretDB, in a process of
// its own) that is up, and against one that is down, alternately, and
// reports the ratio. Target: down/up at most 1.5 (issue 14). Run it with
//
//	go test -run '^$' -bench CollectDatabaseDown -benchtime 5x ./collector/
func BenchmarkCollectDatabaseDown(b *testing.B) {
	dir := b.TempDir()
	probes := probetest.Set(b)
	upAddr, downAddr := freeAddr(b), freeAddr(b)
	startFerretDB(b, filepath.Join(dir, "db"), upAddr)

	config := func(addr string) string {
		path := filepath.Join(dir, addr+".toml")
		text := fmt.Sprintf("[defaults]\nsample = \"200ms\"\nkeywords = [\"python\"]\n[store]\nuri = \"mongodb://%s/\"\ndata_dir = %q\n",
			addr, filepath.Join(dir, "data-"+addr))
		for i := range 5 {
			text += fmt.Sprintf("[[server]]\nname = \"local%d\"\naddress = \"local\"\n", i)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
		return path
	}
	upConfig, downConfig := config(upAddr), config(downAddr)
	collect := func(cfg string) time.Duration {
		var out, errOut bytes.Buffer
		e := &env{stdout: &out, stderr: &errOut, isTerminal: func(any) bool { return false }, probes: probes,
			getenv: func(string) string { return "" }, hangups: func() (<-chan struct{}, func()) { return nil, func() {} }}
		start := time.Now()
		if code := run(b.Context(), []string{"--config", cfg, "collect"}, e); code != exitOK {
			b.Fatalf("collect (%s): exit %d\n%s\n%s", cfg, code, out.String(), errOut.String())
		}
		return time.Since(start)
	}
	collect(upConfig) // warm: the store's collections, the probe's first run
	collect(downConfig)
	var up, down time.Duration
	b.ResetTimer()
	for range b.N {
		up += collect(upConfig)
		down += collect(downConfig)
	}
	b.StopTimer()
	b.ReportMetric(up.Seconds()/float64(b.N), "s-up/op")
	b.ReportMetric(down.Seconds()/float64(b.N), "s-down/op")
	b.ReportMetric(down.Seconds()/up.Seconds(), "down/up")
}
