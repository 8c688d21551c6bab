// Package alerting puts the alert rules to work after each round: it
// evaluates a round's results with the rule engine (package alerts), logs
// what fired or resolved, and queues the round's digest in the outbox
// (package alerts/notify), which delivers it to every channel with retries.
// A reload of servers.toml swaps the channels and the repeat interval.
package alerting

import (
	"context"
	"log/slog"
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
}

// Alerting evaluates rounds and queues their notifications. Its methods are
// safe for concurrent use.
type Alerting struct {
	engine *alerts.Engine
	outbox *notify.Outbox // with no channel configured alerts are only logged
	getenv func(string) string
	logger *slog.Logger

	mu     sync.Mutex
	repeat time.Duration
	config inventory.Alerts // what the channels were built from
}

// New sets up alerting for the [alerts] section cfg over st. getenv
// (os.Getenv outside tests) supplies the channels' secrets; clock is the
// real clock when nil. A channel that cannot be set up (a missing
// environment variable, say) is logged and left out; the others still work.
func New(cfg inventory.Alerts, st Store, getenv func(string) string, clock clockwork.Clock, logger *slog.Logger) *Alerting {
	if logger == nil {
		logger = slog.Default()
	}
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	a := &Alerting{
		engine: alerts.NewEngine(st, clock, logger),
		getenv: getenv,
		logger: logger,
		repeat: cfg.Repeat,
		config: cfg,
	}
	a.outbox = notify.NewOutbox(st, a.channels(cfg), clock, logger)
	return a
}

// Outbox returns the outbox that delivers the notifications, for the
// daemon to run.
func (a *Alerting) Outbox() *notify.Outbox { return a.outbox }

// channels builds the alert channels of cfg.
func (a *Alerting) channels(cfg inventory.Alerts) []notify.Notifier {
	notifiers, err := notify.FromConfig(cfg, a.getenv)
	if err != nil {
		a.logger.Error("alert channels left out", "err", err)
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
	a.logger.Info("alert channels reloaded", "channels", names)
}

func (a *Alerting) repeatEvery() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.repeat
}

// Observe evaluates one round's results with the rules of servers and
// queues the round's notification, if any. It is round.Alerter.
func (a *Alerting) Observe(ctx context.Context, servers []inventory.Server, results []monitor.Result) {
	n, err := a.engine.Round(ctx, servers, results, a.repeatEvery())
	if err != nil {
		a.logger.Error("evaluate alerts", "err", err)
		return
	}
	if n == nil {
		return
	}
	for _, al := range n.Alerts {
		a.logger.Warn("alert", "server", al.Server, "rule", al.Rule, "state", al.State, "summary", al.Summary)
	}
	if err := a.outbox.Enqueue(ctx, *n); err != nil {
		a.logger.Error("queue alert notification", "err", err)
	}
}

// Flush delivers what the outbox holds now, for one-shot commands.
func (a *Alerting) Flush(ctx context.Context) {
	if _, failed, err := a.outbox.Flush(ctx); err != nil || failed > 0 {
		a.logger.Warn("alert notifications not delivered yet; they stay in the outbox and are retried", "failed", failed, "err", err)
	}
}
