package inventory

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A Duration is a time.Duration written in TOML as a string such as "30s",
// "1m30s" or "90d". It implements encoding.TextUnmarshaler, so a bad value is
// reported by the TOML decoder with its key.
type Duration time.Duration

// UnmarshalText parses text with ParseDuration.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats d the way time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// durationHint is the fix for a bad duration.
const durationHint = `write a number and a unit (ms, s, m, h or d) in quotes, e.g. "30s", "2m" or "7d"`

// errTooLong is wrapped by the error of a duration beyond time.Duration's
// range (about 292 years).
var errTooLong = errors.New("too long")

// ParseDuration parses a duration as time.ParseDuration does, and also accepts
// a leading whole or decimal number of days with the unit d: "90d", "1d12h".
func ParseDuration(s string) (time.Duration, error) {
	in := s
	neg := false
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		neg = s[0] == '-'
		s = s[1:]
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || i == 0 || strings.ContainsAny(s[:i], "eExXpP_") || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", in)
		}
		// float64(math.MaxInt64) is 2^63, one past the largest duration.
		if n*24*float64(time.Hour) >= math.MaxInt64 {
			return 0, fmt.Errorf("duration %q is %w", in, errTooLong)
		}
		days = time.Duration(n * 24 * float64(time.Hour))
		s = s[i+1:]
		if s == "" {
			s = "0s"
		}
	}
	rest, err := time.ParseDuration(s)
	if err != nil || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("invalid duration %q", in)
	}
	if days > 0 && rest > math.MaxInt64-days {
		return 0, fmt.Errorf("duration %q is %w", in, errTooLong)
	}
	d := days + rest
	if neg {
		d = -d
	}
	return d, nil
}

// ParseTime parses a point in time as the command line and the HTTP API
// take it: a date and time in RFC 3339 ("2026-11-25T08:00:00Z"), a date
// ("2026-11-25", midnight in loc), or a positive duration back from now
// ("24h", "7d"). A space stands for the '+' of a zone offset that a URL
// did not escape.
func ParseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	const want = "RFC 3339 (2026-11-25T08:00:00Z), a date (2026-11-25) or a duration back from now (24h, 7d)"
	if s == "" {
		return time.Time{}, fmt.Errorf("empty: want %s", want)
	}
	if t, err := time.Parse(time.RFC3339, strings.ReplaceAll(s, " ", "+")); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, nil
	}
	d, err := ParseDuration(s)
	if errors.Is(err, errTooLong) {
		return time.Time{}, err
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-11-25T08:00:00Z), a date (2026-11-25) nor a duration back from now (24h, 7d)", s)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("%q: a duration back from now must be positive", s)
	}
	return now.Add(-d), nil
}
