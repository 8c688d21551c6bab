package remote

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/ssh"
)

// Keepalive defaults of Dial: a connection whose server has not answered for
// about 45s is closed, as OpenSSH's ServerAliveInterval 15 with
// ServerAliveCountMax 3 would.
const (
	DefaultKeepAliveInterval  = 15 * time.Second
	DefaultKeepAliveMaxMissed = 3
)

// keepAliveRequest is the global request OpenSSH's client sends for
// ServerAliveInterval. Servers that do not know it still answer (with a
// failure), and an answer is all that counts.
const keepAliveRequest = "keepalive@openssh.com"

// errClosed is why a connection ended when Close ended it.
var errClosed = errors.New("connection closed")

// WithKeepAlive makes the Client that Dial returns send a keepalive request
// to the server every interval while it is open, one at a time, and close
// the connection when a request stays unanswered for maxMissed intervals:
// a server that vanished without closing the TCP connection (powered off,
// a firewall that dropped the connection's state) then ends it, and Done
// says so, instead of the next command hanging until its deadline. An
// interval of zero or less turns keepalives off; maxMissed below 1 counts as
// 1. The default is DefaultKeepAliveInterval and DefaultKeepAliveMaxMissed.
func WithKeepAlive(interval time.Duration, maxMissed int) Option {
	return func(o *options) {
		o.keepAliveInterval, o.keepAliveMissed = interval, max(maxMissed, 1)
	}
}

// WithClock makes the keepalives of the Client that Dial returns timed by
// clock instead of the real clock, such as a *clockwork.FakeClock in tests:
// while a connection is open, its keepalive goroutine waits on one timer of
// clock at a time. Connect timeouts follow the context and the real clock.
func WithClock(clock clockwork.Clock) Option {
	return func(o *options) { o.clock = clock }
}

// newClient wraps an established connection and starts the goroutines that
// watch it: one waits for its end, one sends keepalives. Close stops both.
func newClient(conn *ssh.Client, jumps []*ssh.Client, release func(), ep Endpoint, o *options) *Client {
	c := &Client{conn: conn, jumps: jumps, release: release, ep: ep, done: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := conn.Wait()
		if err == nil {
			err = errors.New("the server closed the connection")
		}
		// The jump connections have nothing left to carry.
		c.end(fmt.Errorf("connection lost: %w", err))
		close(c.done)
	}()
	if o.keepAliveInterval > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.keepAlive(o, o.logger.With("server", ep.name(), "addr", ep.Addr))
		}()
	}
	return c
}

// keepAlive sends a keepalive request every o.keepAliveInterval until the
// connection ends, one at a time, and ends the connection when a request
// stays unanswered for o.keepAliveMissed intervals. It waits on one timer
// of o.clock at a time, started again after each interval is handled.
func (c *Client) keepAlive(o *options, log *slog.Logger) {
	interval, maxMissed := o.keepAliveInterval, o.keepAliveMissed
	t := o.clock.NewTimer(interval)
	defer t.Stop()
	replied := make(chan error, 1) // at most one request is in flight
	waiting, missed := false, 0
	for {
		select {
		case <-c.done:
			return
		case err := <-replied:
			waiting, missed = false, 0
			if err != nil {
				return // the connection ended; the watcher reports why
			}
			if o.keepAliveAnswered != nil {
				o.keepAliveAnswered()
			}
		case <-t.Chan():
			if !waiting {
				waiting = true
				c.wg.Add(1)
				go func() {
					defer c.wg.Done()
					// The reply (success or failure) does not matter, only
					// that one came. SendRequest returns when the
					// connection closes.
					_, _, err := c.conn.SendRequest(keepAliveRequest, true, nil)
					replied <- err
				}()
			} else if missed++; missed >= maxMissed {
				err := fmt.Errorf("no reply to a keepalive in %s (keepalive interval %s, %d missed)",
					time.Duration(maxMissed)*interval, interval, maxMissed)
				log.Debug("closing dead connection", "err", err)
				c.end(err)
				return
			}
			t.Reset(interval)
		}
	}
}

// end records why the connection ended, unless that is known already, and
// closes it and the jump connections under it, once.
func (c *Client) end(why error) error {
	c.mu.Lock()
	if c.err == nil {
		c.err = why
	}
	c.mu.Unlock()
	c.closeOnce.Do(func() {
		c.closeErr = c.conn.Close()
		for i := len(c.jumps) - 1; i >= 0; i-- {
			if e := c.jumps[i].Close(); c.closeErr == nil {
				c.closeErr = e
			}
		}
		if c.release != nil {
			c.release()
		}
	})
	return c.closeErr
}

// Close closes the connection and the jump connections under it, and waits
// for the goroutines that watch it to stop.
func (c *Client) Close() error {
	err := c.end(errClosed)
	c.wg.Wait()
	return err
}

// Done returns a channel that is closed when the connection has ended:
// closed by Close, lost, or closed for want of keepalive replies. A Client
// whose Done is closed can run nothing more; dial again.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open, and why it ended once Done
// is closed.
func (c *Client) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Errorf("%s: %w", c.ep, c.err)
}
