package store

import (
	"context"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
)

const layoutWarning = `level=WARN msg="embedded database layout is not the one the direct reads expect; reading through FerretDB instead (slower)"`

// TestLayoutCheckPasses: on a fresh embedded store, and again when it is
// opened a second time, the layout check passes and the range reads go to
// the file.
func TestLayoutCheckPasses(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		logger, logs := testutil.Logger(t)
		s, err := Open(context.Background(), Config{DataDir: dir}, logger)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), "layout") || s.direct == nil {
			t.Errorf("open %d: the layout check failed: direct %v, logs:\n%s", i+1, s.direct, logs)
		}
		if n := count(t, s, layoutName, nil); n != 1 {
			t.Errorf("open %d: %d documents in %s, want the one canary", i+1, n, layoutName)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// tamper stands between the store and the embedded backend's reader, and
// makes the file look laid out otherwise than the direct reads expect.
type tamper struct {
	directReader
	scan  func(r directReader, ctx context.Context, database, collection, from, to string, desc bool, each func([]byte) (bool, error)) error
	scans atomic.Int64
}

func (t *tamper) Scan(ctx context.Context, database, collection, from, to string, desc bool, each func([]byte) (bool, error)) error {
	t.scans.Add(1)
	return t.scan(t.directReader, ctx, database, collection, from, to, desc, each)
}

// TestLayoutCheckFallback opens stores whose direct reads find a layout
// other than the one they expect: the check logs one warning that names
// what is off, and the store answers every read correctly through FerretDB
// without touching the file again.
func TestLayoutCheckFallback(t *testing.T) {
	msDate := regexp.MustCompile(`"at":(\d+)`)
	for _, tc := range []struct {
		name string
		scan func(r directReader, ctx context.Context, database, collection, from, to string, desc bool, each func([]byte) (bool, error)) error
		want string
	}{
		{
			"the collection is not in the registry",
			func(r directReader, ctx context.Context, database, collection, from, to string, desc bool, each func([]byte) (bool, error)) error {
				return r.Scan(ctx, database, collection+"_elsewhere", from, to, desc, each)
			},
			"no collection layout_check_elsewhere in _ferretdb_collections",
		},
		{
			"dates are not milliseconds",
			func(r directReader, ctx context.Context, database, collection, from, to string, desc bool, each func([]byte) (bool, error)) error {
				return r.Scan(ctx, database, collection, from, to, desc, func(doc []byte) (bool, error) {
					return each(msDate.ReplaceAllFunc(doc, func(m []byte) []byte {
						ms, _ := strconv.ParseInt(string(msDate.FindSubmatch(m)[1]), 10, 64)
						return []byte(`"at":"` + time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) + `"`)
					}))
				})
			},
			"canary date stored as",
		},
		{
			"_ids are not where their JSON text sorts",
			func(r directReader, ctx context.Context, database, collection, from, to string, desc bool, each func([]byte) (bool, error)) error {
				return r.Scan(ctx, database, collection, strings.ToUpper(from), strings.ToUpper(to), desc, each)
			},
			"holds 0 documents, want 1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			logger, logs := testutil.Logger(t)
			var tm *tamper
			s, err := open(ctx, Config{DataDir: t.TempDir()}, logger, func(r directReader) directReader {
				tm = &tamper{directReader: r, scan: tc.scan}
				return tm
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(ctx) })
			if n := strings.Count(logs.String(), layoutWarning); n != 1 {
				t.Fatalf("%d warnings about the layout, want 1; logs:\n%s", n, logs)
			}
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("the warning does not say %q; logs:\n%s", tc.want, logs)
			}
			if s.direct != nil {
				t.Fatal("the store still reads the file directly")
			}
			scans := tm.scans.Load()

			t0 := mustTime(t, "2024-05-01T22:00:00Z")
			var in []monitor.Result
			for _, server := range []string{"web1", "web10"} {
				for m := 0; m < 3*60; m += 20 {
					in = append(in, snapResult(server, t0.Add(time.Duration(m)*time.Minute), reading{cpu: float64(m % 17), mem: 30, disk: 40, load1: 1,
						procs: []monitor.KeywordCount{{Keyword: "python", Count: m % 3}}}))
				}
				in = append(in, failResult(server, t0.Add(90*time.Minute+time.Second), monitor.KindTimeout, "probe did not answer"))
			}
			writeAll(t, s, in)

			got, err := s.Snapshots(ctx, "web1", t0, t0.Add(3*time.Hour), 0)
			if err != nil {
				t.Fatal(err)
			}
			var want []monitor.Result
			for _, r := range in {
				if r.Server == "web1" && r.Snapshot != nil {
					want = append(want, monitor.Result{Server: r.Server, At: r.At, Duration: r.Duration, Snapshot: r.Snapshot})
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Snapshots(web1) = %v, want %v", times(got), times(want))
			}
			if got, err := s.Snapshots(ctx, "web1", t0, t0.Add(3*time.Hour), 2); err != nil || !reflect.DeepEqual(got, want[len(want)-2:]) {
				t.Errorf("Snapshots(web1, limit 2) = %v, %v; want %v", times(got), err, times(want[len(want)-2:]))
			}
			attempts, err := s.Attempts(ctx, "web10", t0, t0.Add(3*time.Hour))
			if err != nil || len(attempts) != 1 || attempts[0].Kind != monitor.KindTimeout || attempts[0].Error() != "probe did not answer" {
				t.Errorf("Attempts(web10) = %+v, %v", attempts, err)
			}
			for _, p := range []monitor.Period{monitor.Hour, monitor.Day} {
				rollups, err := s.Rollups(ctx, monitor.RollupFilter{Period: p, From: t0, To: t0.Add(48 * time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				var want []monitor.Rollup
				for _, server := range []string{"web1", "web10"} {
					for start := p.Start(t0); start.Before(t0.Add(48 * time.Hour)); start = p.Next(start) {
						if r := expectRollup(in, server, p, start); r.Count+r.Failed > 0 {
							want = append(want, r)
						}
					}
				}
				if !reflect.DeepEqual(roundSums(rollups), roundSums(want)) {
					t.Errorf("%s rollups:\n got %v\nwant %v", p, descriptions(rollups), descriptions(want))
				}
			}
			if n := tm.scans.Load(); n != scans {
				t.Errorf("the reads scanned the file %d times after the check; want them all through FerretDB", n-scans)
			}
		})
	}
}
