package inventory

import (
	"strings"
	"testing"
	"time"
)

func TestTickGaps(t *testing.T) {
	from := time.Date(2026, time.March, 2, 10, 0, 30, 0, time.UTC) // a Monday
	tests := []struct {
		spec              string
		shortest, longest time.Duration
		ok                bool
	}{
		{"@every 10s", 10 * time.Second, 10 * time.Second, true},
		{"* * * * *", time.Minute, time.Minute, true},
		{"*/7 * * * *", 4 * time.Minute, 7 * time.Minute, true}, // :56 to :00
		{"0 9,17 * * *", 8 * time.Hour, 16 * time.Hour, true},
		{"0 9 * * 1-5", 24 * time.Hour, 72 * time.Hour, true}, // over the weekend
		{"0 0 30 2 *", 0, 0, false},                           // never
		{"not a schedule", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			shortest, longest, ok := TickGaps(tt.spec, from, time.UTC)
			if shortest != tt.shortest || longest != tt.longest || ok != tt.ok {
				t.Errorf("TickGaps = %v, %v, %v; want %v, %v, %v", shortest, longest, ok, tt.shortest, tt.longest, tt.ok)
			}
		})
	}
}

func TestWatchSilenceAndResolution(t *testing.T) {
	inv, err := Parse(strings.NewReader(`
[defaults]
user = "u"
[schedule]
cron = "@every 10s"
[[server]]
name = "web1"
address = "web1.example.com"
[[server]]
name = "web2"
address = "web2.example.com"
schedule = "@every 1m"
resolution = "250ms"
[[server]]
name = "web3"
address = "web3.example.com"
resolution = "0s"
`), "servers.toml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tt := range []struct {
		name       string
		resolution time.Duration
		silence    time.Duration
	}{
		{"web1", DefaultResolution, 50 * time.Second},
		{"web2", 250 * time.Millisecond, 2*time.Minute + 30*time.Second},
		{"web3", 0, 50 * time.Second},
	} {
		s, _ := inv.Server(tt.name)
		silence, ok := inv.WatchSilence(s, now)
		if s.Resolution != tt.resolution || silence != tt.silence || !ok {
			t.Errorf("%s: resolution %v, silence %v %v; want %v, %v", tt.name, s.Resolution, silence, ok, tt.resolution, tt.silence)
		}
	}
}
