package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/collector/alerting"
	"github.com/crawlerfleet/collector/collector/daemon"
	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/httpapi"
	"github.com/crawlerfleet/collector/collector/round"
	"github.com/crawlerfleet/collector/internal/fsutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/store"
	"github.com/crawlerfleet/collector/store/spool"
)

// The parts wired together here fit the interfaces their consumers declare.
var (
	_ alerting.Store     = (*store.Store)(nil)
	_ alerts.DiskHistory = (*store.Store)(nil)
	_ httpapi.Store      = (*store.Store)(nil)
	_ httpapi.Silences   = (*alerting.Alerting)(nil)
	_ httpapi.Alerts     = (*alerting.Alerting)(nil)
	_ spool.Writer       = (*store.Store)(nil)
	_ spool.Pinger       = (*store.Store)(nil)
	_ statusReader       = (*store.Store)(nil)
	_ reportReader       = (*store.Store)(nil)
	_ round.Writer       = (*spool.Spool)(nil)
	_ daemon.Fleet       = (*fleet.Fleet)(nil)
	_ daemon.Alerting    = (*alerting.Alerting)(nil)
	_ round.Alerter      = (*alerting.Alerting)(nil)
)

// DrainWait is how long a one-shot command (collect, once --store) waits,
// after its round, for the spool to reach the database: what is not there
// by then stays in the spool for the next run. A database found down ends
// the wait at once.
const DrainWait = 5 * time.Second

// stores is what a command opened of the store that servers.toml
// configures: the database, and for commands that write, the lock on the
// data directory and the spool in front of the database that journals
// every result.
type stores struct {
	db      *store.Store
	spool   *spool.Spool // nil for commands that only read
	dataDir string
	unlock  func() error
	logger  *slog.Logger
}

// openStore opens the store inv configures (COLLECTOR_MONGO_URI overrides
// its URI). A command that writes (command names it, for whoever finds the
// data directory locked) first locks the data directory, so that two
// collectors never run on one, and opens the spool in <data_dir>/spool.
// Commands that only read (command "") take no lock: they may read beside
// a running collector.
func (e *env) openStore(ctx context.Context, inv *inventory.Inventory, logger *slog.Logger, command string) (*stores, error) {
	cfg := store.Config{
		URI:             inv.Store.URI,
		Database:        inv.Store.Database,
		DataDir:         inv.Store.DataDir,
		Retention:       inv.Store.Retention,
		RollupRetention: inv.Store.RollupRetention,
	}.ApplyEnv(e.getenv)
	s := &stores{logger: logger}
	if command != "" {
		dir := cfg.DataDir
		if dir == "" {
			dir = store.DefaultDataDir
		}
		dir, err := filepath.Abs(dir)
		if err == nil {
			err = os.MkdirAll(dir, 0o700)
		}
		if err != nil {
			return nil, fmt.Errorf("open store: data_dir: %w", err)
		}
		host, _ := os.Hostname()
		who := fmt.Sprintf("collector %s (pid %d on %s, since %s)", command, os.Getpid(), host, time.Now().Format(time.RFC3339))
		unlock, err := fsutil.Lock(filepath.Join(dir, "lock"), who)
		var locked *fsutil.LockedError
		if errors.As(err, &locked) {
			return nil, fmt.Errorf("data_dir %s is in use by %s: stop it first, or give this collector its own [store] data_dir", dir, locked.Holder)
		}
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.unlock = unlock
	}
	db, err := store.Open(ctx, cfg, logger)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.db, s.dataDir = db, db.DataDir()
	if command != "" {
		if s.spool, err = spool.Open(filepath.Join(s.dataDir, "spool"), inv.Store.SpoolMax, db, logger); err != nil {
			s.close()
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	return s, nil
}

// drain waits up to DrainWait for the spool to reach the database, and
// logs what stays spooled for the next run.
func (s *stores) drain(ctx context.Context) {
	if s.spool == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, DrainWait)
	defer cancel()
	if err := s.spool.Drain(ctx); err != nil {
		s.logger.Warn("results kept in the spool for the next run", "dir", filepath.Join(s.dataDir, "spool"), "err", err)
	}
}

// storeDown reports whether the database takes writes, for the "store"
// alert and the health check.
func (s *stores) storeDown() (bool, string) {
	h := s.spool.Health()
	return h.WriterDown, h.WriterError
}

// close closes the spool (what it holds stays on disk), the database and
// the lock, and logs a failure.
func (s *stores) close() {
	if s.spool != nil {
		if err := s.spool.Close(); err != nil {
			s.logger.Error("close spool", "err", err)
		}
	}
	if s.db != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.db.Close(ctx); err != nil {
			s.logger.Error("close store", "err", err)
		}
	}
	if s.unlock != nil {
		if err := s.unlock(); err != nil {
			s.logger.Error("unlock data_dir", "err", err)
		}
	}
}

// withStore opens the store inv configures for reading, runs fn with it,
// and closes it: for the commands that only read or add a little (status,
// alerts, silences, report).
func (e *env) withStore(ctx context.Context, inv *inventory.Inventory, fn func(db *store.Store) error) error {
	logger := e.logger(slog.LevelWarn)
	s, err := e.openStore(ctx, inv, logger, "")
	if err != nil {
		return err
	}
	defer s.close()
	return fn(s.db)
}

// newAlerting sets up alerting over st, keeping its local state in
// <data_dir>/alerts, for a command that writes. The collector's own alerts
// name it after member, a member of a cluster, else after its host.
func (e *env) newAlerting(ctx context.Context, inv *inventory.Inventory, st *stores, logger *slog.Logger, member string) (*alerting.Alerting, error) {
	host, _ := os.Hostname()
	if host == "" {
		host = "collector"
	}
	if member != "" {
		host = member
	}
	return alerting.New(ctx, alerting.Options{
		Alerts:    inv.Alerts,
		Store:     st.db,
		Getenv:    e.getenv,
		Dir:       filepath.Join(st.dataDir, "alerts"),
		StoreDown: st.storeDown,
		Host:      host,
		Logger:    logger,
	})
}
