package httpapi

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/inventory"
)

// The limits of ?limit= on /api/servers/{name}/snapshots.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// DefaultReportSince is how far back /api/report and /report go without
// since or from.
const DefaultReportSince = 7 * 24 * time.Hour

// query holds a request's query parameters once checked: each known at
// most once, none unknown.
type query url.Values

// parseQuery parses raw, rejecting bad escapes, parameters not in known
// (but "token", which auth reads) and parameters given twice.
func parseQuery(raw string, known ...string) (query, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(v)) {
		if !slices.Contains(known, k) && k != "token" {
			if len(known) == 0 {
				return nil, fmt.Errorf("unknown query parameter %q (this path takes none)", k)
			}
			return nil, fmt.Errorf("unknown query parameter %q (want %s)", k, strings.Join(known, ", "))
		}
		if len(v[k]) > 1 {
			return nil, fmt.Errorf("%s: given %d times, want once", k, len(v[k]))
		}
	}
	return query(v), nil
}

// get returns the first of names that is set, its value, and an error when
// more than one is set (they are synonyms).
func (q query) get(names ...string) (name, value string, err error) {
	for _, n := range names {
		if vs, ok := q[n]; ok {
			if name != "" {
				return "", "", fmt.Errorf("%s and %s mean the same: give one", name, n)
			}
			name, value = n, vs[0]
		}
	}
	return name, value, nil
}

// parseTime parses a time parameter as the command line does
// (inventory.ParseTime): RFC 3339, a date (midnight, the collector's local
// time) or a positive duration back from now.
func parseTime(s string, now time.Time) (time.Time, error) {
	return inventory.ParseTime(s, now, time.Local)
}

// timeParam parses the parameter named by the first of names that is set,
// or returns def when none is. name is the parameter read, else names[0].
func (q query) timeParam(now, def time.Time, names ...string) (t time.Time, name string, err error) {
	name, v, err := q.get(names...)
	if err != nil || name == "" {
		return def, names[0], err
	}
	if t, err = parseTime(v, now); err != nil {
		return t, name, fmt.Errorf("%s: %w", name, err)
	}
	return t, name, nil
}

// rangeParams reads a range from the first set of each of startNames and
// endNames: [start, end), end defaulting to now and start to defStart.
func (q query) rangeParams(now, defStart time.Time, startNames, endNames []string) (from, to time.Time, err error) {
	from, fromName, err := q.timeParam(now, defStart, startNames...)
	if err != nil {
		return from, to, err
	}
	to, toName, err := q.timeParam(now, now, endNames...)
	if err != nil {
		return from, to, err
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("%s: %s is not before %s %s (the range is empty)", fromName,
			from.UTC().Format(time.RFC3339Nano), toName, to.UTC().Format(time.RFC3339Nano))
	}
	return from, to, nil
}

// limitParam parses ?limit=: a whole number from 1 to MaxLimit, default
// DefaultLimit.
func (q query) limitParam() (int, error) {
	name, v, _ := q.get("limit")
	if name == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, fmt.Errorf("limit: %q is not a whole number from 1 to %d", v, MaxLimit)
	}
	return n, nil
}
