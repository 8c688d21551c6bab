package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/crawlerfleet/collector/collector/alerting"
	"github.com/crawlerfleet/collector/collector/httpapi"
	"github.com/crawlerfleet/collector/collector/report"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// Limits of the daemon's HTTP listener. Every request is a GET without a
// body; the slowest answer is the HTML report of a large fleet.
const (
	// httpReadHeaderTimeout bounds reading a request's headers, so a client
	// that opens a connection and sends nothing (or a byte at a time)
	// cannot hold it.
	httpReadHeaderTimeout = 10 * time.Second
	// httpReadTimeout bounds reading a whole request, body included.
	httpReadTimeout = 30 * time.Second
	// httpWriteTimeout bounds a request from the end of its headers to the
	// end of the answer: long enough for /report over months of a large
	// fleet (a 30-day report of 100 servers takes about a second); a
	// report that takes longer is cut off.
	httpWriteTimeout = 2 * time.Minute
	// httpMaxHeaderBytes caps a request's headers; a larger request is
	// answered 431 Request Header Fields Too Large. A bearer token and a
	// browser's headers need a few KiB.
	httpMaxHeaderBytes = 64 << 10
)

// httpIdleTimeout is how long a keep-alive connection may wait for its next
// request before the server closes it: longer than the live page's refresh,
// so a browser keeps its connection. A variable so tests can shorten it.
var httpIdleTimeout = 2 * time.Minute

// lookupEnv tells an empty environment variable from an unset one, which
// env.getenv cannot; it is os.LookupEnv.
var lookupEnv = os.LookupEnv

// apiServer is the daemon's HTTP listener: API, /metrics and the live page.
type apiServer struct {
	api  *httpapi.Server
	http *http.Server
	addr string // where it listens, such as "127.0.0.1:9108"
	done chan struct{}
}

// startAPI listens on addr (--listen, else [http] listen) and serves the API
// for the inventory that current returns. A non-loopback address needs a
// token.
func (e *env) startAPI(addr string, inv *inventory.Inventory, current *atomic.Pointer[inventory.Inventory], st *stores, al *alerting.Alerting, logger *slog.Logger) (*apiServer, error) {
	token := ""
	if name := inv.HTTP.TokenEnv; name != "" {
		if token = e.getenv(name); token == "" {
			if _, set := lookupEnv(name); set {
				return nil, fmt.Errorf("[http] token_env: environment variable %s is empty: put the bearer token in it", name)
			}
			return nil, fmt.Errorf("[http] token_env: environment variable %s is not set: export the bearer token in it", name)
		}
	}
	if host, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--listen %q: %w", addr, err)
	} else if ip := net.ParseIP(host); token == "" && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--listen %q is reachable from other machines: set [http] token_env to require a bearer token, or listen on 127.0.0.1", addr)
	}
	api := httpapi.New(httpapi.Options{
		Servers:  func() []inventory.Server { return current.Load().Servers },
		Store:    st.db,
		Alerts:   al, // from memory: the live page shows them while the database is down
		Silences: al,
		Problems: func() []string {
			return append(st.spool.Health().Problems(), al.Problems()...)
		},
		Report: func(ctx context.Context, from, to time.Time) (*report.Report, error) {
			inv := current.Load()
			return buildReport(ctx, st.db, inv, inv.Servers, from, to, "", time.Now())
		},
		Token:  token,
		Now:    time.Now,
		Logger: logger,
	})
	api.SetGauges(httpapi.Gauges{
		SpoolBytes: func() float64 { return float64(st.spool.Bytes()) },
		OutboxPending: func() float64 {
			// Every entry not yet delivered, due or backing off, in the
			// database or held locally while it is down.
			n, err := al.Outbox().Pending(context.Background())
			if err != nil {
				return -1
			}
			return float64(n)
		},
		StoreUp: func() float64 {
			if down, _ := st.storeDown(); down {
				return 0
			}
			return 1
		},
		ResultsLost: func() float64 { return float64(st.spool.Lost()) },
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the HTTP API: %w", err)
	}
	s := &apiServer{api: api, http: newHTTPServer(api), addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP API stopped", "err", err)
		}
	}()
	logger.Info("serving the HTTP API", "addr", s.addr, "token", token != "")
	return s, nil
}

// newHTTPServer returns the server for h with the limits above.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
	}
}

// observe feeds a round's results to the metrics.
func (s *apiServer) observe(results []monitor.Result, d time.Duration) {
	s.api.Observe(results)
	s.api.ObserveRound(d)
}

// stop shuts the listener down, letting requests in flight finish briefly.
func (s *apiServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	<-s.done
}
