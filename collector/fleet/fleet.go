// Package fleet probes many servers at once: it connects to each (over SSH,
// through its jump hosts, or on this machine), runs the probe through package
// pull, and reports one Result per server. A slow or broken server costs only
// its own slot.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/collector/pull"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// A Result is the outcome of probing one server once.
type Result struct {
	Server   string
	Start    time.Time // collector clock
	Duration time.Duration
	Snapshot *snapshot.Snapshot // nil when Err is set
	Err      error
	Kind     Kind // KindOK when Err is nil
	Uploaded bool // the probe was uploaded during this attempt
}

// DefaultConcurrency bounds how many servers are probed at once.
const DefaultConcurrency = 256

// A Fleet probes servers of one inventory and keeps their connections open
// between calls to Probe. Close it when done.
type Fleet struct {
	inv         *inventory.Inventory
	probes      probebin.Set
	logger      *slog.Logger
	concurrency int

	mu    sync.Mutex
	conns map[string]*conn // by server name
}

// conn is an open connection to one server and what was learned about it.
type conn struct {
	client *remote.Client // nil for a local server
	target *pull.Target
}

// Options configure a Fleet.
type Options struct {
	Probes      probebin.Set // probebin.Embedded when nil
	Logger      *slog.Logger // slog.Default() when nil
	Concurrency int          // DefaultConcurrency when zero
}

// New returns a Fleet for the servers of inv.
func New(inv *inventory.Inventory, opts Options) *Fleet {
	f := &Fleet{inv: inv, probes: opts.Probes, logger: opts.Logger, concurrency: opts.Concurrency, conns: map[string]*conn{}}
	if f.probes == nil {
		f.probes = probebin.Embedded
	}
	if f.logger == nil {
		f.logger = slog.Default()
	}
	if f.concurrency <= 0 {
		f.concurrency = DefaultConcurrency
	}
	return f
}

// Probe probes servers concurrently and returns their results in the order
// of servers. onResult, when not nil, is called as each server finishes (from
// several goroutines, one call at a time).
func (f *Fleet) Probe(ctx context.Context, servers []inventory.Server, onResult func(Result)) []Result {
	results := make([]Result, len(servers))
	var mu sync.Mutex
	g := errgroup.Group{}
	g.SetLimit(f.concurrency)
	for i, s := range servers {
		g.Go(func() error {
			r := f.probeOne(ctx, s)
			results[i] = r
			if onResult != nil {
				mu.Lock()
				onResult(r)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait() // probeOne never fails the group: each result carries its own error
	return results
}

// probeOne probes one server within its timeout.
func (f *Fleet) probeOne(ctx context.Context, s inventory.Server) Result {
	start := time.Now()
	log := f.logger.With("server", s.Name)
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	snap, uploaded, err := f.pull(ctx, s)
	r := Result{Server: s.Name, Start: start, Duration: time.Since(start), Snapshot: snap, Uploaded: uploaded}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("%w (timeout %v)", err, s.Timeout)
		}
		r.Err = fmt.Errorf("%s: %w", s.Name, err)
		r.Kind = Classify(err)
		r.Snapshot = nil
		log.Warn("probe failed", "kind", r.Kind, "err", err, "duration_ms", r.Duration.Milliseconds())
	} else {
		log.Debug("probe done", "duration_ms", r.Duration.Milliseconds(), "uploaded", uploaded)
	}
	return r
}

func (f *Fleet) pull(ctx context.Context, s inventory.Server) (*snapshot.Snapshot, bool, error) {
	c, err := f.connect(ctx, s)
	if err != nil {
		return nil, false, err
	}
	snap, info, err := c.target.Pull(ctx, pull.Options{Keywords: s.Keywords, Sample: s.Sample, ProbeDir: s.ProbeDir})
	if err != nil {
		var pe *pull.ProbeError
		if !errors.As(err, &pe) {
			// The connection may be dead: drop it, the next round dials anew.
			f.drop(s.Name, c)
		}
		return nil, info.Uploaded, err
	}
	return snap, info.Uploaded, nil
}

// connect returns the open connection to s, dialing when there is none.
func (f *Fleet) connect(ctx context.Context, s inventory.Server) (*conn, error) {
	f.mu.Lock()
	c := f.conns[s.Name]
	f.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if s.IsLocal() {
		c = &conn{target: pull.NewTarget(remote.Local{}, f.probes)}
	} else {
		route, err := Route(f.inv, s)
		if err != nil {
			return nil, &ConfigError{Err: err}
		}
		client, err := remote.Dial(ctx, route)
		if err != nil {
			return nil, err
		}
		c = &conn{client: client, target: pull.NewTarget(client, f.probes)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if old := f.conns[s.Name]; old != nil {
		// Another caller connected meanwhile; keep theirs.
		c.close()
		return old, nil
	}
	f.conns[s.Name] = c
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

// A ConfigError is an inventory entry that cannot be used as written, such
// as a passphrase variable that is not set.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "config: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Close closes every open connection.
func (f *Fleet) Close() error {
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

// Route returns the SSH endpoints that reach s: its jump hosts, outermost
// first, then s itself.
func Route(inv *inventory.Inventory, s inventory.Server) ([]remote.Endpoint, error) {
	hops, err := inv.Route(s)
	if err != nil {
		return nil, err
	}
	route := make([]remote.Endpoint, len(hops))
	for i, h := range hops {
		ep, err := Endpoint(h)
		if err != nil {
			return nil, err
		}
		route[i] = ep
	}
	return route, nil
}

// Endpoint returns the SSH endpoint of one server.
func Endpoint(s inventory.Server) (remote.Endpoint, error) {
	ep := remote.Endpoint{
		Name:           s.Name,
		Addr:           s.HostPort(),
		User:           s.User,
		IdentityFiles:  s.IdentityFiles,
		KnownHosts:     s.KnownHosts,
		ConnectTimeout: s.ConnectTimeout,
	}
	if s.IdentityPassphraseEnv != "" {
		p, ok := os.LookupEnv(s.IdentityPassphraseEnv)
		if !ok {
			return ep, fmt.Errorf("identity_passphrase_env: environment variable %s is not set", s.IdentityPassphraseEnv)
		}
		ep.Passphrase = []byte(p)
	}
	return ep, nil
}
