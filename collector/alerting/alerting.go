// Package alerting puts the alert rules to work after each round: it
// evaluates a round's results with the rule engine (package alerts), queues
// the round's digest in the outbox (package alerts/notify), which delivers
// it to every channel with retries, and only then saves the rule states, so
// a crash in between notifies again rather than never. A reload of
// servers.toml swaps the channels and the repeat interval.
//
// Alerting never goes blind while the database is down: the rule states
// live in memory and in a local file, and reach the database behind the
// rounds; notifications the database does not take are kept in a local
// file and delivered all the same; and the collector's own "store" alert
// says, through the channels directly, that the database is unreachable.
package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/alerts/notify"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// A Store keeps what alerting needs across rounds and restarts: the rule
// states and silences, and the outbox.
type Store interface {
	alerts.StateStore
	notify.OutboxStore
	// OutboxSince returns the outbox entries created at or after since,
	// oldest first, whatever their status (see Adopt).
	OutboxSince(ctx context.Context, since time.Time) ([]monitor.OutboxEntry, error)
}

// StoreAlertAfter is how many rounds in a row must find the database down
// before the "store" alert fires.
const StoreAlertAfter = 2

// Options configure New. Alerts and Store are required.
type Options struct {
	// Alerts is the [alerts] section: channels and repeat.
	Alerts inventory.Alerts
	Store  Store
	// Getenv supplies the channels' secrets (os.Getenv when nil).
	Getenv func(string) string
	// Dir keeps the rule states and the notifications the database does
	// not take (created with mode 0700), so that alerting goes on while the
	// database is down and across restarts. Empty: they live in the
	// database only.
	Dir string
	// StoreDown, when set, reports whether the database takes writes and,
	// when not, why; alerting raises the "store" alert of Host when it has
	// not for StoreAlertAfter rounds.
	StoreDown func() (down bool, why string)
	// Host names the collector in its own alerts (its host name).
	Host   string
	Clock  clockwork.Clock // the real clock when nil
	Logger *slog.Logger
}

// Alerting evaluates rounds and queues their notifications. Its methods are
// safe for concurrent use.
type Alerting struct {
	engine *alerts.Engine
	outbox *notify.Outbox // with no channel configured alerts are only logged
	local  *localState    // nil without Dir
	states alerts.StateStore
	o      Options

	mu           sync.Mutex
	repeat       time.Duration
	config       inventory.Alerts // what the channels were built from
	memberStates bool             // the last ObserveMembers found member alerts
}

// New sets up alerting. A channel that cannot be set up (a missing
// environment variable, say) is logged and left out; the others still
// work. It fails only when Dir cannot be used.
func New(ctx context.Context, o Options) (*Alerting, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	a := &Alerting{o: o, repeat: o.Alerts.Repeat, config: o.Alerts, states: o.Store}
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("alerting: %w", err)
		}
		local, err := newLocalState(ctx, o.Store, filepath.Join(o.Dir, "state.json"), o.Clock, o.Logger)
		if err != nil {
			return nil, fmt.Errorf("alerting: %w", err)
		}
		a.local, a.states = local, local
	}
	a.engine = alerts.NewEngine(a.states, o.Clock, o.Logger)
	a.outbox = notify.NewOutbox(o.Store, a.channels(o.Alerts), o.Clock, o.Logger)
	if o.Dir != "" {
		if err := a.outbox.KeepLocally(filepath.Join(o.Dir, "outbox-held.json")); err != nil {
			return nil, fmt.Errorf("alerting: %w", err)
		}
	}
	a.engine.SetQueue(a.outbox.Enqueue)
	return a, nil
}

// Outbox returns the outbox that delivers the notifications.
func (a *Alerting) Outbox() *notify.Outbox { return a.outbox }

// channels builds the alert channels of cfg.
func (a *Alerting) channels(cfg inventory.Alerts) []notify.Notifier {
	notifiers, err := notify.FromConfig(cfg, a.o.Getenv)
	if err != nil {
		a.o.Logger.Error("alert channels left out", "err", err)
	}
	return notifiers
}

// Reload applies the [alerts] settings of inv that are not per-server
// rules: the repeat interval, and the channels when their configuration
// changed. Rules come with the servers on each round.
func (a *Alerting) Reload(inv *inventory.Inventory) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.repeat = inv.Alerts.Repeat
	if reflect.DeepEqual(a.config.Email, inv.Alerts.Email) && reflect.DeepEqual(a.config.Webhooks, inv.Alerts.Webhooks) {
		return
	}
	a.config = inv.Alerts
	notifiers := a.channels(inv.Alerts)
	a.outbox.SetNotifiers(notifiers)
	names := make([]string, len(notifiers))
	for i, n := range notifiers {
		names[i] = n.Name()
	}
	a.o.Logger.Info("alert channels reloaded", "channels", names)
}

func (a *Alerting) repeatEvery() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.repeat <= 0 {
		return inventory.DefaultAlertRepeat
	}
	return a.repeat
}

// Observe evaluates one round's results with the rules of servers; the
// engine queues the round's notification, if any, before it saves the
// states. Then it checks the collector's own "store" alert. It is
// round.Alerter.
func (a *Alerting) Observe(ctx context.Context, servers []inventory.Server, results []monitor.Result) {
	n, err := a.engine.Round(ctx, servers, results, a.repeatEvery())
	if err != nil {
		a.o.Logger.Error("evaluate alerts", "err", err)
	}
	if n != nil {
		for _, al := range n.Alerts {
			a.o.Logger.Warn("alert", "server", al.Server, "rule", al.Rule, "state", al.State, "summary", al.Summary)
		}
	}
	a.observeStore(ctx)
}

// observeStore raises, repeats and resolves the collector's "store" alert,
// whose state is kept with the others (in the local file when there is
// one, so a crontab's collect does not notify on every run).
func (a *Alerting) observeStore(ctx context.Context) {
	if a.o.StoreDown == nil || a.local == nil {
		return
	}
	down, why := a.o.StoreDown()
	now := a.o.Clock.Now()
	states, _ := a.local.LoadStates(ctx, []string{a.o.Host})
	var st monitor.AlertState
	for _, s := range states {
		if s.Rule == alerts.RuleStore {
			st = s
		}
	}
	if st.Rule == "" {
		st = monitor.AlertState{Server: a.o.Host, Rule: alerts.RuleStore, Status: monitor.AlertOK}
	}
	next := st
	var notice *alerts.Alert
	switch {
	case down:
		next.Streak++
		next.Summary = "store unreachable: " + why
		if st.Status != monitor.AlertFiring && st.Status != monitor.AlertPending {
			next.Status, next.Since = monitor.AlertPending, now
		}
		if next.Status == monitor.AlertPending && next.Streak >= StoreAlertAfter {
			next.Status, next.Since = monitor.AlertFiring, now
		}
		if next.Status == monitor.AlertFiring && (next.LastNotified.IsZero() || now.Sub(next.LastNotified) >= a.repeatEvery()) {
			next.LastNotified = now
			notice = &alerts.Alert{State: monitor.AlertFiring, StartsAt: next.Since}
		}
	case st.Status == monitor.AlertFiring:
		next = monitor.AlertState{Server: a.o.Host, Rule: alerts.RuleStore, Status: monitor.AlertOK}
		notice = &alerts.Alert{State: monitor.AlertResolved, StartsAt: st.Since, EndsAt: now}
		next.Summary = "store reachable again"
	case st.Status != monitor.AlertOK:
		next = monitor.AlertState{Server: a.o.Host, Rule: alerts.RuleStore, Status: monitor.AlertOK}
	default:
		return
	}
	if notice != nil {
		notice.Server, notice.Rule, notice.Summary = a.o.Host, alerts.RuleStore, next.Summary
		if notice.State == monitor.AlertResolved {
			notice.Summary = "store reachable again (it was: " + st.Summary + ")"
		}
		notice.Labels = alerts.Labels(a.o.Host, alerts.RuleStore)
		n := alerts.NewNotification(now, []alerts.Alert{*notice}, false)
		a.o.Logger.Warn("alert", "server", notice.Server, "rule", notice.Rule, "state", notice.State, "summary", notice.Summary)
		if err := a.outbox.Enqueue(ctx, *n); err != nil {
			a.o.Logger.Error("queue the store alert", "err", err)
			return // not saved: the next round tries again
		}
	}
	if err := a.local.SaveStates(ctx, []monitor.AlertState{next}); err != nil {
		a.o.Logger.Error("save the store alert's state", "err", err)
	}
}

// Firing returns the firing alerts from the states alerting keeps (in
// memory when it has a Dir, so they show while the database is down).
func (a *Alerting) Firing(ctx context.Context) ([]monitor.AlertState, error) {
	return alerts.Firing(ctx, a.states)
}

// Silences returns the silences active at now: from the database, or the
// last ones it gave while it does not answer.
func (a *Alerting) Silences(ctx context.Context, now time.Time) ([]monitor.Silence, error) {
	return a.states.Silences(ctx, now)
}

// Problems says what alerting cannot do now, for the health check:
// notifications held locally because the database does not take them.
func (a *Alerting) Problems() []string {
	if n := a.outbox.Held(); n > 0 {
		return []string{fmt.Sprintf("%d alert notifications held locally: the database does not take them yet", n)}
	}
	return nil
}

// Run delivers queued notifications (and retries failed ones) and writes
// the rule states to the database behind the rounds, until ctx ends.
func (a *Alerting) Run(ctx context.Context, every time.Duration) {
	var wg sync.WaitGroup
	if a.local != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.local.run(ctx) }()
	}
	a.outbox.Run(ctx, every)
	wg.Wait()
}

// Flush delivers what the outbox holds now and writes the rule states to
// the database, for one-shot commands and at shutdown. What it could not
// do stays queued (locally) for the next run.
func (a *Alerting) Flush(ctx context.Context) {
	if _, failed, err := a.outbox.Flush(ctx); err != nil || failed > 0 {
		a.o.Logger.Warn("alert notifications not delivered yet; they stay in the outbox and are retried", "failed", failed, "err", err)
	}
	if a.local != nil {
		_ = a.local.Sync(ctx) // logged
	}
}
