package remote_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/internal/testutil"
)

// The keepalive tests run real connections to a real sshd through a
// forwarder that can cut them or freeze them, and drive the keepalives with
// a fake clock: between intervals the keepalive goroutine waits on one
// timer, so that testutil.BlockUntil(clock, 1) after an Advance means the
// interval was handled, and WithKeepAliveAnswered reports each reply. What
// the tests see does not depend on how fast the machine answers.

const interval = 15 * time.Second // on the fake clock

// keepAliveClient dials web1 of srv through fwd with keepalives every
// interval (when on), timed by clock; answered receives a value after each
// reply was handled.
func keepAliveClient(t *testing.T, srv *sshdtest.Server, fwd *forwarder, clock clockwork.Clock, on bool) (c *remote.Client, answered chan struct{}) {
	t.Helper()
	if err := remote.AddKnownHost(srv.KnownHostsFile, fwd.addr, srv.HostKey); err != nil {
		t.Fatal(err)
	}
	ep := endpoint(srv, "web1")
	ep.Addr = fwd.addr
	keepAlive := remote.WithKeepAlive(0, 0)
	if on {
		keepAlive = remote.WithKeepAlive(interval, 3)
	}
	answered = make(chan struct{}, 100)
	c, err := remote.Dial(context.Background(), []remote.Endpoint{ep}, keepAlive, remote.WithClock(clock),
		remote.WithKeepAliveAnswered(func() { answered <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, answered
}

// nextInterval waits until the keepalive goroutine waits for its next
// interval, and ends that interval.
func nextInterval(t *testing.T, clock *clockwork.FakeClock) {
	t.Helper()
	testutil.BlockUntil(t, clock, 1, "the keepalive waiting for its interval")
	clock.Advance(interval)
}

func isOpen(c *remote.Client) bool {
	select {
	case <-c.Done():
		return false
	default:
		return true
	}
}

// TestKeepAlive cuts or freezes a connection that runs through a forwarder
// and checks that Done closes, when, and why.
func TestKeepAlive(t *testing.T) {
	srv := sshdtest.Start(t)
	tests := []struct {
		name      string
		keepAlive bool
		breakIt   func(*forwarder)
		// misses is the number of intervals after the break at which the
		// keepalives close the connection; 0 when they play no part.
		misses int
		want   string // in Err; "" when Done must stay open
	}{
		// A closed TCP connection is seen at once, keepalives or not.
		{"cut", true, (*forwarder).cut, 0, "connection lost"},
		// A silent one only by the keepalives: the request sent at the
		// first interval stays unanswered for 3 more.
		{"black hole", true, func(f *forwarder) { f.frozen.Store(true) }, 4, "no reply to a keepalive in 45s (keepalive interval 15s, 3 missed)"},
		{"black hole without keepalives", false, func(f *forwarder) { f.frozen.Store(true) }, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fwd := newForwarder(t, srv.Addr)
			clock := clockwork.NewFakeClock()
			c, answered := keepAliveClient(t, srv, fwd, clock, tt.keepAlive)

			// An idle connection to a live server stays open: its keepalives
			// are answered.
			for i := range 6 {
				if !tt.keepAlive {
					clock.Advance(interval)
					continue
				}
				nextInterval(t, clock)
				testutil.Receive(t, answered, fmt.Sprintf("reply to keepalive %d", i+1))
			}
			if !isOpen(c) {
				t.Fatalf("Done closed on a live connection: %v", c.Err())
			}
			if err := c.Err(); err != nil {
				t.Fatalf("Err on a live connection: %v", err)
			}
			if _, err := c.Run(context.Background(), "true", nil, 10); err != nil {
				t.Fatal(err)
			}

			tt.breakIt(fwd)
			switch {
			case tt.want == "":
				clock.Advance(100 * interval)
				if !isOpen(c) {
					t.Fatalf("Done closed without keepalives: %v", c.Err())
				}
				if err := c.Err(); err != nil {
					t.Fatalf("Err on an open connection: %v", err)
				}
				return
			case tt.misses > 0:
				for i := 1; i < tt.misses; i++ {
					nextInterval(t, clock)
					testutil.BlockUntil(t, clock, 1, fmt.Sprintf("the keepalive waiting after interval %d", i))
					if !isOpen(c) {
						t.Fatalf("Done closed %d intervals after the break, want %d: %v", i, tt.misses, c.Err())
					}
				}
				nextInterval(t, clock)
			}
			testutil.Receive(t, c.Done(), "close of Done after the break")
			if err := c.Err(); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "web1 (") {
				t.Errorf("Err() = %v, want it to name web1 and say %q", err, tt.want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testutil.Patience)
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

// TestKeepAliveRealClock checks that without WithClock the keepalives run on
// the real clock: a frozen connection is closed, however long the machine
// takes to notice.
func TestKeepAliveRealClock(t *testing.T) {
	srv := sshdtest.Start(t)
	ep, fwd := forwarded(t, srv, "web1")
	c, err := remote.Dial(context.Background(), []remote.Endpoint{ep}, remote.WithKeepAlive(20*time.Millisecond, 3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fwd.frozen.Store(true)
	testutil.Receive(t, c.Done(), "close of Done on a frozen connection")
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "no reply to a keepalive") {
		t.Errorf("Err() = %v, want no reply to a keepalive", err)
	}
}

// TestCloseStopsGoroutines checks that Close stops the keepalive, a
// keepalive request in flight, and the goroutine that waits for the
// connection's end.
func TestCloseStopsGoroutines(t *testing.T) {
	srv := sshdtest.Start(t)
	tests := []struct {
		name   string
		before func(t *testing.T, clock *clockwork.FakeClock, fwd *forwarder, answered chan struct{})
	}{
		{"idle", func(*testing.T, *clockwork.FakeClock, *forwarder, chan struct{}) {}},
		{"keepalive answered", func(t *testing.T, clock *clockwork.FakeClock, _ *forwarder, answered chan struct{}) {
			nextInterval(t, clock)
			testutil.Receive(t, answered, "reply to the keepalive")
		}},
		{"keepalive in flight", func(t *testing.T, clock *clockwork.FakeClock, fwd *forwarder, _ chan struct{}) {
			fwd.frozen.Store(true)
			nextInterval(t, clock)
			// Waiting again: the request is sent and unanswered.
			testutil.BlockUntil(t, clock, 1, "the keepalive waiting for a reply")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fwd := newForwarder(t, srv.Addr)
			before := runtime.NumGoroutine()
			clock := clockwork.NewFakeClock()
			c, answered := keepAliveClient(t, srv, fwd, clock, true)
			if _, err := c.Run(context.Background(), "true", nil, 10); err != nil {
				t.Fatal(err)
			}
			tt.before(t, clock, fwd, answered)
			c.Close()
			if isOpen(c) {
				t.Fatal("Done open after Close returned")
			}
			if err := c.Err(); err == nil || !strings.Contains(err.Error(), "connection closed") {
				t.Errorf("Err() = %v, want connection closed", err)
			}
			// The SSH library's own goroutines, and the forwarder's for this
			// connection, end shortly after the connection.
			deadline := time.Now().Add(testutil.Patience)
			for runtime.NumGoroutine() > before {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<20)
					t.Fatalf("%d goroutines after Close, %d before Dial:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
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
