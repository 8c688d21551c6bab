package spool

import (
	"testing"
	"time"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// FuzzParseLine reads any bytes as a spool line, as a damaged spool file
// would hold: a result or an error, never a panic; a result it takes is
// written back as a line that reads as the same result.
func FuzzParseLine(f *testing.F) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, r := range []monitor.Result{
		{Server: "web1", At: at, Duration: time.Second, Snapshot: &snapshot.Snapshot{Version: 2, Time: at, Hostname: "h"}},
		{Server: "web2", At: at, Kind: monitor.KindTimeout, Err: errTest("timed out after 30s"), Slot: at},
	} {
		b, err := encode(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("{\"v\":1}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseLine(b)
		if err != nil {
			return
		}
		again, err := encode(r)
		if err != nil {
			t.Fatalf("%q read as %+v, which does not encode: %v", b, r, err)
		}
		r2, err := parseLine(again)
		if err != nil {
			t.Fatalf("%q read as %+v, written as %q, which does not read: %v", b, r, again, err)
		}
		if r2.Server != r.Server || !r2.At.Equal(r.At) || r2.Kind != r.Kind || r2.Failed() != r.Failed() {
			t.Fatalf("%q read as %+v, then as %+v", b, r, r2)
		}
	})
}

type errTest string

func (e errTest) Error() string { return string(e) }
