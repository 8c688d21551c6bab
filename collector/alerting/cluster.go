package alerting

import (
	"context"
	"fmt"
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

// Adopt reads the alert states of servers again from the database, for
// servers this collector takes over from another member of its cluster,
// which may have moved them on meanwhile: their rules go on from where the
// other member left them rather than notify again. When the database does
// not answer within StoreWait, the states held here stay.
func (a *Alerting) Adopt(ctx context.Context, servers []string) {
	if a.local == nil || len(servers) == 0 {
		return // the engine reads its states from the database each round
	}
	a.local.adopt(ctx, servers)
}

// adopt replaces the states of servers with the database's.
func (l *localState) adopt(ctx context.Context, servers []string) {
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
	if err := l.persistLocked(); err != nil {
		l.logger.Error("alert states kept in memory only until the local file can be written", "err", err)
	}
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
