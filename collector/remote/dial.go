// Package remote runs commands on servers over SSH, directly or through jump
// hosts, verifying each host key against a known_hosts file; Local runs them
// on this machine under the same contract.
//
// Errors that a person can resolve have a method Fix() string that says how;
// their message ends with "; " and that fix.
package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultConnectTimeout bounds the TCP connect and SSH handshake with one hop
// when Endpoint.ConnectTimeout is zero.
const DefaultConnectTimeout = 10 * time.Second

// An Endpoint is one SSH server to connect to.
type Endpoint struct {
	Name string // inventory name, used in messages and in fixes ("collector trust NAME")
	Addr string // host:port as dialed; through a jump host, as seen from it (port 22 when missing)
	User string

	// IdentityFiles are private keys to offer. When empty, those of
	// ~/.ssh/id_ed25519, id_ecdsa and id_rsa that exist are offered.
	IdentityFiles []string
	// Passphrase decrypts encrypted identity files. When nil, encrypted
	// files are skipped (logged at debug level and named in an AuthError).
	Passphrase []byte
	// NoAgent turns off the ssh-agent. Otherwise, when SSH_AUTH_SOCK is set,
	// the agent's keys are offered before the identity files.
	NoAgent bool

	KnownHosts     string        // known_hosts file (required); a missing file records no host
	ConnectTimeout time.Duration // TCP connect plus SSH handshake; DefaultConnectTimeout when zero
}

// String names the endpoint in messages: "web1 (10.0.0.1:22)". It never
// shows the passphrase.
func (e Endpoint) String() string { return where(e.name(), e.Addr) }

func (e Endpoint) name() string {
	if e.Name != "" {
		return e.Name
	}
	return e.Addr
}

func (e Endpoint) timeout() time.Duration {
	if e.ConnectTimeout > 0 {
		return e.ConnectTimeout
	}
	return DefaultConnectTimeout
}

// An Option changes how Dial and FetchHostKey work.
type Option func(*options)

type options struct {
	logger            *slog.Logger
	keepAliveInterval time.Duration
	keepAliveMissed   int
}

// WithLogger sets the logger for debug messages (keys skipped, agent not
// available). The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

func newOptions(opts []Option) *options {
	o := &options{logger: slog.Default(), keepAliveInterval: DefaultKeepAliveInterval, keepAliveMissed: DefaultKeepAliveMaxMissed}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// A Client is an SSH connection to a server, possibly through jump hosts. It
// is safe for concurrent use: each Run opens its own session. Done tells
// when the connection has ended, and Err why.
type Client struct {
	conn  *ssh.Client
	jumps []*ssh.Client // outermost first
	ep    Endpoint

	done      chan struct{} // closed when conn has ended
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	mu  sync.Mutex
	err error // why the connection ended; set before done is closed
}

// Dial connects to the last endpoint of route through the earlier ones as
// jump hosts, outermost first; a route of one endpoint is a direct
// connection. Each hop verifies its host key against its own KnownHosts and
// has its own ConnectTimeout for TCP connect plus handshake.
//
// Failures are *DialError (TCP connect), *UnknownHostError and
// *HostKeyChangedError (host key), *AuthError (no key accepted), and errors
// for which errors.Is(err, context.DeadlineExceeded) holds when a hop ran out
// of time. A failure at a jump host is prefixed "jump host for TARGET: ", a
// failure behind one "via JUMP: ".
func Dial(ctx context.Context, route []Endpoint, opts ...Option) (*Client, error) {
	if len(route) == 0 {
		return nil, errors.New("dial: empty route")
	}
	o := newOptions(opts)
	target := route[len(route)-1]
	var hops []*ssh.Client
	closeHops := func() {
		for i := len(hops) - 1; i >= 0; i-- {
			hops[i].Close()
		}
	}
	for i, ep := range route {
		var via *ssh.Client
		if i > 0 {
			via = hops[i-1]
		}
		c, err := dialHop(ctx, via, ep, o, nil)
		if err != nil {
			closeHops()
			return nil, hopError(route, i, err)
		}
		hops = append(hops, c)
	}
	return newClient(hops[len(hops)-1], hops[:len(hops)-1], target, o), nil
}

// hopError says where on route the failure of hop i happened.
func hopError(route []Endpoint, i int, err error) error {
	if i > 0 {
		names := make([]string, i)
		for j, ep := range route[:i] {
			names[j] = ep.name()
		}
		err = fmt.Errorf("via %s: %w", strings.Join(names, ", "), err)
	}
	if i < len(route)-1 {
		err = fmt.Errorf("jump host for %s: %w", route[len(route)-1].name(), err)
	}
	return err
}

// FetchHostKey connects to the last endpoint of route, through the earlier
// ones as jump hosts (verified as in Dial), and returns the host key that
// server proves it holds during the key exchange. It does not authenticate
// to the last endpoint and does not need its KnownHosts. The key is trusted
// by no one yet: show its Fingerprint before recording it with AddKnownHost.
func FetchHostKey(ctx context.Context, route []Endpoint, opts ...Option) (ssh.PublicKey, error) {
	if len(route) == 0 {
		return nil, errors.New("fetch host key: empty route")
	}
	o := newOptions(opts)
	var hops []*ssh.Client
	defer func() {
		for i := len(hops) - 1; i >= 0; i-- {
			hops[i].Close()
		}
	}()
	for i, ep := range route[:len(route)-1] {
		var via *ssh.Client
		if i > 0 {
			via = hops[i-1]
		}
		c, err := dialHop(ctx, via, ep, o, nil)
		if err != nil {
			return nil, hopError(route, i, err)
		}
		hops = append(hops, c)
	}
	var via *ssh.Client
	if len(hops) > 0 {
		via = hops[len(hops)-1]
	}
	var key ssh.PublicKey
	if _, err := dialHop(ctx, via, route[len(route)-1], o, &key); err != nil {
		return nil, hopError(route, len(route)-1, err)
	}
	return key, nil
}

// errKeyFetched aborts a handshake once FetchHostKey has the host key.
var errKeyFetched = errors.New("host key fetched")

// handshake records what happened during one SSH handshake.
type handshake struct {
	mu         sync.Mutex
	hostKeyErr error    // the host key was refused
	authTried  bool     // authentication began
	methods    []string // tried, as last reported
	allowed    []string // accepted by the server, as last reported
}

// dialHop connects to ep, through via when not nil. With fetch set, it stores
// the host key there and stops the handshake.
func dialHop(ctx context.Context, via *ssh.Client, ep Endpoint, o *options, fetch *ssh.PublicKey) (*ssh.Client, error) {
	ep.Addr = withPort(ep.Addr)
	if ep.User == "" && fetch == nil {
		return nil, fmt.Errorf("%s: no user given", ep)
	}
	timeout := ep.timeout()
	hopCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	log := o.logger.With("server", ep.name(), "addr", ep.Addr)

	hs := &handshake{}
	cfg := &ssh.ClientConfig{User: ep.User}
	var keys *keySet
	if fetch != nil {
		if cfg.User == "" {
			cfg.User = "collector"
		}
		cfg.HostKeyAlgorithms = fetchAlgorithms
		cfg.HostKeyCallback = func(_ string, _ net.Addr, key ssh.PublicKey) error {
			*fetch = key
			return errKeyFetched
		}
	} else {
		known, err := readKnownHosts(ep.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ep, err)
		}
		cfg.HostKeyAlgorithms = known.algorithms(ep.Addr)
		cfg.HostKeyCallback = func(_ string, _ net.Addr, key ssh.PublicKey) error {
			err := known.verify(ep, key)
			if err != nil {
				hs.mu.Lock()
				hs.hostKeyErr = err
				hs.mu.Unlock()
			}
			return err
		}
		keys, err = loadKeys(hopCtx, ep, log)
		if err != nil {
			return nil, err
		}
		defer keys.close()
		cfg.Auth = []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			hs.mu.Lock()
			hs.authTried = true
			hs.mu.Unlock()
			return keys.signers, nil
		})}
		cfg.AuthCallback = func(ac *ssh.ClientAuthContext) (ssh.AuthMethod, error) {
			hs.mu.Lock()
			hs.authTried = true
			hs.methods = ac.TriedMethods
			hs.allowed = ac.AllowedMethods
			hs.mu.Unlock()
			return nil, nil // the next untried method of cfg.Auth
		}
	}

	conn, err := dialTCP(hopCtx, via, ep.Addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to %s: %w", ep, ctx.Err())
		}
		if hopCtx.Err() != nil {
			err = fmt.Errorf("connect timed out after %s: %w", timeout, hopCtx.Err())
		}
		return nil, &DialError{Name: ep.name(), Addr: ep.Addr, Err: err}
	}

	// The handshake ignores ctx: close the connection when it is done.
	stop := context.AfterFunc(hopCtx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, ep.Addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		conn.Close()
		if fetch != nil && *fetch != nil {
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("handshake with %s: %w", ep, ctx.Err())
		}
		return nil, withFix(fmt.Errorf("handshake with %s timed out after %s: %w", ep, timeout, hopCtx.Err()),
			"check that this port is an SSH server, or raise the connect timeout")
	}
	if err != nil {
		conn.Close()
		return nil, handshakeError(ep, hs, keys, err, fetch)
	}
	if fetch != nil {
		// The server accepted a connection without authentication: the key
		// is known all the same.
		sc.Close()
		return nil, nil
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

// handshakeError classifies a failed handshake.
func handshakeError(ep Endpoint, hs *handshake, keys *keySet, err error, fetch *ssh.PublicKey) error {
	if fetch != nil && *fetch != nil {
		return nil
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.hostKeyErr != nil {
		return hs.hostKeyErr
	}
	msg := err.Error()
	if hs.authTried && (strings.Contains(msg, "unable to authenticate") ||
		strings.Contains(msg, "authentication failures") ||
		strings.Contains(msg, "too many authentication attempts")) {
		e := &AuthError{Name: ep.name(), Addr: ep.Addr, User: ep.User, Allowed: hs.allowed, Err: err}
		for _, m := range hs.methods {
			if m != "none" && !slices.Contains(e.Methods, m) {
				e.Methods = append(e.Methods, m)
			}
		}
		if keys != nil {
			e.Keys, e.Skipped = keys.offered, keys.skipped
		}
		return e
	}
	return withFix(fmt.Errorf("%s: %w", ep, err), "check that this port is an SSH server, and the server's sshd log")
}

// dialTCP opens a TCP connection to addr, from this machine or, when via is
// not nil, from that SSH server.
func dialTCP(ctx context.Context, via *ssh.Client, addr string) (net.Conn, error) {
	if via == nil {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	return via.DialContext(ctx, "tcp", addr)
}
