// Package fleet probes many servers at once: it connects to each (over SSH,
// through its jump hosts, or on this machine), runs the probe through package
// pull, and reports one monitor.Result per server. A slow or broken server costs only
// its own slot.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/collector/pull"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// DefaultConcurrency bounds how many servers are probed at once.
const DefaultConcurrency = 256

// A Fleet probes servers of one inventory and keeps their connections open
// between calls to Probe. Close it when done.
//
// A kept connection whose keepalives went unanswered, or that the server
// closed, is dropped before it is used again. When a probe over a kept
// connection fails on the transport (not a *pull.ProbeError, and not because
// the context ended), the server is dialed once more and probed again within
// the same attempt, so that a connection that died while idle costs a new
// session, not a failure. A failure over a new connection is reported as is.
type Fleet struct {
	probes      probebin.Set
	logger      *slog.Logger
	concurrency int
	splay       time.Duration
	clock       clockwork.Clock
	dialOpts    []remote.Option
	// splayDelay returns how long one server waits before its probe, less
	// than max; tests replace it.
	splayDelay func(max time.Duration) time.Duration

	watch bool // keep watching probes; see watch.go

	mu      sync.Mutex
	inv     *inventory.Inventory
	conns   map[string]*conn    // by server name
	watches map[string]*watched // by server name
}

// conn is an open connection to one server and what was learned about it.
type conn struct {
	client   *remote.Client // nil for a local server
	target   *pull.Target
	settings string // what the connection was made with; see connSettings
}

// Options configure a Fleet.
type Options struct {
	Probes      probebin.Set // probebin.Embedded when nil
	Logger      *slog.Logger // slog.Default() when nil
	Concurrency int          // DefaultConcurrency when zero
	// DialOptions are passed to remote.Dial after remote.WithLogger(Logger)
	// and remote.WithClock(Clock), such as remote.WithKeepAlive. Dial's
	// defaults apply otherwise.
	DialOptions []remote.Option
	// Splay spreads the start of each Probe: every server waits a random
	// part of it first (without holding a concurrency slot), so that a large
	// fleet is not hit in the same millisecond.
	Splay time.Duration
	// Clock times the splay, each attempt's start and duration (Result.At
	// and Duration), and the keepalives of the connections the Fleet dials.
	// clockwork.NewRealClock() when nil; tests pass a fake clock. Each
	// server's timeout, and each hop's connect timeout, stay on the real
	// clock: they bound work on the network.
	Clock clockwork.Clock
	// Watch keeps a probe running in watch mode on each server whose
	// Resolution is not 0, and makes each Probe read the interval since
	// the last (see watch.go): `collector run`. Off, every Probe runs the
	// one-shot probe.
	Watch bool
}

// New returns a Fleet for the servers of inv.
func New(inv *inventory.Inventory, opts Options) *Fleet {
	f := &Fleet{inv: inv, probes: opts.Probes, logger: opts.Logger, concurrency: opts.Concurrency, splay: opts.Splay,
		clock: opts.Clock, splayDelay: rand.N[time.Duration], conns: map[string]*conn{},
		watch: opts.Watch, watches: map[string]*watched{}}
	if f.clock == nil {
		f.clock = clockwork.NewRealClock()
	}
	if f.probes == nil {
		f.probes = probebin.Embedded
	}
	if f.logger == nil {
		f.logger = slog.Default()
	}
	if f.concurrency <= 0 {
		f.concurrency = DefaultConcurrency
	}
	// Servers behind one jump host share one connection to it.
	f.dialOpts = append([]remote.Option{remote.WithLogger(f.logger), remote.WithClock(f.clock), remote.WithJumpPool(remote.NewJumpPool())},
		opts.DialOptions...)
	return f
}

// Probe probes servers concurrently and returns their results in the order
// of servers. onResult, when not nil, is called as each server finishes (from
// several goroutines, one call at a time).
func (f *Fleet) Probe(ctx context.Context, servers []inventory.Server, onResult func(monitor.Result)) []monitor.Result {
	results := make([]monitor.Result, len(servers))
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		slots = make(chan struct{}, f.concurrency)
	)
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.splay > 0 {
				t := f.clock.NewTimer(f.splayDelay(f.splay))
				select {
				case <-t.Chan():
				case <-ctx.Done():
					t.Stop()
				}
			}
			slots <- struct{}{}
			r := f.probeOne(ctx, s)
			<-slots
			results[i] = r
			if onResult != nil {
				mu.Lock()
				onResult(r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return results
}

// probeOne probes one server within its timeout. The result's error names
// the server once: the SSH transport's errors start with "web1
// (10.0.0.1:22): " or name it after "jump host for ", "via …: ", "run: "
// and the like; the others start with "web1: ".
func (f *Fleet) probeOne(ctx context.Context, s inventory.Server) monitor.Result {
	start := f.clock.Now()
	log := f.logger.With("server", s.Name)
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	r := monitor.Result{Server: s.Name}
	err := f.probeWatching(ctx, s, &r, log)
	r.Duration = f.clock.Since(start)
	r.At = start.Add(r.Duration)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("%w (timeout %v)", err, s.Timeout)
		}
		r.Err = named(s, err)
		r.Kind = Classify(err)
		var changed *remote.HostKeyChangedError
		r.HostKeyChanged = errors.As(err, &changed)
		r.Snapshot = nil
		log.Warn("probe failed", "kind", r.Kind, "err", err, "duration_ms", r.Duration.Milliseconds(), "reused", r.Reused)
	} else {
		log.Debug("probe done", "duration_ms", r.Duration.Milliseconds(), "uploaded", r.Uploaded, "reused", r.Reused, "dialed", r.Dialed)
	}
	return r
}

// named returns err naming s once, as probeOne says. The SSH transport's
// errors name the server already: "web1 (10.0.0.1:22): unreachable: …",
// "jump host for web1: …", "via bastion: web1 (10.0.0.1:22): …",
// "run: web1 (10.0.0.1:22): …". The others, such as "run: probe exited 1:
// …", "config: …" or those of a local server, get "web1: " in front.
func named(s inventory.Server, err error) error {
	msg := err.Error()
	if !s.IsLocal() && (strings.Contains(msg, remote.Endpoint{Name: s.Name, Addr: s.HostPort()}.String()) ||
		strings.HasPrefix(msg, "jump host for "+s.Name+": ")) {
		return err
	}
	return fmt.Errorf("%s: %w", s.Name, err)
}

// pull probes s over its kept connection or a new one, and fills in r.
func (f *Fleet) pull(ctx context.Context, s inventory.Server, r *monitor.Result, log *slog.Logger) error {
	c, reused, err := f.connect(ctx, s, log)
	if err != nil {
		return err
	}
	r.Reused, r.Dialed = reused, !reused
	err = f.pullOver(ctx, s, c, r)
	if err == nil || !reused || !retryable(ctx, err) {
		return err
	}
	// The kept connection died while idle: dial once more.
	log.Debug("kept connection failed; dialing again", "err", err)
	if c, err = f.dial(ctx, s); err != nil {
		return err
	}
	r.Dialed = true
	return f.pullOver(ctx, s, c, r)
}

// pullOver runs the probe over c, and drops c when the failure may be its.
func (f *Fleet) pullOver(ctx context.Context, s inventory.Server, c *conn, r *monitor.Result) error {
	snap, info, err := c.target.Pull(ctx, pull.Options{Keywords: s.ProbeKeywords(), Sample: s.Sample, ProbeDir: s.ProbeDir, Now: f.clock.Now})
	if info.Platform != "" {
		r.Platform = info.Platform
	}
	r.Uploaded = r.Uploaded || info.Uploaded
	if err != nil {
		var pe *pull.ProbeError
		if !errors.As(err, &pe) {
			// The connection may be dead: drop it, the next attempt dials anew.
			f.drop(s.Name, c)
		}
		return err
	}
	r.Snapshot = snap
	r.ClockSkew = info.ClockSkew
	return nil
}

// retryable reports whether err, from a kept connection, is worth a second
// try over a new one: a transport failure while there is time left.
func retryable(ctx context.Context, err error) bool {
	var pe *pull.ProbeError
	return ctx.Err() == nil && !errors.As(err, &pe) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// connect returns the kept connection to s, or a new one when there is none
// that is still open and was made with s's current settings. reused tells
// which.
func (f *Fleet) connect(ctx context.Context, s inventory.Server, log *slog.Logger) (c *conn, reused bool, err error) {
	f.mu.Lock()
	c = f.conns[s.Name]
	inv := f.inv
	f.mu.Unlock()
	if c != nil {
		settings, err := connSettings(inv, s)
		switch {
		case c.ended():
			log.Debug("kept connection ended; dialing again", "err", c.client.Err())
			f.drop(s.Name, c)
		case err != nil || settings != c.settings:
			log.Debug("connection settings changed; dialing again")
			f.drop(s.Name, c)
		default:
			return c, true, nil
		}
	}
	c, err = f.dial(ctx, s)
	return c, false, err
}

// dial opens a new connection to s and keeps it, unless another caller kept
// one meanwhile: then it returns that one.
func (f *Fleet) dial(ctx context.Context, s inventory.Server) (*conn, error) {
	f.mu.Lock()
	inv := f.inv
	f.mu.Unlock()
	settings, err := connSettings(inv, s)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	c := &conn{settings: settings}
	if s.IsLocal() {
		c.target = pull.NewTarget(remote.Local{}, f.probes)
	} else {
		route, err := Route(inv, s)
		if err != nil {
			return nil, &ConfigError{Err: err}
		}
		if c.client, err = remote.Dial(ctx, route, f.dialOpts...); err != nil {
			return nil, err
		}
		c.target = pull.NewTarget(c.client, f.probes)
	}
	f.mu.Lock()
	old := f.conns[s.Name]
	if old == nil {
		f.conns[s.Name] = c
	}
	f.mu.Unlock()
	if old != nil {
		// Another caller connected meanwhile; keep theirs.
		c.close()
		return old, nil
	}
	return c, nil
}

func (f *Fleet) drop(name string, c *conn) {
	f.mu.Lock()
	if f.conns[name] == c {
		delete(f.conns, name)
	}
	f.mu.Unlock()
	c.close()
}

// forget closes the kept connections, and the watching probes, of the named
// servers, such as servers removed from the inventory. Unknown names are
// ignored.
func (f *Fleet) forget(names ...string) {
	f.stopWatch(names...)
	var gone []*conn
	f.mu.Lock()
	for _, n := range names {
		if c := f.conns[n]; c != nil {
			gone = append(gone, c)
			delete(f.conns, n)
		}
	}
	f.mu.Unlock()
	for _, c := range gone {
		c.close()
	}
}

// SetInventory makes the Fleet probe the servers of inv from now on. It
// closes the kept connections of servers that inv no longer lists, and of
// those whose connection settings (address, port, user, keys, known_hosts
// or any jump host's) changed; the others stay open.
func (f *Fleet) SetInventory(inv *inventory.Inventory) {
	var gone []string
	f.mu.Lock()
	f.inv = inv
	for name, c := range f.conns {
		s, ok := inv.Server(name)
		if !ok {
			gone = append(gone, name)
			continue
		}
		if settings, err := connSettings(inv, s); err != nil || settings != c.settings {
			gone = append(gone, name)
		}
	}
	f.mu.Unlock()
	f.forget(gone...)
}

// connSettings returns, as one comparable string, what a connection to s is
// made with: the SSH settings of each hop of its route.
func connSettings(inv *inventory.Inventory, s inventory.Server) (string, error) {
	if s.IsLocal() {
		return inventory.LocalAddress, nil
	}
	hops, err := inv.Route(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, h := range hops {
		fmt.Fprintf(&b, "%q %q %d %q %q %q %q %v %q\n", h.Name, h.Address, h.Port, h.User, h.IdentityFiles, h.IdentityPassphraseEnv, h.KnownHosts,
			h.IdentitiesOnly, h.CertificateFiles)
	}
	return b.String(), nil
}

// A ConfigError is an inventory entry that cannot be used as written, such
// as a passphrase variable that is not set.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "config: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Close ends every watching probe and closes every open connection.
func (f *Fleet) Close() error {
	f.mu.Lock()
	watches := f.watches
	f.watches = map[string]*watched{}
	f.mu.Unlock()
	for _, ws := range watches {
		ws.w.Close()
	}
	f.mu.Lock()
	conns := f.conns
	f.conns = map[string]*conn{}
	f.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	return nil
}

func (c *conn) close() {
	if c.client != nil {
		c.client.Close()
	}
}

// ended reports whether the connection has ended since it was made.
func (c *conn) ended() bool {
	if c.client == nil {
		return false
	}
	select {
	case <-c.client.Done():
		return true
	default:
		return false
	}
}

// Route returns the SSH endpoints that reach s: its jump hosts, outermost
// first, then s itself. An error about a jump host names it ("jump host
// bastion: …"); one about s does not, as the caller names s.
func Route(inv *inventory.Inventory, s inventory.Server) ([]remote.Endpoint, error) {
	hops, err := inv.Route(s)
	if err != nil {
		return nil, err
	}
	route := make([]remote.Endpoint, len(hops))
	for i, h := range hops {
		ep, err := Endpoint(h)
		if err != nil {
			if i < len(hops)-1 {
				err = fmt.Errorf("jump host %s: %w", h.Name, err)
			}
			return nil, err
		}
		route[i] = ep
	}
	return route, nil
}

// Endpoint returns the SSH endpoint of one server. Its error, when the
// variable that identity_passphrase_env names is not set, says how to fix
// it: it has a method Fix() string, and its message ends with "; " and that
// fix.
func Endpoint(s inventory.Server) (remote.Endpoint, error) {
	ep := remote.Endpoint{
		Name:             s.Name,
		Addr:             s.HostPort(),
		User:             s.User,
		IdentityFiles:    s.IdentityFiles,
		CertificateFiles: s.CertificateFiles,
		NoAgent:          s.IdentitiesOnly,
		KnownHosts:       s.KnownHosts,
		ConnectTimeout:   s.ConnectTimeout,
	}
	if s.IdentityPassphraseEnv != "" {
		p, ok := os.LookupEnv(s.IdentityPassphraseEnv)
		if !ok {
			return ep, &fixError{
				err: fmt.Errorf("identity_passphrase_env: environment variable %s is not set", s.IdentityPassphraseEnv),
				fix: fmt.Sprintf("export %s in the collector's environment", s.IdentityPassphraseEnv),
			}
		}
		ep.Passphrase = []byte(p)
	}
	return ep, nil
}

// A fixError is an error whose message ends with how to fix it, as those of
// package remote.
type fixError struct {
	err error
	fix string
}

func (e *fixError) Error() string { return e.err.Error() + "; " + e.fix }
func (e *fixError) Unwrap() error { return e.err }

// Fix says how to resolve the error; Error ends with "; " and Fix.
func (e *fixError) Fix() string { return e.fix }
