//go:build unix

package sshdtest

import "testing"

func TestParentPID(t *testing.T) {
	tests := []struct {
		name, stat string
		want       int
		ok         bool
	}{
		{name: "sshd", stat: "4142 (sshd) S 4140 4142 4142 0 -1 4194560 1 0", want: 4140, ok: true},
		{name: "comm with spaces and parens", stat: "77 (a) b (c)) R 12 77 77 0", want: 12, ok: true},
		{name: "truncated", stat: "77 (sshd) S", ok: false},
		{name: "no comm", stat: "garbage", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parentPID(tt.stat)
			if got != tt.want || ok != tt.ok {
				t.Errorf("parentPID(%q) = %d, %v; want %d, %v", tt.stat, got, ok, tt.want, tt.ok)
			}
		})
	}
}
