package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/report"
	"github.com/crawlerfleet/collector/monitor"
)

// routes are a request to every route that answers 200 on the fixture.
var routes = []string{
	"/",
	"/report",
	"/metrics",
	"/api/servers",
	"/api/servers/web1/latest",
	"/api/servers/web1/snapshots",
	"/api/report",
}

func TestAuth(t *testing.T) {
	f := newFixture(t)
	open := New(f.opts)
	f.opts.Token = "s3cret-token"
	locked := New(f.opts)

	for _, path := range append(routes, "/healthz") {
		t.Run(path, func(t *testing.T) {
			if rec := do(t, open, "GET", path, ""); rec.Code != http.StatusOK {
				t.Errorf("no token configured: status %d, want 200; body %s", rec.Code, rec.Body)
			}
			if rec := do(t, locked, "GET", path, "s3cret-token"); rec.Code != http.StatusOK {
				t.Errorf("right token: status %d, want 200; body %s", rec.Code, rec.Body)
			}
			for _, bad := range []string{"", "wrong", "s3cret-token-and-more", "s3cret-toke"} {
				rec := do(t, locked, "GET", path, bad)
				if path == "/healthz" {
					if rec.Code != http.StatusOK {
						t.Errorf("/healthz with token %q: status %d, want 200 (it stays open)", bad, rec.Code)
					}
					continue
				}
				wantError(t, rec, http.StatusUnauthorized, `missing or wrong token: send the header "Authorization: Bearer <token>"`)
				if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="collector"` {
					t.Errorf("token %q: WWW-Authenticate %q", bad, got)
				}
			}
		})
	}

	t.Run("other schemes", func(t *testing.T) {
		for _, header := range []string{"Basic s3cret-token", "s3cret-token", "Bearer", "bearer s3cret-token"} {
			req := httptest.NewRequest("GET", "/api/servers", nil)
			req.Header.Set("Authorization", header)
			rec := httptest.NewRecorder()
			locked.ServeHTTP(rec, req)
			want := http.StatusUnauthorized
			if header == "bearer s3cret-token" { // the scheme is case-insensitive
				want = http.StatusOK
			}
			if rec.Code != want {
				t.Errorf("Authorization %q: status %d, want %d", header, rec.Code, want)
			}
		}
	})

	t.Run("query token", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			want int
		}{
			{"/?token=s3cret-token", http.StatusOK},
			{"/report?since=24h&token=s3cret-token", http.StatusOK},
			{"/?token=wrong", http.StatusUnauthorized},
			{"/?token=", http.StatusUnauthorized},
			{"/api/servers?token=s3cret-token", http.StatusUnauthorized},
			{"/metrics?token=s3cret-token", http.StatusUnauthorized},
		} {
			rec := do(t, locked, "GET", tc.path, "")
			if rec.Code != tc.want {
				t.Errorf("%s: status %d, want %d; body %s", tc.path, rec.Code, tc.want, rec.Body)
			}
		}
		rec := do(t, locked, "GET", "/api/servers?token=s3cret-token", "")
		wantError(t, rec, http.StatusUnauthorized, `?token= is accepted only on the pages / and /report: send the header "Authorization: Bearer <token>"`)
	})

	t.Run("unknown paths need the token too", func(t *testing.T) {
		if rec := do(t, locked, "GET", "/nope", ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", rec.Code)
		}
	})
}

func TestNotFoundAndMethod(t *testing.T) {
	h := New(newFixture(t).opts)
	wantError(t, do(t, h, "GET", "/nope", ""), http.StatusNotFound, "no such path: /nope")
	wantError(t, do(t, h, "GET", "/api/servers/web1", ""), http.StatusNotFound, "no such path: /api/servers/web1")
	rec := do(t, h, "POST", "/api/servers", "")
	wantError(t, rec, http.StatusMethodNotAllowed, "method POST not allowed: use GET")
	if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow %q", got)
	}
	if rec := do(t, h, "HEAD", "/api/servers", ""); rec.Code != http.StatusOK {
		t.Errorf("HEAD: status %d", rec.Code)
	}
}

func TestHealthz(t *testing.T) {
	var body health
	decode(t, do(t, New(newFixture(t).opts), "GET", "/healthz", ""), http.StatusOK, &body)
	if body.Status != "ok" || body.Problems != nil {
		t.Errorf("body %+v", body)
	}

	// Something wrong: degraded, and the problems go only with the token.
	opts := newFixture(t).opts
	problems := []string{"database unreachable since 2026-12-05T10:00:00Z"}
	opts.Problems = func() []string { return problems }
	opts.Token = "s3cret"
	h := New(opts)
	for _, tc := range []struct {
		token        string
		wantProblems bool
	}{{"", false}, {"wrong", false}, {"s3cret", true}} {
		var body health
		decode(t, do(t, h, "GET", "/healthz", tc.token), http.StatusOK, &body)
		if body.Status != "degraded" || (body.Problems != nil) != tc.wantProblems {
			t.Errorf("token %q: body %+v; want degraded, problems shown %v", tc.token, body, tc.wantProblems)
		}
	}
	problems = nil
	decode(t, do(t, h, "GET", "/healthz", ""), http.StatusOK, &body)
	if body.Status != "ok" {
		t.Errorf("no problems left: body %+v", body)
	}
}

func TestServers(t *testing.T) {
	f := newFixture(t)
	rec := do(t, New(f.opts), "GET", "/api/servers", "")
	var got []ServerSummary
	decode(t, rec, http.StatusOK, &got)
	if len(got) != 4 {
		t.Fatalf("%d servers, want 4: %s", len(got), rec.Body)
	}
	names := []string{got[0].Name, got[1].Name, got[2].Name, got[3].Name}
	if strings.Join(names, " ") != "web1 web2 web3 "+evil {
		t.Errorf("order %q, want the inventory's", names)
	}

	web1 := got[0]
	if web1.Status != StatusOK || web1.Description != "front end" || len(web1.Tags) != 1 ||
		*web1.CPUPercent != 42.5 || *web1.MemoryUsedPercent != 61.25 || *web1.DiskUsedPercent != 70 ||
		*web1.MatchedTotal != 15 || len(web1.Matched) != 2 || web1.Matched[1] != (KeywordCount{"node", 3}) ||
		!web1.LastSnapshot.Equal(now.Add(-time.Minute)) || web1.LastFailure.Kind != "timeout" || len(web1.Firing) != 0 {
		t.Errorf("web1 %+v", web1)
	}
	web2 := got[1]
	if web2.Status != StatusDown || web2.LastFailure.Error != "dial tcp 10.0.0.2:22: connection refused" ||
		!web2.LastFailure.At.Equal(now.Add(-30*time.Second)) || len(web2.Firing) != 1 || web2.Firing[0].Rule != "down" {
		t.Errorf("web2 %+v", web2)
	}
	web3 := got[2]
	if web3.Status != StatusNoData || web3.LastSnapshot != nil || web3.LastFailure != nil || web3.CPUPercent != nil || web3.MatchedTotal != nil {
		t.Errorf("web3 %+v", web3)
	}
	bad := got[3]
	if bad.Name != evil || bad.Description != evil || len(bad.Firing) != 2 || bad.Firing[0].Rule != "cpu" || bad.Firing[1].Rule != "disk" ||
		!bad.Firing[1].Since.Equal(now.Add(-5*time.Minute)) || bad.Firing[1].Summary != "disk 91.0 % ≥ 90 %" {
		t.Errorf("hostile name %+v", bad)
	}

	// The raw JSON: lists are [] rather than null, unknowns are null, and
	// the hostile name is an ordinary JSON string.
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{"tags": "[]", "matched": "[]", "firing": "[]", "cpu_percent": "null", "last_failure": "null", "status": `"no data"`} {
		if got := string(raw[2][field]); got != want {
			t.Errorf("web3 %s = %s, want %s", field, got, want)
		}
	}
	if got := string(raw[3]["name"]); got != `"\u003cscript\u003ealert(1)\u003c/script\u003e"` {
		t.Errorf("hostile name as JSON %s", got)
	}
}

func TestServersPartialFailures(t *testing.T) {
	t.Run("alerts unreadable", func(t *testing.T) {
		f := newFixture(t)
		f.opts.Alerts = AlertsFunc(func(context.Context) ([]monitor.AlertState, error) { return nil, errBroken })
		var got []ServerSummary
		decode(t, do(t, New(f.opts), "GET", "/api/servers", ""), http.StatusOK, &got)
		for _, s := range got {
			if s.Firing != nil || s.Status == "" {
				t.Errorf("%s: firing %v, status %q; want null firing and the rest", s.Name, s.Firing, s.Status)
			}
		}
		if !strings.Contains(f.logs.String(), "socket was unexpectedly closed") {
			t.Errorf("the alert error was not logged: %s", f.logs)
		}
	})
	t.Run("no alerts", func(t *testing.T) {
		f := newFixture(t)
		f.opts.Alerts = nil
		var got []ServerSummary
		decode(t, do(t, New(f.opts), "GET", "/api/servers", ""), http.StatusOK, &got)
		if got[1].Firing == nil || len(got[1].Firing) != 0 {
			t.Errorf("firing %v, want []", got[1].Firing)
		}
	})
	t.Run("store down", func(t *testing.T) {
		f := newFixture(t)
		f.store.err = errBroken
		h := New(f.opts)
		for _, path := range []string{"/api/servers", "/api/servers/web1/latest", "/api/servers/web1/snapshots"} {
			rec := do(t, h, "GET", path, "")
			wantError(t, rec, http.StatusInternalServerError, "reading the store failed: see the collector's log")
			if strings.Contains(rec.Body.String(), "27017") {
				t.Errorf("%s: the answer leaks the error: %s", path, rec.Body)
			}
		}
		if n := strings.Count(f.logs.String(), "socket was unexpectedly closed"); n != 3 {
			t.Errorf("%d errors logged, want 3: %s", n, f.logs)
		}
	})
}

func TestLatest(t *testing.T) {
	f := newFixture(t)
	h := New(f.opts)
	var got Snapshot
	decode(t, do(t, h, "GET", "/api/servers/web1/latest", ""), http.StatusOK, &got)
	if got.Server != "web1" || !got.At.Equal(now.Add(-time.Minute)) || got.DurationMS != 1500 ||
		got.Snapshot.CPU.Percent != 42.5 || got.Snapshot.Processes.Count("python") != 12 {
		t.Errorf("latest %+v", got)
	}

	decode(t, do(t, h, "GET", "/api/servers/"+url.PathEscape(evil)+"/latest", ""), http.StatusOK, &got)
	if got.Server != evil {
		t.Errorf("latest of the hostile name: server %q", got.Server)
	}

	wantError(t, do(t, h, "GET", "/api/servers/nope/latest", ""), http.StatusNotFound, `unknown server "nope"`)
	wantError(t, do(t, h, "GET", "/api/servers/web3/latest", ""), http.StatusNotFound, `no snapshot of "web3" yet`)
	wantError(t, do(t, h, "GET", "/api/servers/web1/latest?since=1h", ""), http.StatusBadRequest, `unknown query parameter "since" (this path takes none)`)

	// A server dropped from the inventory is unknown, stored data or not.
	f.servers = f.servers[1:]
	wantError(t, do(t, h, "GET", "/api/servers/web1/latest", ""), http.StatusNotFound, `unknown server "web1"`)
	wantError(t, do(t, h, "GET", "/api/servers/web1/snapshots", ""), http.StatusNotFound, `unknown server "web1"`)
}

func TestSnapshotsPages(t *testing.T) {
	f := newFixture(t)
	var recs []monitor.Result
	start := now.Add(-250 * time.Minute)
	for i := range 250 {
		at := start.Add(time.Duration(i) * time.Minute)
		recs = append(recs, monitor.Result{Server: "web1", At: at, Duration: time.Second, Snapshot: snap(at, float64(i), 50, 50)})
	}
	f.store.recs["web1"] = recs
	h := New(f.opts)

	var seen []time.Time
	path := "/api/servers/web1/snapshots?limit=100&since=" + url.QueryEscape(start.Add(10*time.Minute).Format(time.RFC3339))
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("the pages never end")
		}
		var page SnapshotPage
		decode(t, do(t, h, "GET", path, ""), http.StatusOK, &page)
		for i, it := range page.Items {
			if i > 0 && !it.At.After(page.Items[i-1].At) {
				t.Fatalf("page %d not oldest first at %d", pages, i)
			}
		}
		seen = append(page.itemTimes(), seen...)
		if page.Next == nil {
			if pages != 2 || len(page.Items) != 40 {
				t.Errorf("last page is page %d with %d items, want page 2 with 40", pages, len(page.Items))
			}
			break
		}
		if len(page.Items) != 100 || !page.Next.Equal(page.Items[0].At) {
			t.Fatalf("page %d: %d items, next %v, oldest %v", pages, len(page.Items), page.Next, page.Items[0].At)
		}
		path = "/api/servers/web1/snapshots?limit=100&since=" + url.QueryEscape(page.Since.Format(time.RFC3339Nano)) +
			"&until=" + url.QueryEscape(page.Next.Format(time.RFC3339Nano))
	}
	if len(seen) != 240 || !seen[0].Equal(start.Add(10*time.Minute)) || !seen[239].Equal(recs[249].At) {
		t.Errorf("pages held %d snapshots from %v to %v, want 240 from the since to the newest", len(seen), seen[0], seen[len(seen)-1])
	}

	// Exactly limit items left: no next page to find empty.
	var page SnapshotPage
	decode(t, do(t, h, "GET", "/api/servers/web1/snapshots?limit=50&since=50m", ""), http.StatusOK, &page)
	if len(page.Items) != 50 || page.Next != nil {
		t.Errorf("50 of 50: %d items, next %v; want 50 and null", len(page.Items), page.Next)
	}
	decode(t, do(t, h, "GET", "/api/servers/web3/snapshots", ""), http.StatusOK, &page)
	if page.Items == nil || len(page.Items) != 0 || page.Next != nil {
		t.Errorf("no data: items %v, next %v; want [] and null", page.Items, page.Next)
	}
}

func (p SnapshotPage) itemTimes() []time.Time {
	var out []time.Time
	for _, it := range p.Items {
		out = append(out, it.At)
	}
	return out
}

func TestSnapshotsParams(t *testing.T) {
	f := newFixture(t)
	h := New(f.opts)
	for _, tc := range []struct {
		query           string
		from, to        time.Time
		limit           int
		wantStatus      int
		wantErrorPrefix string
	}{
		{query: "", from: time.Unix(0, 0), to: now, limit: 101},
		{query: "since=24h", from: now.Add(-24 * time.Hour), to: now, limit: 101},
		{query: "since=7d&until=1d&limit=1000", from: now.Add(-7 * 24 * time.Hour), to: now.Add(-24 * time.Hour), limit: 1001},
		{query: "since=2026-02-28T00:00:00Z&until=2026-03-01T01:00:00+01:00&limit=1", from: time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), to: now.Add(-12 * time.Hour), limit: 2},
		{query: "since=2026-02-28T00:00:00%2B02:00", from: time.Date(2026, 2, 27, 22, 0, 0, 0, time.UTC), to: now, limit: 101},
		{query: "since=abc", wantErrorPrefix: `since: "abc" is neither RFC 3339`},
		{query: "since=", wantErrorPrefix: "since: empty"},
		{query: "since=-1h", wantErrorPrefix: `since: "-1h": a duration back from now must be positive`},
		{query: "since=0s", wantErrorPrefix: `since: "0s": a duration back from now must be positive`},
		{query: "until=yesterday", wantErrorPrefix: `until: "yesterday" is neither`},
		{query: "since=1h&until=2h", wantErrorPrefix: "since: 2026-03-01T11:00:00Z is not before until 2026-03-01T10:00:00Z"},
		{query: "limit=0", wantErrorPrefix: `limit: "0" is not a whole number from 1 to 1000`},
		{query: "limit=1001", wantErrorPrefix: `limit: "1001" is not`},
		{query: "limit=ten", wantErrorPrefix: `limit: "ten" is not`},
		{query: "limit=", wantErrorPrefix: `limit: "" is not`},
		{query: "limit=1&limit=2", wantErrorPrefix: "limit: given 2 times, want once"},
		{query: "sinse=1h", wantErrorPrefix: `unknown query parameter "sinse" (want since, until, limit)`},
		{query: "since=%zz", wantErrorPrefix: "query: invalid URL escape"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			rec := do(t, h, "GET", "/api/servers/web1/snapshots?"+tc.query, "")
			if tc.wantErrorPrefix != "" {
				var e errorBody
				decode(t, rec, http.StatusBadRequest, &e)
				if !strings.HasPrefix(e.Error, tc.wantErrorPrefix) {
					t.Errorf("error %q, want it to start %q", e.Error, tc.wantErrorPrefix)
				}
				return
			}
			var page SnapshotPage
			decode(t, rec, http.StatusOK, &page)
			if !f.store.lastFrom.Equal(tc.from) || !f.store.lastTo.Equal(tc.to) || f.store.lastLimit != tc.limit {
				t.Errorf("store asked for [%v, %v) limit %d, want [%v, %v) limit %d", f.store.lastFrom, f.store.lastTo, f.store.lastLimit, tc.from, tc.to, tc.limit)
			}
			if !page.Since.Equal(tc.from) || !page.Until.Equal(tc.to) {
				t.Errorf("page says [%v, %v), want [%v, %v)", page.Since, page.Until, tc.from, tc.to)
			}
		})
	}
}

func TestReport(t *testing.T) {
	f := newFixture(t)
	h := New(f.opts)

	var got report.Report
	rec := do(t, h, "GET", "/api/report", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, type %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Servers) != 4 || !got.From.Equal(now.Add(-7*24*time.Hour)) || !got.To.Equal(now) {
		t.Errorf("report from %v to %v with %d servers", got.From, got.To, len(got.Servers))
	}

	for _, tc := range []struct {
		query    string
		from, to time.Time
	}{
		{"since=24h", now.Add(-24 * time.Hour), now},
		{"from=2026-02-01T00:00:00Z&to=2026-02-08T00:00:00Z", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 8, 0, 0, 0, 0, time.UTC)},
		{"since=30d&until=1d", now.Add(-30 * 24 * time.Hour), now.Add(-24 * time.Hour)},
	} {
		f.reports = nil
		if rec := do(t, h, "GET", "/api/report?"+tc.query, ""); rec.Code != http.StatusOK {
			t.Errorf("%s: status %d: %s", tc.query, rec.Code, rec.Body)
			continue
		}
		if len(f.reports) != 1 || !f.reports[0].from.Equal(tc.from) || !f.reports[0].to.Equal(tc.to) {
			t.Errorf("%s: report built for %v, want [%v, %v)", tc.query, f.reports, tc.from, tc.to)
		}
	}

	for query, want := range map[string]string{
		"since=7x":         `since: "7x" is neither RFC 3339 (2026-11-25T08:00:00Z), a date (2026-11-25) nor a duration back from now (24h, 7d)`,
		"since=7d&from=1d": "since and from mean the same: give one",
		"until=1h&to=2h":   "until and to mean the same: give one",
		"from=1d&to=2d":    "from: 2026-02-28T12:00:00Z is not before to 2026-02-27T12:00:00Z (the range is empty)",
		"servers=web1":     `unknown query parameter "servers" (want since, from, until, to)`,
	} {
		for _, path := range []string{"/api/report?", "/report?"} {
			wantError(t, do(t, h, "GET", path+query, ""), http.StatusBadRequest, want)
		}
	}

	rec = do(t, h, "GET", "/report?since=24h", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("/report: status %d, type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	if strings.Contains(body, evil) || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("/report does not escape the hostile name")
	}
	if rec.Header().Get("Content-Security-Policy") == "" {
		t.Errorf("/report has no Content-Security-Policy")
	}

	f.opts.Report = func(context.Context, time.Time, time.Time) (*report.Report, error) { return nil, errBroken }
	broken := New(f.opts)
	for _, path := range []string{"/api/report", "/report"} {
		wantError(t, do(t, broken, "GET", path, ""), http.StatusInternalServerError, "building the report failed: see the collector's log")
	}
	if !strings.Contains(f.logs.String(), "socket was unexpectedly closed") {
		t.Errorf("the report error was not logged: %s", f.logs)
	}

	f.opts.Report = nil
	none := New(f.opts)
	for _, path := range []string{"/api/report", "/report"} {
		wantError(t, do(t, none, "GET", path, ""), http.StatusNotImplemented, "the report is not available here")
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "1d12h", want: now.Add(-36 * time.Hour)},
		{in: "2026-01-02T03:04:05.678Z", want: time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)},
		{in: "2026-01-02T03:04:05 01:00", want: time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC)},
		{in: "2026-01-02", want: time.Date(2026, 1, 2, 0, 0, 0, 0, time.Local)},
		{in: "2026-01-32", err: true},
		{in: "7", err: true},
		{in: "-7d", err: true},
		{in: "", err: true},
	} {
		got, err := parseTime(tc.in, now)
		if (err != nil) != tc.err || !tc.err && !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}
