package alerting

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/internal/fsutil"
	"github.com/crawlerfleet/collector/monitor"
)

// StoreWait bounds each call the alert state makes to the database; a
// round never waits on it longer (and not at all to load or save its rule
// states, which live in memory).
const StoreWait = time.Second

// syncEvery is how often the states not yet in the database are written
// to it, besides after each save.
const syncEvery = 30 * time.Second

// localState is the alert engine's StateStore for a running collector: the
// rule states live in memory and in a local file (rewritten atomically on
// each save), and go to the database behind the rounds, so that alerting
// never goes blind while the database is down, and a restart during an
// outage keeps every state. Silences are read from the database on each
// round, within StoreWait, and the last ones read are used while it does
// not answer.
type localState struct {
	db     alerts.StateStore
	path   string
	clock  clockwork.Clock
	logger *slog.Logger

	mu       sync.Mutex
	states   map[string]monitor.AlertState // by key; none in AlertOK
	unsynced map[string]monitor.AlertState // by key: to write to the database (AlertOK: to delete)
	silences []monitor.Silence             // the last read from the database
	downLog  bool                          // the database's absence was logged
	fileErr  bool                          // the local file could not be written

	wake chan struct{}
}

var _ alerts.StateStore = (*localState)(nil)

// stateFile is the local file: the states, and those not yet written to the
// database.
type stateFile struct {
	States   []monitor.AlertState `json:"states"`
	Unsynced []monitor.AlertState `json:"unsynced"`
	Silences []monitor.Silence    `json:"silences"`
}

// newLocalState loads the states: from the local file when there is one;
// otherwise from the database, when it answers within StoreWait.
func newLocalState(ctx context.Context, db alerts.StateStore, path string, clock clockwork.Clock, logger *slog.Logger) (*localState, error) {
	l := &localState{db: db, path: path, clock: clock, logger: logger,
		states: map[string]monitor.AlertState{}, unsynced: map[string]monitor.AlertState{}, wake: make(chan struct{}, 1)}
	var file stateFile
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read alert state: %w", err)
	default:
		if err := json.Unmarshal(b, &file); err != nil {
			logger.Warn("local alert state unreadable; starting from the database's", "file", path, "err", err)
			file = stateFile{}
		}
	}
	l.silences = file.Silences
	// The local file is this data directory's own record: when there is
	// one it is used as it is, without waiting on the database. Without
	// one (a first run, a new data directory), the database's states are
	// loaded, if it answers within StoreWait.
	stored := file.States
	if b == nil {
		dbCtx, cancel := context.WithTimeout(ctx, StoreWait)
		stored, err = db.LoadStates(dbCtx, nil)
		cancel()
		if err != nil {
			logger.Warn("database did not answer; starting without alert states", "err", err)
		}
	}
	for _, st := range stored {
		if st.Status != monitor.AlertOK && st.Status != "" {
			l.states[st.Key()] = st
		}
	}
	for _, st := range file.Unsynced {
		l.unsynced[st.Key()] = st
	}
	return l, nil
}

// apply puts st in states (or takes it out, in AlertOK). mu must be held
// (or l not yet shared).
func (l *localState) apply(st monitor.AlertState) {
	if st.Status == monitor.AlertOK || st.Status == "" {
		delete(l.states, st.Key())
		return
	}
	l.states[st.Key()] = st
}

// LoadStates returns the states of servers (all with nil) from memory.
func (l *localState) LoadStates(_ context.Context, servers []string) ([]monitor.AlertState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []monitor.AlertState
	for _, st := range l.states {
		if servers == nil || slices.Contains(servers, st.Server) {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b monitor.AlertState) int {
		return cmp.Or(strings.Compare(a.Server, b.Server), strings.Compare(a.Rule, b.Rule))
	})
	return out, nil
}

// SaveStates keeps states in memory, where the running collector reads
// them, and in the local file, and wakes the writer that takes them to the
// database. When the local file cannot be written (a full disk) the states
// still change in memory, so the rounds go on without notifying twice; the
// file is written again on the next save or sync, and until then a restart
// finds the older states (and notifies again, at least once).
func (l *localState) SaveStates(_ context.Context, states []monitor.AlertState) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range states {
		l.apply(st)
		l.unsynced[st.Key()] = st
	}
	if err := l.persistLocked(); err != nil {
		if !l.fileErr {
			l.logger.Error("alert states kept in memory only until the local file can be written", "err", err)
			l.fileErr = true
		}
	} else if l.fileErr {
		l.logger.Info("alert states written to the local file again", "file", l.path)
		l.fileErr = false
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

// persistLocked writes the local file. mu must be held.
func (l *localState) persistLocked() error {
	f := stateFile{Silences: l.silences}
	for _, st := range l.states {
		f.States = append(f.States, st)
	}
	for _, st := range l.unsynced {
		f.Unsynced = append(f.Unsynced, st)
	}
	byKey := func(a, b monitor.AlertState) int { return strings.Compare(a.Key(), b.Key()) }
	slices.SortFunc(f.States, byKey)
	slices.SortFunc(f.Unsynced, byKey)
	if err := fsutil.WriteJSON(l.path, f); err != nil {
		return fmt.Errorf("save alert states in %s: %w", l.path, err)
	}
	return nil
}

// Silences returns the silences active at now: from the database when it
// answers within StoreWait, else the last ones it gave.
func (l *localState) Silences(ctx context.Context, now time.Time) ([]monitor.Silence, error) {
	ctx, cancel := context.WithTimeout(ctx, StoreWait)
	defer cancel()
	got, err := l.db.Silences(ctx, now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.silences = got
		return got, nil
	}
	var active []monitor.Silence
	for _, s := range l.silences {
		if now.Before(s.Until) {
			active = append(active, s)
		}
	}
	return active, nil
}

// AddSilence stores s in the database.
func (l *localState) AddSilence(ctx context.Context, s monitor.Silence) error {
	return l.db.AddSilence(ctx, s)
}

// DeleteSilence removes a silence from the database.
func (l *localState) DeleteSilence(ctx context.Context, id string) error {
	return l.db.DeleteSilence(ctx, id)
}

// Sync writes the states not yet in the database to it, within ctx, and
// reports what it could not write.
func (l *localState) Sync(ctx context.Context) error {
	l.mu.Lock()
	var todo []monitor.AlertState
	for _, st := range l.unsynced {
		todo = append(todo, st)
	}
	l.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, StoreWait)
	defer cancel()
	if err := l.db.SaveStates(ctx, todo); err != nil {
		l.mu.Lock()
		if !l.downLog {
			l.logger.Warn("alert states not written to the database yet; they are kept in the local file", "file", l.path, "states", len(todo), "err", err)
			l.downLog = true
		}
		l.mu.Unlock()
		return fmt.Errorf("write %d alert states to the database: %w", len(todo), err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range todo {
		if cur, ok := l.unsynced[st.Key()]; ok && cur == st {
			delete(l.unsynced, st.Key())
		}
	}
	if l.downLog {
		l.logger.Info("alert states written to the database again")
		l.downLog = false
	}
	return l.persistLocked()
}

// run writes the unsynced states to the database after each save and every
// syncEvery, until ctx ends.
func (l *localState) run(ctx context.Context) {
	for {
		_ = l.Sync(ctx) // logged
		timer := l.clock.NewTimer(syncEvery)
		select {
		case <-ctx.Done():
		case <-l.wake:
		case <-timer.Chan():
		}
		timer.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// DailyDiskPeaks passes the "disk_full" rule's history through from the
// database, when it keeps one (alerts.DiskHistory).
func (l *localState) DailyDiskPeaks(ctx context.Context, server string, from, to time.Time) (map[string][]monitor.DailyPeak, error) {
	h, ok := l.db.(alerts.DiskHistory)
	if !ok {
		return nil, nil
	}
	return h.DailyDiskPeaks(ctx, server, from, to)
}
