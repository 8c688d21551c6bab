package store

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// A rollup keeps each metric's peak as one string (pk) that $max compares
// as the peak documents of older rollups were compared (peakDoc): the
// highest value wins, and of equal values the earliest reading. The string
// starts with the value and the order (minus the time in milliseconds),
// each as 16 hex digits of a 64-bit key that sorts as the number does
// (the order gives the time back); after them come the process counts of
// that reading:
//
//	<value key><order key>|[s<sample ms>[w]|]<matched total>;<keyword>;<count>;...
//
// with "-" for the matched total when the reading could not count
// processes. The part in brackets says how the value was seen (peakDoc's
// SampleMS and Watched, "w" for a watching probe's interval maximum); it
// is left out when neither is known, as in rollups written before it was
// kept. One string keeps a rollup in one SQLite page where a peak
// document of six fields, with the schema FerretDB stores beside them, took
// three times the room.

// peakText returns p as a rollup keeps it.
func peakText(p *peakDoc) string {
	var b strings.Builder
	b.Grow(64)
	fmt.Fprintf(&b, "%016X%016X|", sortableFloat(p.Value), uint64(p.Order)^(1<<63))
	if p.SampleMS > 0 || p.Watched {
		b.WriteByte('s')
		b.WriteString(strconv.FormatInt(p.SampleMS, 10))
		if p.Watched {
			b.WriteByte('w')
		}
		b.WriteByte('|')
	}
	if !p.ProcsKnown {
		b.WriteByte('-')
		return b.String()
	}
	b.WriteString(strconv.Itoa(p.MatchedTotal))
	for _, k := range p.Procs {
		b.WriteByte(';')
		b.WriteString(pointEscaper.Replace(k.Keyword))
		b.WriteByte(';')
		b.WriteString(strconv.Itoa(k.Count))
	}
	return b.String()
}

// errPeakText is wrapped by the errors of parsePeakText.
var errPeakText = errors.New("not a peak")

// parsePeakText reads a peak written by peakText.
func parsePeakText(s string) (monitor.Peak, error) {
	if len(s) < 34 || s[32] != '|' {
		return monitor.Peak{}, fmt.Errorf("%w: %.60q", errPeakText, s)
	}
	key, err := strconv.ParseUint(s[:16], 16, 64)
	if err != nil {
		return monitor.Peak{}, fmt.Errorf("%w: value key %.16q", errPeakText, s)
	}
	order, err := strconv.ParseUint(s[16:32], 16, 64)
	if err != nil {
		return monitor.Peak{}, fmt.Errorf("%w: order key %.16q", errPeakText, s[16:])
	}
	rest := s[33:]
	p := monitor.Peak{Value: unsortableFloat(key), At: time.UnixMilli(-int64(order ^ (1 << 63))).UTC()}
	if strings.HasPrefix(rest, "s") { // how the value was seen: s<ms>[w]|
		seen, after, _ := strings.Cut(rest[1:], "|")
		seen, p.Watched = strings.CutSuffix(seen, "w")
		ms, err := strconv.ParseInt(seen, 10, 64)
		if err != nil || ms < 0 {
			return monitor.Peak{}, fmt.Errorf("%w: sample %.20q", errPeakText, seen)
		}
		p.Sample = time.Duration(ms) * time.Millisecond
		rest = after
	}
	if rest == "-" {
		return p, nil
	}
	// <matched total>;<keyword>;<count>;... read field by field: rollups
	// are read by the tens of thousands, so without a slice of fields.
	total, rest, more := strings.Cut(rest, ";")
	if p.MatchedTotal, err = strconv.Atoi(total); err != nil {
		return monitor.Peak{}, fmt.Errorf("%w: matched total %.20q", errPeakText, total)
	}
	p.ProcsKnown = true
	p.Procs = make([]monitor.KeywordCount, 0, strings.Count(rest, ";")/2+1)
	for more {
		var keyword, count string
		keyword, rest, more = strings.Cut(rest, ";")
		if !more {
			return monitor.Peak{}, fmt.Errorf("%w: process counts %.60q", errPeakText, s[33:])
		}
		count, rest, more = strings.Cut(rest, ";")
		n, err := strconv.Atoi(count)
		if err != nil {
			return monitor.Peak{}, fmt.Errorf("%w: count %.20q", errPeakText, count)
		}
		p.Procs = append(p.Procs, monitor.KeywordCount{Keyword: unescapePoint(keyword), Count: n})
	}
	return p, nil
}

// sortableFloat maps v to a key whose unsigned order is v's order: the
// sign bit set for positive numbers, every bit flipped for negative ones.
func sortableFloat(v float64) uint64 {
	b := math.Float64bits(v + 0) // -0 as 0
	if b>>63 == 0 {
		return b | 1<<63
	}
	return ^b
}

func unsortableFloat(k uint64) float64 {
	if k>>63 == 1 {
		return math.Float64frombits(k &^ (1 << 63))
	}
	return math.Float64frombits(^k)
}
