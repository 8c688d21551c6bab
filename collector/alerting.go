package main

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/alerts/notify"
	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/store"
)

// alerting evaluates the alert rules after each round and queues the round's
// digest in the outbox, which delivers it to every channel.
type alerting struct {
	engine *alerts.Engine
	outbox *notify.Outbox // with no channel configured alerts are only logged
	getenv func(string) string
	logger *slog.Logger

	mu     sync.Mutex
	repeat time.Duration
	config inventory.Alerts // what the channels were built from
}

// newAlerting sets up alerting for inv over st. A channel that cannot be set
// up (a missing environment variable, say) is logged and left out; the
// others still work.
func (e *env) newAlerting(inv *inventory.Inventory, st *store.Store, logger *slog.Logger) *alerting {
	a := &alerting{
		engine: alerts.NewEngine(alerts.NewStoreState(st), time.Now, logger),
		getenv: e.getenv,
		logger: logger,
		repeat: inv.Alerts.Repeat,
		config: inv.Alerts,
	}
	a.outbox = notify.NewOutbox(st, a.channels(inv.Alerts), time.Now, logger)
	return a
}

// channels builds the alert channels of cfg.
func (a *alerting) channels(cfg inventory.Alerts) []notify.Notifier {
	notifiers, err := notify.FromConfig(cfg, a.getenv)
	if err != nil {
		a.logger.Error("alert channels left out", "err", err)
	}
	return notifiers
}

// reload applies the [alerts] settings of inv that are not per-server
// rules: the repeat interval, and the channels when their configuration
// changed. Rules come with the servers on each round.
func (a *alerting) reload(inv *inventory.Inventory) {
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

func (a *alerting) repeatEvery() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.repeat
}

// observe evaluates one round's results and queues its notification.
func (a *alerting) observe(ctx context.Context, servers []inventory.Server, results []fleet.Result) {
	obs := make([]alerts.Observation, 0, len(results))
	for _, r := range results {
		o := alerts.Observation{Server: r.Server, At: r.End(), Snapshot: r.Snapshot}
		if r.Err != nil {
			o.Snapshot = nil
			o.FailKind, o.FailErr = string(storeKind(r.Kind)), r.Err.Error()
			var changed *remote.HostKeyChangedError
			o.HostKeyChanged = errors.As(r.Err, &changed)
		}
		obs = append(obs, o)
	}
	// Evaluation outlives a cancelled round: what was observed is judged.
	ctx = context.WithoutCancel(ctx)
	n, err := a.engine.Round(ctx, servers, obs, a.repeatEvery())
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

// flush delivers what the outbox holds now, for one-shot commands.
func (a *alerting) flush(ctx context.Context) {
	if _, failed, err := a.outbox.Flush(ctx); err != nil || failed > 0 {
		a.logger.Warn("alert notifications not delivered yet; they stay in the outbox and are retried", "failed", failed, "err", err)
	}
}
