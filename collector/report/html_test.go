package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/crawlerfleet/collector/monitor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// wave is a deterministic stand-in for noise: a sum of incommensurate sines
// in [-1, 1].
func wave(i int) float64 {
	x := float64(i)
	return (math.Sin(x*1.7) + math.Sin(x*0.37+1) + math.Sin(x*5.3+2)) / 3
}

// genRollups builds hourly rollups over hours, with twelve readings an
// hour from read(h, k); hours where skip(h) is true have none.
func genRollups(name string, hours int, skip func(h int) bool, read func(h, k int) reading) []monitor.Rollup {
	var rs []monitor.Rollup
	for h := range hours {
		if skip != nil && skip(h) {
			continue
		}
		rds := make([]reading, 12)
		for k := range rds {
			// Two decimals, as the probe reports: the golden files then do
			// not depend on the last bits of the float arithmetic above.
			rd := read(h, k)
			for _, v := range []*float64{&rd.cpu, &rd.mem, &rd.disk, &rd.load} {
				*v = math.Round(*v*100) / 100
			}
			rds[k] = rd
		}
		ru := hourRollup(name, t0.Add(time.Duration(h)*time.Hour), rds...)
		// hourRollup spaces readings ten minutes apart; five minutes here.
		for _, m := range []*monitor.Metric{&ru.CPU, &ru.Mem, &ru.Disk, &ru.Load1} {
			m.Peak.At = ru.Start.Add(m.Peak.At.Sub(ru.Start) / 2)
		}
		rs = append(rs, ru)
	}
	return rs
}

// goldenInput is the fleet of the golden files: a week, four servers.
func goldenInput() Input {
	const hours = 7 * 24
	daily := func(h, k int) float64 { // 0..1, peaking mid-afternoon
		return 0.5 + 0.5*math.Sin(2*math.Pi*(float64(h)+float64(k)/12-9)/24)
	}
	crawl01 := genRollups("crawl-01", hours, nil, func(h, k int) reading {
		p := 6 + int(math.Round(14*daily(h, k)+2*wave(h*12+k)))
		return reading{
			cpu: 8 + 2.9*float64(p) + 3*wave(h*12+k+500), mem: 14 + 2.4*float64(p) + 1.5*wave(h*12+k+900),
			disk: 41 + float64(h)/40, load: float64(p) / 3.2, procs: p,
		}
	})
	crawl02 := genRollups("crawl-02", hours, func(h int) bool { return h >= 40 && h < 47 || h >= 100 && h < 104 }, func(h, k int) reading {
		p := 4 + int(math.Round(8*daily(h+6, k)))
		return reading{
			cpu: 12 + 5*float64(p) + 6*wave(h*12+k), mem: 55 + 18*wave(h*12+k+77),
			disk: 62, load: float64(p) / 2, procs: p,
		}
	})
	crawl03 := genRollups("crawl-03", hours, func(h int) bool { return h >= 150 }, func(h, k int) reading {
		p := 3 + (h/30)%2
		return reading{
			cpu: 30 + 4*wave(h*12+k), mem: 40 + 3*float64(p) + wave(h), disk: 92.4 + float64(h)/300, load: 1.2, procs: p,
		}
	})
	// How the peaks were seen: crawl-01 watched at 1 s, crawl-02 by
	// one-shot probes with a 1 s sample, crawl-03 before it was kept.
	setSampling(crawl01, true, time.Second)
	setSampling(crawl02, false, time.Second)
	failures02 := map[string]int{"timeout": 9, "unreachable": 2}
	return Input{
		From: t0, To: t0.Add(hours * time.Hour), Generated: t0.Add(hours*time.Hour + 5*time.Minute),
		HourlyPoints: true,
		Servers: []ServerInput{
			{Name: "db-01", Description: "PostgreSQL primary (not a crawler)", Tags: []string{"db"},
				Attempts: hours * 12, Failures: map[string]int{"unreachable": hours * 12},
				LastError: "dial tcp 10.0.3.7:22: connect: connection refused"},
			{Name: "crawl-01", Description: "Scrapy crawlers, Frankfurt", Tags: []string{"crawler", "eu"},
				Rollups: crawl01, Points: PointsFromRollups(crawl01, ""), Attempts: hours * 12, MemTotalBytes: 16 << 30},
			{Name: "crawl-02", Description: "Headless browsers, Virginia", Tags: []string{"crawler", "us"},
				Rollups: crawl02, Points: PointsFromRollups(crawl02, ""), Attempts: (hours-11)*12 + 11,
				Failures: failures02, MemTotalBytes: 32 << 30},
			{Name: "crawl-03", Description: "Sitemap fetcher", Tags: []string{"crawler"},
				Rollups: crawl03, Points: PointsFromRollups(crawl03, ""), Attempts: 150*12 + 18*12,
				Failures: map[string]int{"auth": 18 * 12}, LastError: "ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey]"},
		},
	}
}

func render(t *testing.T, r *Report, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	write := r.WriteHTML
	if format == "json" {
		write = r.WriteJSON
	}
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	r := Build(goldenInput())
	for _, format := range []string{"html", "json"} {
		t.Run(format, func(t *testing.T) {
			got := render(t, r, format)
			path := filepath.Join("testdata", "report."+format)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./collector/report -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s; run go test ./collector/report -update and review the diff", format, path)
			}
		})
	}
}

func TestJSONFields(t *testing.T) {
	var doc struct {
		TimeZone string `json:"time_zone"`
		Servers  []struct {
			Name     string `json:"name"`
			NoData   bool   `json:"no_data"`
			Failing  bool   `json:"failing"`
			Capacity []struct {
				Known bool `json:"known"`
				More  int  `json:"more"`
			} `json:"capacity"`
			Peaks struct {
				Mem *struct {
					Procs *int `json:"procs"`
				} `json:"mem"`
			} `json:"peaks"`
			Mem struct {
				Status string  `json:"status"`
				R2     float64 `json:"r2"`
			} `json:"mem_fit"`
		} `json:"servers"`
	}
	in := goldenInput()
	r := Build(in)
	if err := json.Unmarshal(render(t, r, "json"), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.TimeZone != "UTC" || len(doc.Servers) != len(in.Servers) {
		t.Fatalf("time zone %q, %d servers; want UTC, %d", doc.TimeZone, len(doc.Servers), len(in.Servers))
	}
	for i, s := range doc.Servers {
		want := r.Servers[i]
		for j, c := range s.Capacity {
			if j < len(want.Capacity) && (c.Known != want.Capacity[j].Known || c.More != want.Capacity[j].More) {
				t.Errorf("%s: capacity %d in JSON %+v, in report %+v", s.Name, j, c, want.Capacity[j])
			}
		}
		if s.Name != want.Name || s.NoData != want.NoData || s.Failing != want.Failing ||
			len(s.Capacity) != len(want.Capacity) ||
			s.Mem.Status != string(want.Mem.Status) || s.Mem.R2 != want.Mem.R2 {
			t.Errorf("server %d in JSON = %+v, want the report's %s", i, s, want.Name)
		}
		if (s.Peaks.Mem == nil) != (want.Peaks.Mem == nil) {
			t.Errorf("%s: memory peak in JSON %v, in report %v", s.Name, s.Peaks.Mem, want.Peaks.Mem)
		}
	}
	last := doc.Servers[len(doc.Servers)-1]
	if last.Name != "db-01" || !last.NoData || last.Peaks.Mem != nil {
		t.Errorf("last server = %+v, want db-01 without data and a null peak", last)
	}
}

// resourceURL matches anything a browser would fetch or link off the page.
var resourceURL = regexp.MustCompile(`(?i)https?://|//[a-z0-9.-]+\.[a-z]{2,}/|\bsrc\s*=|<link\b|@import|url\(|<iframe|<img|<object|<embed`)

func TestHTMLSelfContained(t *testing.T) {
	for _, c := range []struct {
		name string
		in   Input
	}{
		{"golden", goldenInput()},
		{"empty fleet", Input{From: t0, To: t0.Add(time.Hour)}},
		{"zero input, one server", Input{Servers: []ServerInput{{Name: "s", Rollups: linearRollups("s", 3), Points: PointsFromRollups(linearRollups("s", 3), "")}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			page := render(t, Build(c.in), "html")
			if loc := resourceURL.FindIndex(page); loc != nil {
				t.Errorf("the page refers to something outside it: %q", page[max(loc[0]-40, 0):min(loc[1]+40, len(page))])
			}
		})
	}
}

// voidElements have no end tag in HTML.
var voidElements = map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true,
	"img": true, "input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}

// checkWellFormed fails t unless every element of page is closed in order
// and every inline SVG is well-formed XML.
func checkWellFormed(t *testing.T, page []byte) {
	t.Helper()
	z := html.NewTokenizer(bytes.NewReader(page))
	var open []string
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if !errors.Is(z.Err(), io.EOF) {
				t.Fatalf("tokenize: %v", z.Err())
			}
			break
		}
		name, _ := z.TagName()
		switch tt {
		case html.StartTagToken:
			if !voidElements[string(name)] {
				open = append(open, string(name))
			}
		case html.EndTagToken:
			if len(open) == 0 || open[len(open)-1] != string(name) {
				t.Fatalf("</%s> closes %v", name, open)
			}
			open = open[:len(open)-1]
		}
	}
	if len(open) > 0 {
		t.Fatalf("unclosed elements: %v", open)
	}
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAll(page, -1)
	for _, svg := range svgs {
		dec := xml.NewDecoder(bytes.NewReader(svg))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("svg is not well-formed XML: %v\n%.300s", err, svg)
			}
		}
	}
}

func TestHTMLWellFormed(t *testing.T) {
	in := goldenInput()
	page := render(t, Build(in), "html")
	checkWellFormed(t, page)

	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	count := func(match func(n *html.Node) bool) int {
		c := 0
		for n := range doc.Descendants() {
			if n.Type == html.ElementNode && match(n) {
				c++
			}
		}
		return c
	}
	class := func(n *html.Node, want string) bool {
		for _, a := range n.Attr {
			if a.Key == "class" && strings.Contains(" "+a.Val+" ", " "+want+" ") {
				return true
			}
		}
		return false
	}
	withData := 0
	for _, s := range in.Servers {
		if len(s.Rollups) > 0 {
			withData++
		}
	}
	for _, c := range []struct {
		what string
		got  int
		want int
	}{
		{"server sections", count(func(n *html.Node) bool { return n.Data == "section" && class(n, "server") }), len(in.Servers)},
		{"summary rows", count(func(n *html.Node) bool {
			return n.Data == "tr" && n.Parent.Data == "tbody" && class(n.Parent.Parent, "fleet")
		}), len(in.Servers)},
		{"time series charts", count(func(n *html.Node) bool { return n.Data == "svg" && class(n, "ts") }), withData},
		{"scatter charts", count(func(n *html.Node) bool { return n.Data == "svg" && class(n, "sc") }), 2 * withData},
		{"scripts", count(func(n *html.Node) bool { return n.Data == "script" }), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
}

func TestHTMLEscaping(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	rs := linearRollups(evil, 48)
	in := Input{
		From: t0, To: t0.Add(48 * time.Hour), Keyword: evil,
		Servers: []ServerInput{
			{Name: evil, Description: evil, Tags: []string{evil}, Rollups: rs, Points: PointsFromRollups(rs, ""), Attempts: 50,
				Failures: map[string]int{evil: 2}, LastError: evil},
			{Name: evil + "2", LastError: evil},
		},
	}
	r := Build(in)
	page := render(t, r, "html")
	if n := bytes.Count(page, []byte("<script")); n != 1 {
		t.Errorf("the page has %d <script elements, want only its own", n)
	}
	if bytes.Contains(page, []byte("alert(1)</script>")) {
		t.Error("the page contains the server's script unescaped")
	}
	checkWellFormed(t, page)

	// The text shows as text: each place it went in is a text node or an
	// attribute holding it literally.
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	texts, attrs := 0, 0
	for n := range doc.Descendants() {
		if n.Type == html.TextNode && strings.Contains(n.Data, evil) {
			texts++
		}
		for _, a := range n.Attr {
			if strings.Contains(a.Val, evil) {
				attrs++
			}
		}
	}
	// Name (summary, section, attention), description, tag, error (twice
	// each server), keyword (headings, captions, chart labels).
	if texts < 10 || attrs < 1 {
		t.Errorf("the server's text shows %d times as text and %d in attributes, want it everywhere it was put", texts, attrs)
	}

	// The charts escape it on their own.
	s := r.Servers[0]
	for name, svg := range map[string]string{
		"time series": s.charts.timeSeries,
		"scatter":     s.charts.scatterMem,
	} {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(svg, "<script") {
				t.Errorf("svg contains an unescaped <script")
			}
			if !strings.Contains(svg, "&lt;script&gt;") {
				t.Errorf("svg does not show the keyword escaped")
			}
			checkWellFormed(t, []byte(svg))
		})
	}
}

func TestSentences(t *testing.T) {
	const hours = 48
	rs := linearRollups("s", hours)
	r, s := buildOne(ServerInput{Name: "s", Rollups: rs, Points: PointsFromRollups(rs, ""), MemTotalBytes: 16 << 30}, hours, "python")
	// 2.5 % of 16 GiB = 409.6 MiB.
	if got, want := r.costText(s), "Each “python” process ≈ 410 MiB of memory (2.50 %) and 1.50 % CPU."; got != want {
		t.Errorf("cost = %q, want %q", got, want)
	}
	// 32 in all (20 at the memory peak of 60 %, + (90 − 60) / 2.5); 18 in
	// the latest hour.
	if got, want := s.Capacity[0].Headline, "+14 python, limited by memory"; got != want {
		t.Errorf("headline = %q, want %q", got, want)
	}
	thin := rs[:5]
	r, s = buildOne(ServerInput{Name: "s", Rollups: thin, Points: PointsFromRollups(thin, "")}, hours, "")
	if got := r.costText(s); got != "" {
		t.Errorf("cost on thin data = %q, want none", got)
	}
	if got := s.Capacity[0].Headline; !strings.Contains(got, "too little data") || strings.ContainsAny(got, "+") {
		t.Errorf("capacity on thin data = %q", got)
	}
}

// TestCaptionsNameThePoints: the captions say whether the points are single
// snapshots or hourly means.
func TestCaptionsNameThePoints(t *testing.T) {
	rs := linearRollups("s", 24)
	for _, tc := range []struct {
		hourly    bool
		want, not string
	}{
		{true, "each point an hour’s mean", "each point a snapshot"},
		{false, "each point a snapshot", "hourly means"},
	} {
		in := Input{From: t0, To: t0.Add(24 * time.Hour), HourlyPoints: tc.hourly,
			Servers: []ServerInput{{Name: "s", Rollups: rs, Points: PointsFromRollups(rs, "")}}}
		var b strings.Builder
		if err := Build(in).WriteHTML(&b); err != nil {
			t.Fatal(err)
		}
		if html := b.String(); !strings.Contains(html, tc.want) || strings.Contains(html, tc.not) {
			t.Errorf("hourly %v: the HTML lacks %q or holds %q", tc.hourly, tc.want, tc.not)
		}
	}
}

// setSampling marks every peak of rs as seen by a watching probe or not,
// with sample.
func setSampling(rs []monitor.Rollup, watched bool, sample time.Duration) {
	for i := range rs {
		for _, m := range []*monitor.Metric{&rs[i].CPU, &rs[i].Mem, &rs[i].Disk, &rs[i].Load1} {
			m.Peak.Watched, m.Peak.Sample = watched, sample
		}
	}
}
