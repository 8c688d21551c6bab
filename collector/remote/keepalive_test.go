package remote_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/remote"
)

// TestKeepAlive cuts or freezes a connection that runs through a forwarder
// and checks that Done closes, and why.
func TestKeepAlive(t *testing.T) {
	srv := sshdtest.Start(t)
	const interval = 100 * time.Millisecond
	tests := []struct {
		name      string
		keepAlive remote.Option
		breakIt   func(*forwarder)
		want      string        // in Err; "" when Done must stay open
		min       time.Duration // the least time Done may take to close
	}{
		// A closed TCP connection is seen at once, keepalives or not.
		{"cut", remote.WithKeepAlive(interval, 3), (*forwarder).cut, "connection lost", 0},
		// A silent one only by the keepalives: after 3 missed intervals.
		{"black hole", remote.WithKeepAlive(interval, 3), func(f *forwarder) { f.frozen.Store(true) }, "no reply to a keepalive", 3 * interval},
		{"black hole without keepalives", remote.WithKeepAlive(0, 0), func(f *forwarder) { f.frozen.Store(true) }, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fwd := newForwarder(t, srv.Addr)
			if err := remote.AddKnownHost(srv.KnownHostsFile, fwd.addr, srv.HostKey); err != nil {
				t.Fatal(err)
			}
			ep := endpoint(srv, "web1")
			ep.Addr = fwd.addr
			c, err := remote.Dial(context.Background(), []remote.Endpoint{ep}, tt.keepAlive)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			// An idle connection to a live server stays open: its keepalives
			// are answered.
			time.Sleep(6 * interval)
			select {
			case <-c.Done():
				t.Fatalf("Done closed on a live connection: %v", c.Err())
			default:
			}
			if err := c.Err(); err != nil {
				t.Fatalf("Err on a live connection: %v", err)
			}
			if _, err := c.Run(context.Background(), "true", nil, 10); err != nil {
				t.Fatal(err)
			}

			tt.breakIt(fwd)
			start := time.Now()
			wait := 3 * time.Second
			if tt.want == "" {
				wait = 8 * interval
			}
			select {
			case <-c.Done():
				if tt.want == "" {
					t.Fatalf("Done closed without keepalives: %v", c.Err())
				}
			case <-time.After(wait):
				if tt.want != "" {
					t.Fatalf("Done still open %v after the connection broke", wait)
				}
				return
			}
			if d := time.Since(start); d < tt.min {
				t.Errorf("Done closed after %v, before %v", d, tt.min)
			}
			if err := c.Err(); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "web1 (") {
				t.Errorf("Err() = %v, want it to name web1 and say %q", err, tt.want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := c.Run(ctx, "true", nil, 10); err == nil {
				t.Error("Run succeeded on a dead connection")
			}
			c.Close()
			if err := c.Err(); !strings.Contains(err.Error(), tt.want) {
				t.Errorf("after Close, Err() = %v, want the first reason, %q", err, tt.want)
			}
		})
	}
}

// TestCloseStopsGoroutines checks that Close stops the keepalive and the
// goroutine that waits for the connection's end.
func TestCloseStopsGoroutines(t *testing.T) {
	srv := sshdtest.Start(t)
	before := runtime.NumGoroutine()
	c, err := remote.Dial(context.Background(), []remote.Endpoint{endpoint(srv, "web1")}, remote.WithKeepAlive(5*time.Millisecond, 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(context.Background(), "sleep 0.1", nil, 10); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done open after Close returned")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "connection closed") {
		t.Errorf("Err() = %v, want connection closed", err)
	}
	// The SSH library's own goroutines end shortly after the connection.
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before Dial:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestErrorsEndWithTheirFix checks that each error's message ends with its
// Fix, so that a caller may print the two apart without repeating the fix.
func TestErrorsEndWithTheirFix(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name string
		err  interface {
			error
			Fix() string
		}
		want string // in Fix
	}{
		{"unknown host", &remote.UnknownHostError{Name: "web1", Addr: "10.0.0.1:22", KnownHosts: "kh", Key: key}, "collector trust web1"},
		{"changed", &remote.HostKeyChangedError{Name: "web1", Addr: "10.0.0.1:22", KnownHosts: "kh", Key: key, Lines: []int{3, 7}}, "remove lines 3, 7 of kh"},
		{"auth", &remote.AuthError{Name: "web1", Addr: "10.0.0.1:22", User: "crawl"}, "~crawl/.ssh/authorized_keys on web1"},
		{"dial", &remote.DialError{Name: "web1", Addr: "10.0.0.1:22", Err: context.DeadlineExceeded}, "sshd listens there"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, fix := tt.err.Error(), tt.err.Fix()
			if !strings.HasSuffix(msg, "; "+fix) || !strings.Contains(fix, tt.want) {
				t.Errorf("message %q\nfix %q\nwant the message to end with \"; \" and the fix, and the fix to say %q", msg, fix, tt.want)
			}
			if problem := strings.TrimSuffix(msg, "; "+fix); strings.Contains(problem, fix) {
				t.Errorf("the message holds the fix twice: %q", msg)
			}
		})
	}
}
