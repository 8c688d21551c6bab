package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/monitor"
)

// RuleMember is the alert that a member of a cluster of collectors stopped
// without leaving: its heartbeat expired, and the other members took its
// servers over. Its server is the member's name. It is a warning (the
// servers are still watched), raised once per stop and resolved when the
// member's heartbeat is live again or removed.
const RuleMember = "member"

// adoptLookback is how far back Adopt reads the outbox for what the member
// that owned the servers before notified.
const adoptLookback = 24 * time.Hour

// Adopt reads the alert states of servers again from the database, for
// servers this collector takes over from another member of its cluster,
// which may have moved them on meanwhile: their rules go on from where the
// other member left them rather than notify again. The other member writes
// its states to the database behind its rounds, after it queued their
// notifications in the outbox the members share; so Adopt also reads what
// the outbox got in the last adoptLookback, and a notification newer than a
// state (the member was killed in between) moves the state on: a firing it
// notified is firing here, a resolution it notified is resolved here. When
// the database does not answer within StoreWait, the states held here stay.
func (a *Alerting) Adopt(ctx context.Context, servers []string) {
	if a.local == nil || len(servers) == 0 {
		return // the engine reads its states from the database each round
	}
	dbCtx, cancel := context.WithTimeout(ctx, StoreWait)
	entries, err := a.o.Store.OutboxSince(dbCtx, a.o.Clock.Now().Add(-adoptLookback))
	cancel()
	if err != nil {
		a.o.Logger.Warn("outbox not read for the servers taken over; going on from the database's alert states", "servers", len(servers), "err", err)
	}
	a.local.adopt(ctx, servers, lastNotified(entries, servers, a.o.Logger))
}

// A notice is an alert as it was last notified: its notification's time.
type notice struct {
	alerts.Alert
	at time.Time
}

// lastNotified returns the newest alert of each rule of servers that
// entries hold, by "server|rule".
func lastNotified(entries []monitor.OutboxEntry, servers []string, logger *slog.Logger) map[string]notice {
	out := map[string]notice{}
	seen := map[string]bool{} // notifications read, one entry per channel
	for _, e := range entries {
		if seen[e.Notification] {
			continue
		}
		seen[e.Notification] = true
		var n alerts.Notification
		if err := json.Unmarshal(e.Payload, &n); err != nil {
			logger.Warn("outbox entry unreadable; left out of the states taken over", "entry", e.ID, "err", err)
			continue
		}
		if n.Test {
			continue
		}
		for _, al := range n.Alerts {
			if !slices.Contains(servers, al.Server) {
				continue
			}
			key := al.Server + "|" + al.Rule
			if old, ok := out[key]; !ok || !n.Created.Before(old.at) {
				out[key] = notice{al, n.Created}
			}
		}
	}
	return out
}

// adopt replaces the states of servers with the database's, moved on by
// the notices newer than them.
func (l *localState) adopt(ctx context.Context, servers []string, notices map[string]notice) {
	ctx, cancel := context.WithTimeout(ctx, StoreWait)
	defer cancel()
	got, err := l.db.LoadStates(ctx, servers)
	if err != nil {
		l.logger.Warn("alert states of servers taken over not read; going on from those held here", "servers", len(servers), "err", err)
		return
	}
	set := make(map[string]bool, len(servers))
	for _, s := range servers {
		set[s] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, st := range l.states {
		if set[st.Server] {
			delete(l.states, k)
		}
	}
	for k, st := range l.unsynced {
		if set[st.Server] {
			delete(l.unsynced, k) // older than what the other member wrote
		}
	}
	for _, st := range got {
		l.apply(st)
	}
	for key, n := range notices {
		st, have := l.states[key]
		next, moved := catchUp(st, have, n)
		if !moved {
			continue
		}
		l.logger.Info("alert state taken over as the other member notified it", "server", n.Server, "rule", n.Rule,
			"state", n.State, "notified", n.at, "database", st.Status)
		l.apply(next)
		l.unsynced[key] = next
	}
	if err := l.persistLocked(); err != nil {
		l.logger.Error("alert states kept in memory only until the local file can be written", "err", err)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// catchUp returns the state st (have: there is one; else the rule is ok)
// moved on by the notice n when n is newer than st: a firing notified
// after st was written, or the resolution of the very alert st is firing.
//
// Times are compared to the millisecond, as the database keeps them.
func catchUp(st monitor.AlertState, have bool, n notice) (monitor.AlertState, bool) {
	ms := func(t time.Time) time.Time { return t.Truncate(time.Millisecond) }
	firing := have && st.Status == monitor.AlertFiring
	sameAlert := firing && ms(st.Since).Equal(ms(n.StartsAt))
	switch n.State {
	case monitor.AlertFiring:
		if sameAlert && !ms(st.LastNotified).Before(ms(n.at)) {
			return st, false // written after it was notified
		}
		if have && ms(st.Since).After(ms(n.at)) {
			return st, false // the database knows of later readings
		}
		next := st
		if !have {
			next = monitor.AlertState{Server: n.Server, Rule: n.Rule}
		}
		next.Status, next.Since, next.LastNotified, next.Summary = monitor.AlertFiring, n.StartsAt, n.at, n.Summary
		next.Streak = max(next.Streak, 1)
		return next, true
	case monitor.AlertResolved:
		if sameAlert {
			return monitor.AlertState{Server: n.Server, Rule: n.Rule, Status: monitor.AlertOK}, true
		}
	}
	return st, false
}

// ObserveMembers raises the "member" alert of each member whose heartbeat
// expired, and resolves it when that member is live again or its heartbeat
// is gone; members are the heartbeats as read at now. Of the live members
// one acts on each other member (responsible, with the key
// "member|<name>"); the notifications' IDs come from the heartbeat alone,
// so that two members that both act (their views differ for a moment) queue
// one notification. The states are kept in the database only.
func (a *Alerting) ObserveMembers(ctx context.Context, members []monitor.Member, now time.Time, responsible func(key string) bool) {
	anyExpired := false
	for _, m := range members {
		anyExpired = anyExpired || !m.Live(now)
	}
	a.mu.Lock()
	look := anyExpired || a.memberStates
	a.mu.Unlock()
	if !look {
		return
	}
	dbCtx, cancel := context.WithTimeout(ctx, StoreWait)
	all, err := a.o.Store.LoadStates(dbCtx, nil)
	cancel()
	if err != nil {
		a.o.Logger.Warn("member alerts not checked", "err", err)
		return
	}
	states := map[string]monitor.AlertState{}
	for _, st := range all {
		if st.Rule == RuleMember {
			states[st.Server] = st
		}
	}
	byName := map[string]monitor.Member{}
	for _, m := range members {
		byName[m.Name] = m
		st, firing := states[m.Name]
		if m.Live(now) || firing && st.Since.Equal(m.Expires) || !responsible("member|"+m.Name) {
			continue
		}
		summary := fmt.Sprintf("collector %s (host %s, pid %d) stopped renewing its heartbeat at %s; the other members took its servers over",
			m.Name, m.Host, m.PID, m.Expires.UTC().Format(time.RFC3339))
		al := memberAlert(m.Name, monitor.AlertFiring, summary, m.Expires, time.Time{})
		n := alerts.NewNotification(m.Expires, []alerts.Alert{al}, false)
		next := monitor.AlertState{Server: m.Name, Rule: RuleMember, Status: monitor.AlertFiring, Since: m.Expires, LastNotified: now, Summary: summary}
		if a.notifyMember(ctx, n, next) {
			states[m.Name] = next
		}
	}
	for name, st := range states {
		m, ok := byName[name]
		if ok && !m.Live(now) || !responsible("member|"+name) {
			continue
		}
		summary := fmt.Sprintf("collector %s is back", name)
		if !ok {
			summary = fmt.Sprintf("collector %s is gone for good: its heartbeat was removed (it left, or a collector took its data directory over)", name)
		}
		al := memberAlert(name, monitor.AlertResolved, summary, st.Since, now)
		n := alerts.NewNotification(now, []alerts.Alert{al}, false)
		n.ID = alerts.NotificationID(st.Since, n.Alerts, false) // the same on every member
		if a.notifyMember(ctx, n, monitor.AlertState{Server: name, Rule: RuleMember, Status: monitor.AlertOK}) {
			delete(states, name)
		}
	}
	a.mu.Lock()
	a.memberStates = len(states) > 0
	a.mu.Unlock()
}

// memberAlert is the "member" alert of the member name.
func memberAlert(name string, state monitor.AlertStatus, summary string, starts, ends time.Time) alerts.Alert {
	return alerts.Alert{
		Server: name, Rule: RuleMember, State: state, Summary: summary, StartsAt: starts, EndsAt: ends,
		Labels: map[string]string{"alertname": "CollectorMemberGone", "server": name, "severity": alerts.SeverityWarning, "rule": RuleMember},
	}
}

// notifyMember queues n (the outbox waits on the database at most
// StoreWait), then saves st within StoreWait; it reports whether both went.
func (a *Alerting) notifyMember(ctx context.Context, n *alerts.Notification, st monitor.AlertState) bool {
	al := n.Alerts[0]
	a.o.Logger.Warn("alert", "server", al.Server, "rule", al.Rule, "state", al.State, "summary", al.Summary)
	if err := a.outbox.Enqueue(ctx, *n); err != nil {
		a.o.Logger.Error("queue the member alert", "member", al.Server, "err", err)
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, StoreWait)
	defer cancel()
	if err := a.o.Store.SaveStates(ctx, []monitor.AlertState{st}); err != nil {
		a.o.Logger.Error("save the member alert's state", "member", al.Server, "err", err)
		return false
	}
	return true
}
