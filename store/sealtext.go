package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// The text of a sealed day (see sealed.go): the hourly rollups of one server
// and UTC day, each exact, one line per hour that has a rollup, lines
// separated by '|':
//
//	r1|<hour>;<count>;<failed>;<nctx>;ctx×nctx;metric×12;<matched min;max;sum;n>;
//	   <nkw>;(keyword;sum;n;rss;cpu;rssn;fds;fdn;fdcount)×nkw;<nfs>;(path;metric)×nfs|...
//
// A metric is <n>;<sum>;<ctx>;<peak value>, ctx and value empty when the
// metric has no peak. The twelve metrics are in rollupMetrics' order. A ctx
// is what a peak says besides its value, written once for all the metrics
// that peaked at one reading:
//
//	<ms from the hour's start>;<sample ms>;<0|1 watched>;<matched total, or - unknown>;<n>;(keyword;count)×n
//
// Floats keep every bit (strconv 'g', -1); names are escaped (sealEscaper)
// so that ';', '|' and '%' only ever separate. Times are kept to the
// millisecond, as the rollups keep them.

// sealVersion starts every sealed text; a reader refuses another.
const sealVersion = "r1"

var (
	sealEscaper   = strings.NewReplacer("%", "%25", ";", "%3B", "|", "%7C")
	sealUnescaper = strings.NewReplacer("%3B", ";", "%7C", "|", "%25", "%")
)

// rollupMetrics returns r's metrics in the order a sealed text keeps them.
func rollupMetrics(r *monitor.Rollup) [12]*monitor.Metric {
	return [12]*monitor.Metric{&r.CPU, &r.Mem, &r.Disk, &r.Load1, &r.Unavailable, &r.SwapPages,
		&r.PressureCPU, &r.PressureMem, &r.PressureIO, &r.RunQueue, &r.NetBytes, &r.FDUsed}
}

// sealText writes the hourly rollups rs of the day that starts at day as
// one sealed text. Each rollup must start on an hour of that day.
func sealText(day time.Time, rs []monitor.Rollup) (string, error) {
	b := make([]byte, 0, 512*len(rs)+8)
	b = append(b, sealVersion...)
	for i := range rs {
		r := &rs[i]
		hour := r.Start.Sub(day)
		if r.Period != monitor.Hour || hour < 0 || hour >= 24*time.Hour || hour%time.Hour != 0 {
			return "", fmt.Errorf("seal %s of %s: a %s rollup starting %s is not an hour of that day",
				r.Server, day.Format(time.DateOnly), r.Period, r.Start.Format(time.RFC3339))
		}
		b = append(b, '|')
		b = appendRollupLine(b, r, int(hour/time.Hour))
	}
	return string(b), nil
}

func appendRollupLine(b []byte, r *monitor.Rollup, hour int) []byte {
	b = strconv.AppendInt(b, int64(hour), 10)
	sep := func() { b = append(b, ';') }
	num := func(v int64) {
		sep()
		b = strconv.AppendInt(b, v, 10)
	}
	float := func(v float64) {
		sep()
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	name := func(s string) {
		sep()
		b = append(b, sealEscaper.Replace(s)...)
	}
	num(r.Count)
	num(r.Failed)

	// The contexts: the peaks' readings, each written once.
	metrics := rollupMetrics(r)
	peaks := make([]*monitor.Peak, 0, len(metrics)+len(r.Filesystems))
	for _, m := range metrics {
		peaks = append(peaks, &m.Peak)
	}
	for i := range r.Filesystems {
		peaks = append(peaks, &r.Filesystems[i].Peak)
	}
	ctxOf := make([]int, len(peaks)) // -1: no peak
	var ctxs []string
	start := r.Start.UnixMilli()
	for i, p := range peaks {
		if isZeroPeak(p) {
			ctxOf[i] = -1
			continue
		}
		c := peakContext(p, start)
		ctxOf[i] = indexOrAppend(&ctxs, c)
	}
	num(int64(len(ctxs)))
	for _, c := range ctxs {
		sep()
		b = append(b, c...)
	}
	metric := func(m *monitor.Metric, ctx int) {
		num(m.N)
		float(m.Sum)
		sep()
		if ctx >= 0 {
			b = strconv.AppendInt(b, int64(ctx), 10)
			float(m.Peak.Value)
		} else {
			sep()
		}
	}
	for i, m := range metrics {
		metric(m, ctxOf[i])
	}
	num(int64(r.Matched.Min))
	num(int64(r.Matched.Max))
	num(r.Matched.Sum)
	num(r.Matched.N)
	num(int64(len(r.Keywords)))
	for _, k := range r.Keywords {
		name(k.Keyword)
		num(k.Sum)
		num(k.N)
		float(k.RSSBytes)
		float(k.CPUPercent)
		num(k.RSSN)
		num(k.FDs)
		num(k.FDN)
		num(k.FDCount)
	}
	num(int64(len(r.Filesystems)))
	for i := range r.Filesystems {
		name(r.Filesystems[i].Path)
		metric(&r.Filesystems[i].Metric, ctxOf[len(metrics)+i])
	}
	return b
}

func isZeroPeak(p *monitor.Peak) bool {
	return p.Value == 0 && p.At.IsZero() && !p.ProcsKnown && p.MatchedTotal == 0 && p.Procs == nil && !p.Watched && p.Sample == 0
}

// peakContext writes what p says besides its value, its time as
// milliseconds from start (milliseconds since the epoch).
func peakContext(p *monitor.Peak, start int64) string {
	b := make([]byte, 0, 48)
	b = strconv.AppendInt(b, p.At.UnixMilli()-start, 10)
	b = append(b, ';')
	b = strconv.AppendInt(b, p.Sample.Milliseconds(), 10)
	if p.Watched {
		b = append(b, ";1"...)
	} else {
		b = append(b, ";0"...)
	}
	if !p.ProcsKnown {
		return string(append(b, ";-;0"...))
	}
	b = append(b, ';')
	b = strconv.AppendInt(b, int64(p.MatchedTotal), 10)
	b = append(b, ';')
	b = strconv.AppendInt(b, int64(len(p.Procs)), 10)
	for _, k := range p.Procs {
		b = append(b, ';')
		b = append(b, sealEscaper.Replace(k.Keyword)...)
		b = append(b, ';')
		b = strconv.AppendInt(b, int64(k.Count), 10)
	}
	return string(b)
}

func indexOrAppend(list *[]string, s string) int {
	for i, v := range *list {
		if v == s {
			return i
		}
	}
	*list = append(*list, s)
	return len(*list) - 1
}

// errSealText is wrapped by the errors of parseSealText.
var errSealText = errors.New("not a sealed day")

// parseSealText reads the hourly rollups of server written by sealText for
// the day that starts at day, oldest first.
func parseSealText(server string, day time.Time, text string) ([]monitor.Rollup, error) {
	rest, ok := strings.CutPrefix(text, sealVersion)
	if !ok || rest != "" && rest[0] != '|' {
		return nil, fmt.Errorf("%w: version %.10q, want %s", errSealText, text, sealVersion)
	}
	if rest == "" {
		return nil, nil
	}
	lines := strings.Split(rest[1:], "|")
	out := make([]monitor.Rollup, 0, len(lines))
	names := map[string]string{} // each name once, not once a rollup
	for _, line := range lines {
		r, err := parseRollupLine(server, day, line, names)
		if err != nil {
			return nil, err
		}
		if n := len(out); n > 0 && !r.Start.After(out[n-1].Start) {
			return nil, fmt.Errorf("%w: hour %s after %s", errSealText, r.Start.Format("15"), out[n-1].Start.Format("15"))
		}
		out = append(out, r)
	}
	return out, nil
}

// lineReader reads the ';'-separated fields of one line of a sealed text;
// the first error sticks and names the field.
type lineReader struct {
	line, rest string
	pos        int
	done       bool
	err        error
	names      map[string]string
}

func (l *lineReader) fail(format string, args ...any) {
	if l.err == nil {
		l.err = fmt.Errorf("%w: field %d: %s in %.60q", errSealText, l.pos, fmt.Sprintf(format, args...), l.line)
	}
}

func (l *lineReader) next() string {
	if l.done {
		l.fail("too few fields")
		return ""
	}
	l.pos++
	field, tail, found := strings.Cut(l.rest, ";")
	l.rest, l.done = tail, !found
	return field
}

func (l *lineReader) int() int64 {
	s := l.next()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		l.fail("%q is not a whole number", s)
	}
	return v
}

// count reads a number of entries that must fit in what is left.
func (l *lineReader) count() int {
	n := l.int()
	if n < 0 || n > int64(len(l.rest)) {
		l.fail("%d entries", n)
		return 0
	}
	return int(n)
}

func (l *lineReader) float() float64 {
	s := l.next()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		l.fail("%q is not a number", s)
	}
	return v
}

func (l *lineReader) name() string {
	s := l.next()
	if n, ok := l.names[s]; ok {
		return n
	}
	n := strings.Clone(s)
	if strings.Contains(n, "%") {
		n = sealUnescaper.Replace(n)
	}
	l.names[s] = n
	return n
}

func parseRollupLine(server string, day time.Time, line string, names map[string]string) (monitor.Rollup, error) {
	l := &lineReader{line: line, rest: line, names: names}
	hour := l.int()
	if l.err == nil && (hour < 0 || hour > 23) {
		l.fail("hour %d", hour)
	}
	r := monitor.Rollup{Server: server, Period: monitor.Hour, Start: day.Add(time.Duration(hour) * time.Hour)}
	r.Count, r.Failed = l.int(), l.int()
	start := r.Start.UnixMilli()
	ctxs := make([]monitor.Peak, l.count())
	for i := range ctxs {
		p := &ctxs[i]
		p.At = time.UnixMilli(start + l.int()).UTC()
		p.Sample = time.Duration(l.int()) * time.Millisecond
		p.Watched = l.next() == "1"
		if total := l.next(); total != "-" {
			v, err := strconv.Atoi(total)
			if err != nil {
				l.fail("matched total %q", total)
			}
			p.ProcsKnown, p.MatchedTotal = true, v
			p.Procs = make([]monitor.KeywordCount, l.count())
			for j := range p.Procs {
				p.Procs[j] = monitor.KeywordCount{Keyword: l.name(), Count: int(l.int())}
			}
		} else {
			l.next() // 0 keywords
		}
	}
	metric := func(m *monitor.Metric) {
		m.N, m.Sum = l.int(), l.float()
		if c := l.next(); c != "" {
			i, err := strconv.Atoi(c)
			if err != nil || i < 0 || i >= len(ctxs) {
				l.fail("peak reading %q of %d", c, len(ctxs))
				return
			}
			m.Peak = ctxs[i] // the peaks of one reading share its Procs
			m.Peak.Value = l.float()
		} else if v := l.next(); v != "" {
			l.fail("a peak value %q without its reading", v)
		}
	}
	for _, m := range rollupMetrics(&r) {
		metric(m)
	}
	r.Matched = monitor.Matched{Min: int(l.int()), Max: int(l.int()), Sum: l.int(), N: l.int()}
	if n := l.count(); n > 0 {
		r.Keywords = make([]monitor.KeywordSum, n)
		for i := range r.Keywords {
			k := &r.Keywords[i]
			k.Keyword, k.Sum, k.N = l.name(), l.int(), l.int()
			k.RSSBytes, k.CPUPercent = l.float(), l.float()
			k.RSSN, k.FDs, k.FDN, k.FDCount = l.int(), l.int(), l.int(), l.int()
		}
	}
	if n := l.count(); n > 0 {
		r.Filesystems = make([]monitor.FilesystemMetric, n)
		for i := range r.Filesystems {
			r.Filesystems[i].Path = l.name()
			metric(&r.Filesystems[i].Metric)
		}
	}
	if l.err == nil && !l.done {
		l.fail("%d fields too many", strings.Count(l.rest, ";")+1)
	}
	if l.err != nil {
		return monitor.Rollup{}, l.err
	}
	return r, nil
}
