package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/crawlerfleet/collector/collector/alerting"
	"github.com/crawlerfleet/collector/collector/daemon"
	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/httpapi"
	"github.com/crawlerfleet/collector/collector/round"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/store"
	"github.com/crawlerfleet/collector/store/spool"
)

// The parts wired together here fit the interfaces their consumers declare.
var (
	_ alerting.Store   = (*store.Store)(nil)
	_ httpapi.Store    = (*store.Store)(nil)
	_ httpapi.Silences = (*store.Store)(nil)
	_ spool.Writer     = (*store.Store)(nil)
	_ statusReader     = (*store.Store)(nil)
	_ reportReader     = (*store.Store)(nil)
	_ round.Writer     = (*spool.Spool)(nil)
	_ daemon.Fleet     = (*fleet.Fleet)(nil)
	_ daemon.Reloader  = (*alerting.Alerting)(nil)
	_ round.Alerter    = (*alerting.Alerting)(nil)
)

// stores is what a command opened of the store that servers.toml
// configures: the database, and for commands that write, the spool in front
// of it that keeps results while the database is down.
type stores struct {
	db     *store.Store
	spool  *spool.Spool // nil for commands that only read
	logger *slog.Logger
}

// openStore opens the store inv configures (COLLECTOR_MONGO_URI overrides
// its URI) and, when writing, the spool in <data_dir>/spool.
func (e *env) openStore(ctx context.Context, inv *inventory.Inventory, logger *slog.Logger, writing bool) (*stores, error) {
	cfg := store.Config{
		URI:             inv.Store.URI,
		Database:        inv.Store.Database,
		DataDir:         inv.Store.DataDir,
		Retention:       inv.Store.Retention,
		RollupRetention: inv.Store.RollupRetention,
	}.ApplyEnv(e.getenv)
	db, err := store.Open(ctx, cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &stores{db: db, logger: logger}
	if writing {
		dir := filepath.Join(db.DataDir(), "spool")
		if s.spool, err = spool.Open(dir, inv.Store.SpoolMax, db, logger); err != nil {
			s.close()
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	return s, nil
}

// close closes the spool and the database, and logs a failure.
func (s *stores) close() {
	if s.spool != nil {
		if err := s.spool.Close(); err != nil {
			s.logger.Error("close spool", "err", err)
		}
	}
	if err := s.db.Close(context.Background()); err != nil {
		s.logger.Error("close store", "err", err)
	}
}

// withStore opens the store inv configures for reading, runs fn with it,
// and closes it: for the commands that only read or add a little (status,
// alerts, silences, report).
func (e *env) withStore(ctx context.Context, inv *inventory.Inventory, fn func(db *store.Store) error) error {
	logger := e.logger(slog.LevelWarn)
	s, err := e.openStore(ctx, inv, logger, false)
	if err != nil {
		return err
	}
	defer s.close()
	return fn(s.db)
}
