package remote

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// DefaultJumpOpens is how many connections a JumpPool opens at once through
// one jump host: OpenSSH's default MaxSessions. (sshd does not count the
// direct-tcpip channels a jump host carries as sessions: with MaxSessions
// 2 it lets six through one connection. The bound keeps a fleet's cold
// start from sending hundreds of handshakes through a bastion at once.)
const DefaultJumpOpens = 10

// A JumpPool shares the connections to jump hosts between the Clients that
// Dial makes through them (see WithJumpPool): 500 servers behind one bastion
// make one connection to it, not 500. A shared connection is counted: it
// closes when the last Client through it closes. At most DefaultJumpOpens
// connections are opened through it at once. When it drops, the next Dial
// through it dials it again, once for all the Dials waiting on it, and
// tries its own target once more over the new connection.
type JumpPool struct {
	mu   sync.Mutex
	hubs map[string]*hub // by jump route; see routeKey
}

// NewJumpPool returns an empty pool.
func NewJumpPool() *JumpPool { return &JumpPool{hubs: map[string]*hub{}} }

// WithJumpPool makes Dial reach targets behind jump hosts through the
// shared connections of p.
func WithJumpPool(p *JumpPool) Option {
	return func(o *options) { o.jumpPool = p }
}

// A hub is one shared connection to a route of jump hosts.
type hub struct {
	key   string
	opens chan struct{} // one token per connection being opened through it

	mu      sync.Mutex
	jump    *Client         // the innermost jump host, over the others; nil until dialed, and after it dropped
	done    <-chan struct{} // jump's Done: identifies the connection
	refs    int             // Clients using jump
	dialing chan struct{}   // closed when the dial in progress ends; nil when none
	dialErr error           // of the last dial
}

// HubCount returns how many jump connections p holds open, for tests.
func (p *JumpPool) HubCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, h := range p.hubs {
		h.mu.Lock()
		if h.jump != nil {
			n++
		}
		h.mu.Unlock()
	}
	return n
}

// dial connects to the last endpoint of route through the shared
// connection to the others.
func (p *JumpPool) dial(ctx context.Context, route []Endpoint, o *options) (*Client, error) {
	jumps, target := route[:len(route)-1], route[len(route)-1]
	key := routeKey(jumps)
	p.mu.Lock()
	h := p.hubs[key]
	if h == nil {
		h = &hub{key: key, opens: make(chan struct{}, DefaultJumpOpens)}
		p.hubs[key] = h
	}
	p.mu.Unlock()

	for attempt := 0; ; attempt++ {
		via, gen, err := h.acquire(ctx, route, o)
		if err != nil {
			return nil, err
		}
		conn, err := h.open(ctx, via, target, o)
		if err == nil {
			return newClient(conn, nil, func() { h.release(gen) }, target, o), nil
		}
		lost := attempt == 0 && ctx.Err() == nil && h.lost(ctx, gen, via)
		h.release(gen)
		if !lost {
			return nil, hopError(route, len(route)-1, err)
		}
		// The shared connection dropped under this dial: dial it again,
		// once, and the target over it.
		o.logger.Debug("jump connection lost; dialing it again", "server", target.name(), "err", err)
	}
}

// acquire returns the innermost connection of the hub, dialing the jump
// hosts when there is none (one dial for all who wait), and counts the
// caller as one more user of it. gen identifies the connection. The shared
// connection has keepalives of its own (as any Client), so that one that
// vanished silently is found out and dialed again.
func (h *hub) acquire(ctx context.Context, route []Endpoint, o *options) (*ssh.Client, <-chan struct{}, error) {
	for {
		h.mu.Lock()
		if h.jump != nil && !closed(h.done) {
			h.refs++
			via, gen := h.jump.conn, h.done
			h.mu.Unlock()
			return via, gen, nil
		}
		if h.jump != nil { // it dropped: nobody new uses it
			h.dropLocked()
		}
		if wait := h.dialing; wait != nil {
			h.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("jump host for %s: %w", route[len(route)-1].name(), ctx.Err())
			}
			h.mu.Lock()
			err := h.dialErr
			h.mu.Unlock()
			if err != nil {
				return nil, nil, err
			}
			continue
		}
		h.dialing = make(chan struct{})
		h.mu.Unlock()

		chain, err := dialJumps(ctx, route, o)
		h.mu.Lock()
		h.dialErr = err
		if err == nil {
			n := len(chain)
			h.jump = newClient(chain[n-1], chain[:n-1], nil, route[n-1], o)
			h.done = h.jump.Done()
		}
		close(h.dialing)
		h.dialing = nil
		h.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
	}
}

// open opens a connection to target through via, within the hub's bound
// on opens at once.
func (h *hub) open(ctx context.Context, via *ssh.Client, target Endpoint, o *options) (*ssh.Client, error) {
	select {
	case h.opens <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("connect to %s: waiting to open it through the jump host: %w", target, ctx.Err())
	}
	defer func() { <-h.opens }()
	return dialHop(ctx, via, target, o)
}

// lost reports whether the connection gen (over via) has ended. An open
// that failed may be the first news of a drop, before the connection's
// watcher has seen it end: then a keepalive request says whether via still
// answers, and a connection that does not is dropped, so that the next
// acquire dials it again.
func (h *hub) lost(ctx context.Context, gen <-chan struct{}, via *ssh.Client) bool {
	if closed(gen) {
		return true
	}
	answered := make(chan error, 1)
	go func() {
		_, _, err := via.SendRequest(keepAliveRequest, true, nil)
		answered <- err
	}()
	select {
	case <-gen:
	case err := <-answered:
		if err == nil {
			return false
		}
	case <-ctx.Done():
		return false
	}
	h.mu.Lock()
	if h.done == gen {
		h.dropLocked()
	}
	h.mu.Unlock()
	return true
}

// release counts one user less of the connection gen, and closes it when
// that was the last one.
func (h *hub) release(gen <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done != gen {
		return // an older connection, closed already
	}
	if h.refs--; h.refs <= 0 {
		h.dropLocked()
	}
}

// dropLocked closes the shared connection; h.mu must be held. Clients
// still on it end with it.
func (h *hub) dropLocked() {
	jump := h.jump
	h.jump, h.done, h.refs = nil, nil, 0
	go jump.Close() // waits for its watchers, which never take h.mu
}

func closed(c <-chan struct{}) bool {
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// routeKey names a route of jump hosts by everything a connection to it is
// made with, so that only identical routes share one.
func routeKey(route []Endpoint) string {
	var b strings.Builder
	for _, ep := range route {
		pass := sha256.Sum256(ep.Passphrase)
		fmt.Fprintf(&b, "%q %q %q %q %v %q %v %x\n", withPort(ep.Addr), ep.User, ep.IdentityFiles, ep.CertificateFiles,
			ep.NoAgent, ep.KnownHosts, ep.ConnectTimeout, pass[:8])
	}
	return b.String()
}
