package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/collector/httpapi"
	"github.com/crawlerfleet/collector/collector/report"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// apiServer is the daemon's HTTP listener: API, /metrics and the live page.
type apiServer struct {
	api  *httpapi.Server
	http *http.Server
	done chan struct{}
}

// startAPI listens on addr (--listen, else [http] listen) and serves the API
// for the inventory that current returns. A non-loopback address needs a
// token.
func (e *env) startAPI(addr string, inv *inventory.Inventory, current *atomic.Pointer[inventory.Inventory], st *stores, logger *slog.Logger) (*apiServer, error) {
	token := ""
	if inv.HTTP.TokenEnv != "" {
		if token = e.getenv(inv.HTTP.TokenEnv); token == "" {
			return nil, fmt.Errorf("[http] token_env: environment variable %s is not set", inv.HTTP.TokenEnv)
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
		Alerts:   httpapi.AlertsFunc(func(ctx context.Context) ([]monitor.AlertState, error) { return alerts.Firing(ctx, st.db) }),
		Silences: st.db,
		Report: func(ctx context.Context, from, to time.Time) (*report.Report, error) {
			inv := current.Load()
			return buildReport(ctx, st.db, inv, inv.Servers, from, to, "", time.Now())
		},
		Token:  token,
		Now:    time.Now,
		Logger: logger,
	})
	api.SetGauges(
		func() float64 { return float64(st.spool.Bytes()) },
		func() float64 {
			// Every entry not yet delivered, due or backing off.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := st.db.OutboxPending(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the HTTP API: %w", err)
	}
	s := &apiServer{api: api, http: &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP API stopped", "err", err)
		}
	}()
	logger.Info("serving the HTTP API", "addr", ln.Addr().String(), "token", token != "")
	return s, nil
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
