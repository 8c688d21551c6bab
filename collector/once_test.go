package main

import (
	"testing"
	"time"
)

func TestRoundDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{1234567 * time.Microsecond, "1s"},
		{1385 * time.Millisecond, "1s"},
		{27021 * time.Millisecond, "27s"},
		{850400 * time.Microsecond, "850ms"},
		{3*time.Minute + 59*time.Second, "3m"},
		{18*time.Minute + 5*time.Second + 400*time.Millisecond, "18m"},
		{2*time.Hour + 20*time.Second, "2h"},
		{5*time.Hour + 7*time.Minute + 30*time.Second, "5h7m"},
		{3*24*time.Hour + 4*time.Hour + 59*time.Minute, "3d4h"},
		{-90 * time.Second, "1m"},
	}
	for _, tt := range tests {
		if got := roundDuration(tt.in); got != tt.want {
			t.Errorf("roundDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPIDList(t *testing.T) {
	tests := []struct {
		pids []int32
		max  int
		want string
	}{
		{nil, 3, "-"},
		{[]int32{7, 8}, 3, "7 8"},
		{[]int32{1, 2, 3, 4, 5}, 3, "1 2 3 … (+2)"},
	}
	for _, tt := range tests {
		if got := pidList(tt.pids, tt.max); got != tt.want {
			t.Errorf("pidList(%v, %d) = %q, want %q", tt.pids, tt.max, got, tt.want)
		}
	}
}
