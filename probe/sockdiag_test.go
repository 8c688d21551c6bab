package main

import (
	"context"
	"encoding/binary"
	"net"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTCPDiagRequest(t *testing.T) {
	b := tcpDiagRequest(7)
	ne := binary.NativeEndian
	if len(b) != 76 || ne.Uint32(b) != 76 || ne.Uint16(b[4:]) != 18 || ne.Uint16(b[6:]) != 0x301 || ne.Uint32(b[8:]) != 7 {
		t.Errorf("header of % x: want length 76, type 18 (TCPDIAG_GETSOCK), flags REQUEST|DUMP, seq 7", b[:16])
	}
	if b[16] != 0 || ne.Uint32(b[16+52:]) != 0xffe {
		t.Errorf("request % x: want family AF_UNSPEC and states 1 to 11", b[16:])
	}
}

// diagMsg is one netlink message, padded to 4 bytes.
func diagMsg(typ uint16, seq uint32, body []byte) []byte {
	b := make([]byte, 16, 16+len(body)+3)
	ne := binary.NativeEndian
	ne.PutUint32(b, uint32(16+len(body)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint32(b[8:], seq)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// diagSocket is the body of one socket of the dump: struct inet_diag_msg
// (72 bytes), family and state first.
func diagSocket(family, state byte) []byte {
	b := make([]byte, 72)
	b[0], b[1] = family, state
	return b
}

func diagErrno(errno int32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(errno))
	return b
}

func TestCountDiagMessages(t *testing.T) {
	cat := func(msgs ...[]byte) []byte { return slices.Concat(msgs...) }
	established, listen, timeWait := diagSocket(unix.AF_INET, 1), diagSocket(unix.AF_INET6, 10), diagSocket(unix.AF_INET, 6)
	tests := []struct {
		name    string
		data    []byte
		done    bool
		want    map[int]int // state → count
		wantErr string
	}{
		{"sockets of both families", cat(diagMsg(18, 1, established), diagMsg(18, 1, listen), diagMsg(18, 1, timeWait), diagMsg(18, 1, established)),
			false, map[int]int{1: 2, 6: 1, 10: 1}, ""},
		{"the last datagram", cat(diagMsg(18, 1, listen), diagMsg(unix.NLMSG_DONE, 1, diagErrno(0))), true, map[int]int{10: 1}, ""},
		{"a longer socket message", diagMsg(18, 1, append(established, make([]byte, 13)...)), false, map[int]int{1: 1}, ""},
		{"empty", nil, false, map[int]int{}, ""},
		{"request refused", diagMsg(unix.NLMSG_ERROR, 1, diagErrno(-int32(unix.EINVAL))), false, nil, "invalid argument"},
		{"dump failed", diagMsg(unix.NLMSG_DONE, 1, diagErrno(-int32(unix.ENOMEM))), false, nil, "cannot allocate memory"},
		{"acknowledged", diagMsg(unix.NLMSG_ERROR, 1, diagErrno(0)), false, nil, "without a dump"},
		{"done without its error", diagMsg(unix.NLMSG_DONE, 1, nil), false, nil, "without its error"},
		{"another sequence", diagMsg(18, 2, established), false, nil, "sequence 2, want 1"},
		{"state 0", diagMsg(18, 1, diagSocket(unix.AF_INET, 0)), false, nil, "tcp state 0"},
		{"state 12", diagMsg(18, 1, diagSocket(unix.AF_INET, 12)), false, nil, "tcp state 12"},
		{"short socket", diagMsg(18, 1, established[:40]), false, nil, "socket of 40 bytes"},
		{"unknown type", diagMsg(20, 1, established), false, nil, "type 20"},
		{"torn header", diagMsg(18, 1, established)[:10], false, nil, "less than a header"},
		{"length past the end", diagMsg(18, 1, established)[:50], false, nil, "message of 88 bytes in 50"},
		{"length below a header", func() []byte { b := diagMsg(18, 1, established); b[0] = 8; return b }(), false, nil, "message of 8 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var counts [12]int
			done, err := countDiagMessages(tt.data, 1, &counts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("countDiagMessages = %v, %v; want an error containing %q", done, err, tt.wantErr)
				}
				return
			}
			if err != nil || done != tt.done {
				t.Fatalf("countDiagMessages = %v, %v; want %v, nil", done, err, tt.done)
			}
			for st := range counts {
				if counts[st] != tt.want[st] {
					t.Errorf("state %d: %d sockets, want %d", st, counts[st], tt.want[st])
				}
			}
		})
	}
}

// TestCountTCPDiag counts this host's sockets through sock_diag and through
// /proc/net/tcp with a listener and three connections of its own open:
// both see them.
func TestCountTCPDiag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback: %v", err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var diag, proc [12]int
	buf := make([]byte, 64<<10)
	if err := countTCPDiag(context.Background(), buf, &diag); err != nil {
		t.Skipf("no sock_diag here: %v", err) // readSockets falls back to /proc
	}
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := streamTCP(context.Background(), path, buf, &proc); err != nil && path == "/proc/net/tcp" {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*[12]int{"sock_diag": &diag, "/proc/net/tcp": &proc} {
		if c[1] < 6 || c[10] < 1 {
			t.Errorf("%s counts %d established and %d listening, want at least the test's 6 and 1", name, c[1], c[10])
		}
	}
}
