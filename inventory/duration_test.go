package inventory

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "30s", want: 30 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "0", want: 0},
		{in: "-5s", want: -5 * time.Second},
		{in: "90d", want: 90 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "-1d", want: -24 * time.Hour},
		{in: "", wantErr: `invalid duration ""`},
		{in: "5x", wantErr: `invalid duration "5x"`},
		{in: "30", wantErr: `invalid duration "30"`},
		{in: "d", wantErr: `invalid duration "d"`},
		{in: "1e2d", wantErr: `invalid duration "1e2d"`},
		{in: "1d-5h", wantErr: `invalid duration "1d-5h"`},
		{in: "--5s", wantErr: `invalid duration "--5s"`},
		{in: "1d1d", wantErr: `invalid duration "1d1d"`},
		{in: "200000d", wantErr: `duration "200000d" is too long`},
		// Exactly 2^63 ns: once wrapped around to a negative duration.
		{in: "106751.99116730064d", wantErr: `duration "106751.99116730064d" is too long`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseDuration(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("2d")); err != nil || time.Duration(d) != 48*time.Hour {
		t.Fatalf("UnmarshalText(2d) = %v, %v", time.Duration(d), err)
	}
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Error("UnmarshalText(soon) succeeded")
	}
	if time.Duration(d) != 48*time.Hour {
		t.Errorf("a failed UnmarshalText changed the value to %v", time.Duration(d))
	}
	text, err := Duration(90 * time.Second).MarshalText()
	if err != nil || string(text) != "1m30s" {
		t.Errorf("MarshalText = %q, %v", text, err)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tokyo := time.FixedZone("JST", 9*3600)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "2026-02-20", want: time.Date(2026, 2, 20, 0, 0, 0, 0, tokyo)},
		{in: "2026-02-20T08:00:00Z", want: time.Date(2026, 2, 20, 8, 0, 0, 0, time.UTC)},
		{in: "2026-02-20T08:00:00 01:00", want: time.Date(2026, 2, 20, 7, 0, 0, 0, time.UTC)},
		{in: "-7d", err: "must be positive"},
		{in: "200000d", err: `duration "200000d" is too long`},
		{in: "yesterday", err: `"yesterday" is neither RFC 3339 (2026-11-25T08:00:00Z), a date (2026-11-25) nor a duration back from now (24h, 7d)`},
		{in: "", err: "empty"},
	} {
		got, err := ParseTime(tc.in, now, tokyo)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseTime(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || !got.Equal(tc.want)):
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
