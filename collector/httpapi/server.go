package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crawlerfleet/collector/collector/report"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// A Store reads what the API serves; package store implements it.
type Store interface {
	// Latest returns the newest successful result (with its Snapshot) of
	// server, or an error that wraps monitor.ErrNotFound when there is
	// none.
	Latest(ctx context.Context, server string) (*monitor.Result, error)
	// Newest returns the newest successful and the newest failed result
	// of server (Kind and Err), each nil when there is none.
	Newest(ctx context.Context, server string) (latest, failure *monitor.Result, err error)
	// Snapshots returns the newest limit successful results of server
	// with from <= At < to, oldest first.
	Snapshots(ctx context.Context, server string, from, to time.Time, limit int) ([]monitor.Result, error)
}

// Alerts lists the firing alerts, such as alerts.Firing over the store.
type Alerts interface {
	// Firing returns the states of the firing rules; states with another
	// status are ignored.
	Firing(ctx context.Context) ([]monitor.AlertState, error)
}

// Silences lists the silences in force, such as the store's.
type Silences interface {
	// Silences returns the silences active at now.
	Silences(ctx context.Context, now time.Time) ([]monitor.Silence, error)
}

// AlertsFunc adapts a function to Alerts.
type AlertsFunc func(ctx context.Context) ([]monitor.AlertState, error)

var _ Alerts = AlertsFunc(nil)

// Firing calls f.
func (f AlertsFunc) Firing(ctx context.Context) ([]monitor.AlertState, error) { return f(ctx) }

// ReportFunc builds the peak report over [from, to).
type ReportFunc func(ctx context.Context, from, to time.Time) (*report.Report, error)

// Options configure a Server. Servers and Store are required.
type Options struct {
	// Servers returns the current inventory; it is called on every request
	// and scrape, so a reload shows at once.
	Servers func() []inventory.Server
	Store   Store
	// Alerts may be nil: no server then has firing alerts.
	Alerts Alerts
	// Silences, when not nil, marks the firing alerts it silences.
	Silences Silences
	// Report builds the report for /api/report and /report; nil answers
	// those with 501.
	Report ReportFunc
	// Problems, when set, returns what is wrong with the daemon now (the
	// database unreachable, the spool unwritable, results lost): /healthz
	// then says "degraded". Nil or none: "ok".
	Problems func() []string
	// Token, when not empty, must come with every request but /healthz as
	// "Authorization: Bearer <token>"; the pages / and /report also take it
	// as ?token=.
	Token string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger gets 5xx errors (slog.Default when nil).
	Logger *slog.Logger
}

// A Server is the HTTP API, the metrics endpoint and the live page of
// `collector run`. It is an http.Handler; Observe, ObserveRound and
// SetGauges feed /metrics. All methods are safe for concurrent use.
type Server struct {
	o        Options
	mux      *http.ServeMux
	tokenSum [sha256.Size]byte

	reg     *prometheus.Registry
	metrics http.Handler
	round   prometheus.Histogram

	mu     sync.Mutex
	latest map[string]*serverState // by server name

	gaugeMu sync.Mutex
	gauges  []prometheus.Collector // registered by SetGauges
}

// New returns a Server for o. It panics when o.Servers or o.Store is nil.
func New(o Options) *Server {
	if o.Servers == nil || o.Store == nil {
		panic("httpapi.New: Options.Servers and Options.Store are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{o: o, mux: http.NewServeMux(), latest: map[string]*serverState{}}
	if o.Token != "" {
		s.tokenSum = sha256.Sum256([]byte(o.Token))
	}
	s.initMetrics()

	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /{$}", s.page)
	s.mux.HandleFunc("GET /report", s.reportHTML)
	s.mux.HandleFunc("GET /metrics", s.metrics.ServeHTTP)
	s.mux.HandleFunc("GET /api/servers", s.servers)
	s.mux.HandleFunc("GET /api/servers/{name}/latest", s.latestSnapshot)
	s.mux.HandleFunc("GET /api/servers/{name}/snapshots", s.snapshots)
	s.mux.HandleFunc("GET /api/report", s.reportJSON)
	return s
}

// ServeHTTP checks the token, then routes r. Unknown paths get a JSON 404,
// other methods than GET and HEAD a JSON 405.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.URL.Path != "/healthz" && !s.authorized(w, r) {
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		get := r.Clone(r.Context())
		get.Method = http.MethodGet
		if _, p := s.mux.Handler(get); p != "" {
			h.Set("Allow", "GET, HEAD")
			s.fail(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use GET", nil)
			return
		}
		s.fail(w, r, http.StatusNotFound, "no such path: "+r.URL.Path, nil)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// hasToken reports whether r carries the token, or no token is needed.
func (s *Server) hasToken(r *http.Request) bool {
	if s.o.Token == "" {
		return true
	}
	got, ok := bearer(r.Header.Get("Authorization"))
	if !ok && pageRoute(r.URL.Path) {
		got, ok = r.URL.Query().Get("token"), r.URL.Query().Has("token")
	}
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// authorized reports whether r carries the token, answering 401 when not.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.hasToken(r) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="collector"`)
	msg := "missing or wrong token: send the header \"Authorization: Bearer <token>\""
	if r.URL.Query().Has("token") && !pageRoute(r.URL.Path) {
		msg = "?token= is accepted only on the pages / and /report: send the header \"Authorization: Bearer <token>\""
	}
	s.fail(w, r, http.StatusUnauthorized, msg, nil)
	return false
}

// pageRoute reports whether path is a page a browser opens by its address,
// which may carry the token as ?token=.
func pageRoute(path string) bool { return path == "/" || path == "/report" }

// bearer returns the credentials of an "Authorization: Bearer" header.
func bearer(header string) (string, bool) {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(cred), true
}

// health is the body of /healthz.
type health struct {
	Status   string   `json:"status"`             // "ok" or "degraded"
	Problems []string `json:"problems,omitempty"` // only to a caller with the token
}

// healthz answers 200 {"status": "ok"}, or {"status": "degraded"} with
// the problems when something is wrong. The daemon still runs, so a
// service manager should not restart it for that; the problems (paths,
// errors) go only to a caller that sends the token, when one is set.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	h := health{Status: "ok"}
	if s.o.Problems != nil {
		if p := s.o.Problems(); len(p) > 0 {
			h.Status = "degraded"
			if s.hasToken(r) {
				h.Problems = p
			}
		}
	}
	s.writeJSON(w, r, http.StatusOK, h)
}

// errorBody is every error response.
type errorBody struct {
	Error string `json:"error"`
}

// fail answers with status and {"error": msg}. err, when set, is logged
// for a 5xx and never sent: msg is all a client sees.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if status >= 500 {
		s.o.Logger.Error("http request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	s.writeJSON(w, r, status, errorBody{Error: msg})
}

// writeJSON answers with status and v as JSON, encoded before anything is
// sent so that an encoding failure is still a clean 500.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		s.o.Logger.Error("http request failed", "method", r.Method, "path", r.URL.Path, "status", http.StatusInternalServerError, "err", err)
		buf.Reset()
		buf.WriteString(`{"error": "internal error: see the collector's log"}` + "\n")
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
