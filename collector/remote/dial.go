// Package remote runs commands on servers over SSH, directly or through jump
// hosts, verifying each host key against a known_hosts file; Local runs them
// on this machine under the same contract.
//
// Errors that a person can resolve have a method Fix() string that says how;
// their message ends with "; " and that fix.
package remote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
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

	// IdentityFiles are private keys to offer, as paths for the OS: a
	// leading ~ is not expanded (package inventory expands it). When empty,
	// those of ~/.ssh/id_ed25519, id_ecdsa and id_rsa (in the home
	// directory) that exist are offered.
	IdentityFiles []string
	// CertificateFiles are OpenSSH user certificates, each offered with the
	// key (from an identity file or the agent) it certifies. A certificate
	// FILE-cert.pub next to an identity file FILE is offered without being
	// listed.
	CertificateFiles []string
	// Passphrase decrypts encrypted identity files. When nil, encrypted
	// files are skipped (logged at debug level and named in an AuthError).
	Passphrase []byte
	// NoAgent turns off the ssh-agent. Otherwise, when SSH_AUTH_SOCK is set,
	// the agent's keys are offered before the identity files.
	NoAgent bool

	KnownHosts     string        // known_hosts file (required; ~ not expanded); a missing file records no host
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
	clock             clockwork.Clock
	keepAliveInterval time.Duration
	keepAliveMissed   int
	keepAliveAnswered func() // called after each keepalive reply; for tests (export_test.go)
	jumpPool          *JumpPool
}

// WithLogger sets the logger for debug messages (keys skipped, agent not
// available). The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

func newOptions(opts []Option) *options {
	o := &options{logger: slog.Default(), clock: clockwork.NewRealClock(),
		keepAliveInterval: DefaultKeepAliveInterval, keepAliveMissed: DefaultKeepAliveMaxMissed}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// A Client is an SSH connection to a server, possibly through jump hosts. It
// is safe for concurrent use: each Run opens its own session. Done tells
// when the connection has ended, and Err why.
type Client struct {
	conn    *ssh.Client
	jumps   []*ssh.Client // outermost first; none through a JumpPool
	release func()        // through a JumpPool: lets go of the shared jump connection
	ep      Endpoint

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
// Identity files and known_hosts files are parsed once per process and read
// again when they change (size, modification time, or another file at the
// path), so that dialing many servers with the same files costs one parse
// and one decryption of each key.
//
// Failures are *DialError (TCP connect), *UnknownHostError and
// *HostKeyChangedError (host key), *AuthError (no key accepted), and errors
// for which errors.Is(err, context.DeadlineExceeded) holds when a hop ran out
// of time. Every error names the target: a failure at a jump host is
// prefixed "jump host for TARGET: ", a failure behind one "via JUMP: ", and
// the others start with the target (as Endpoint.String shows it) or name it
// after "connect to " or "handshake with ".
func Dial(ctx context.Context, route []Endpoint, opts ...Option) (*Client, error) {
	if len(route) == 0 {
		return nil, errors.New("dial: empty route")
	}
	o := newOptions(opts)
	if o.jumpPool != nil && len(route) > 1 {
		return o.jumpPool.dial(ctx, route, o)
	}
	jumps, err := dialJumps(ctx, route, o)
	if err != nil {
		return nil, err
	}
	target := route[len(route)-1]
	conn, err := dialHop(ctx, last(jumps), target, o)
	if err != nil {
		closeAll(jumps)
		return nil, hopError(route, len(route)-1, err)
	}
	return newClient(conn, jumps, nil, target, o), nil
}

// dialJumps connects to the jump hosts of route (all its endpoints but the
// last), each through the one before, and returns the connections outermost
// first. On failure it closes those it opened.
func dialJumps(ctx context.Context, route []Endpoint, o *options) ([]*ssh.Client, error) {
	var jumps []*ssh.Client
	for i, ep := range route[:len(route)-1] {
		c, err := dialHop(ctx, last(jumps), ep, o)
		if err != nil {
			closeAll(jumps)
			return nil, hopError(route, i, err)
		}
		jumps = append(jumps, c)
	}
	return jumps, nil
}

// last returns the innermost of jumps, or nil when there are none.
func last(jumps []*ssh.Client) *ssh.Client {
	if len(jumps) == 0 {
		return nil
	}
	return jumps[len(jumps)-1]
}

// closeAll closes jumps, innermost first.
func closeAll(jumps []*ssh.Client) {
	for i := len(jumps) - 1; i >= 0; i-- {
		jumps[i].Close()
	}
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
// to the last endpoint. The key is trusted by no one yet: show its
// Fingerprint before recording it with AddKnownHost.
//
// The last endpoint's KnownHosts may be empty. When that file records keys
// for its address, the server is asked for a key of those types, as Dial
// asks: of a server with several host keys, the key fetched is then the one
// Dial checks, and CheckKnownHost finds it recorded. When nothing is
// recorded, or the server holds no key of the recorded types anymore, it is
// asked for any, ed25519 first, then ECDSA, then RSA.
func FetchHostKey(ctx context.Context, route []Endpoint, opts ...Option) (ssh.PublicKey, error) {
	if len(route) == 0 {
		return nil, errors.New("fetch host key: empty route")
	}
	o := newOptions(opts)
	jumps, err := dialJumps(ctx, route, o)
	if err != nil {
		return nil, err
	}
	defer closeAll(jumps)
	key, err := fetchHop(ctx, last(jumps), route[len(route)-1], o)
	if err != nil {
		return nil, hopError(route, len(route)-1, err)
	}
	return key, nil
}

// authState records how authentication went during one SSH handshake.
type authState struct {
	mu         sync.Mutex
	hostKeyErr error    // the host key was refused
	authTried  bool     // authentication began
	methods    []string // tried, as last reported
	allowed    []string // accepted by the server, as last reported
}

// dialHop connects to ep, through via when not nil, and authenticates.
func dialHop(ctx context.Context, via *ssh.Client, ep Endpoint, o *options) (*ssh.Client, error) {
	ep.Addr = withPort(ep.Addr)
	if ep.User == "" {
		return nil, fmt.Errorf("%s: no user given", ep)
	}
	known, err := readKnownHosts(ep.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ep, err)
	}
	keys, err := loadKeys(ctx, ep, o.logger.With("server", ep.name(), "addr", ep.Addr))
	if err != nil {
		return nil, err
	}
	defer keys.close()

	st := &authState{}
	cfg := &ssh.ClientConfig{
		User:              ep.User,
		HostKeyAlgorithms: known.algorithms(ep.Addr),
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			err := known.verify(ep, key)
			if err != nil {
				st.mu.Lock()
				st.hostKeyErr = err
				st.mu.Unlock()
			}
			return err
		},
		Auth: []ssh.AuthMethod{ssh.PublicKeys(keys.signers...)},
		// The SSH library calls this after the "none" method and before each
		// attempt of another, so it sees authentication begin.
		AuthCallback: func(ac *ssh.ClientAuthContext) (ssh.AuthMethod, error) {
			st.mu.Lock()
			st.authTried = true
			st.methods = ac.TriedMethods
			st.allowed = ac.AllowedMethods
			st.mu.Unlock()
			return nil, nil // the next untried method of cfg.Auth
		},
	}
	return connect(ctx, via, ep, cfg, keys, func(err error) error {
		return handshakeError(ep, st, keys, err)
	})
}

// errKeyFetched aborts a handshake once fetchHop has the host key.
var errKeyFetched = errors.New("host key fetched")

// fetchHop connects to ep, through via when not nil, far enough to learn its
// host key, and returns that key; see FetchHostKey for the key types asked.
func fetchHop(ctx context.Context, via *ssh.Client, ep Endpoint, o *options) (ssh.PublicKey, error) {
	ep.Addr = withPort(ep.Addr)
	algos := fetchAlgorithms
	if ep.KnownHosts != "" {
		known, err := readKnownHosts(ep.KnownHosts)
		if err != nil {
			// CheckKnownHost reports it once the key is fetched.
			o.logger.Debug("known_hosts not read; asking for any host key", "server", ep.name(), "err", err)
		} else if recorded := known.algorithms(ep.Addr); len(recorded) > 0 {
			algos = recorded
		}
	}
	key, err := fetchKey(ctx, via, ep, algos)
	var ne *ssh.AlgorithmNegotiationError
	if key == nil && errors.As(err, &ne) && ne.What == "host key" && !slices.Equal(algos, fetchAlgorithms) {
		// The server holds no key of the recorded types: fetch the one it
		// has, which CheckKnownHost reports as changed.
		key, err = fetchKey(ctx, via, ep, fetchAlgorithms)
	}
	if key != nil {
		return key, nil
	}
	return nil, err
}

// fetchKey runs one handshake with ep offering algos as host key algorithms,
// and returns the host key once the server has proved it holds it.
func fetchKey(ctx context.Context, via *ssh.Client, ep Endpoint, algos []string) (ssh.PublicKey, error) {
	var (
		mu  sync.Mutex // the callback runs on the library's key exchange goroutine
		key ssh.PublicKey
	)
	cfg := &ssh.ClientConfig{
		User:              cmp.Or(ep.User, "collector"),
		HostKeyAlgorithms: algos,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			mu.Lock()
			key = k
			mu.Unlock()
			return errKeyFetched
		},
	}
	c, err := connect(ctx, via, ep, cfg, nil, func(err error) error {
		return withFix(fmt.Errorf("%s: %w", ep, err), "check that this port is an SSH server, and the server's sshd log")
	})
	if c != nil {
		// The server accepted a connection without authentication: the key
		// is known all the same.
		c.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if key != nil {
		// Fetched, even if the handshake then timed out.
		return key, nil
	}
	return nil, err
}

// connect opens a TCP connection to ep.Addr, from via when not nil, and runs
// the SSH handshake with cfg. ep's connect timeout bounds the two; it starts
// here, after the keys and known_hosts were read, which is not network time.
// keys, when not nil, are those cfg offers. A handshake that fails before
// the timeout is reported by failed.
func connect(ctx context.Context, via *ssh.Client, ep Endpoint, cfg *ssh.ClientConfig, keys *keySet, failed func(error) error) (*ssh.Client, error) {
	timeout := ep.timeout()
	hopCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if keys != nil {
		keys.setDeadline(hopCtx)
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
		if ctx.Err() != nil {
			return nil, fmt.Errorf("handshake with %s: %w", ep, ctx.Err())
		}
		return nil, withFix(fmt.Errorf("handshake with %s timed out after %s: %w", ep, timeout, hopCtx.Err()),
			"check that this port is an SSH server, or raise the connect timeout")
	}
	if err != nil {
		conn.Close()
		return nil, failed(err)
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

// handshakeError classifies a failed handshake of dialHop.
func handshakeError(ep Endpoint, st *authState, keys *keySet, err error) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.hostKeyErr != nil {
		return st.hostKeyErr
	}
	msg := err.Error()
	if st.authTried && (strings.Contains(msg, "unable to authenticate") ||
		strings.Contains(msg, "authentication failures") ||
		strings.Contains(msg, "too many authentication attempts")) {
		e := &AuthError{Name: ep.name(), Addr: ep.Addr, User: ep.User, Allowed: st.allowed, Err: err,
			Keys: keys.offered, Skipped: keys.skipped}
		for _, m := range st.methods {
			if m != "none" && !slices.Contains(e.Methods, m) {
				e.Methods = append(e.Methods, m)
			}
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
