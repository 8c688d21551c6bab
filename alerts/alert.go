package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// Rule names. A process rule is RuleProcessesPrefix followed by its keyword.
const (
	RuleCPU             = "cpu"
	RuleMemory          = "memory"
	RuleDisk            = "disk"
	RuleLoad            = "load"
	RuleSwap            = "swap"
	RuleMemoryPressure  = "memory_pressure"
	RuleCPUPressure     = "cpu_pressure"
	RuleFD              = "fd"
	RuleDiskFull        = "disk_full"
	RuleDown            = "down"
	RuleProcessesPrefix = monitor.SilenceAllProcesses + ":"
	// RuleStore is the collector's own alert that its database is
	// unreachable (its server is the collector's host): raised by the
	// daemon, not by Evaluate, and sent through the channels directly.
	RuleStore = "store"
)

// Severities, the value of the "severity" label.
const (
	SeverityCritical = "critical" // down, changed host key
	SeverityWarning  = "warning"  // every other rule
)

// An Alert is one rule of one server that fired, is still firing (a repeat)
// or resolved, as it goes out in a notification.
type Alert struct {
	Server string
	// Rule is "cpu", "memory", "disk", "load", "swap", "memory_pressure",
	// "cpu_pressure", "fd", "disk_full", "processes:<keyword>" or "down".
	Rule string
	// State is monitor.AlertFiring (also for repeats) or
	// monitor.AlertResolved. (It keeps the name State: notifications are
	// stored in the outbox as JSON.)
	State monitor.AlertStatus
	// Value is the reading that decided: a percent, load per logical CPU, a
	// process count or the number of consecutive failed attempts.
	Value     float64
	Threshold float64
	// Summary is one plain sentence, such as "memory 93.2 % ≥ 90 % for 3
	// snapshots" or "down: 3 failed attempts (unreachable: dial tcp ...)".
	Summary string
	// Kind is the failure kind of the last failed attempt for "down"
	// (unreachable, auth, hostkey, timeout, probe, config); empty otherwise.
	Kind monitor.Kind
	// StartsAt is when the alert fired; EndsAt when it resolved, zero while
	// it is firing.
	StartsAt time.Time
	EndsAt   time.Time
	// Labels are alertname, server, severity and rule, for channels that
	// speak Alertmanager's payload.
	Labels map[string]string
}

// Key returns "server|rule", which names the alert among all others.
func (a Alert) Key() string { return a.Server + "|" + a.Rule }

// Severity returns the severity label: critical for "down" and "store",
// warning for every other rule.
func Severity(rule string) string {
	if rule == RuleDown || rule == RuleStore {
		return SeverityCritical
	}
	return SeverityWarning
}

// Labels returns the labels of an alert on rule of server.
func Labels(server, rule string) map[string]string {
	return map[string]string{
		"alertname": alertName(rule),
		"server":    server,
		"severity":  Severity(rule),
		"rule":      rule,
	}
}

// alertName turns a rule into an Alertmanager-style alert name:
// "cpu" → "CPUHigh", "processes:python" → "ProcessCount".
func alertName(rule string) string {
	switch rule {
	case RuleCPU:
		return "CPUHigh"
	case RuleMemory:
		return "MemoryHigh"
	case RuleDisk:
		return "DiskFull"
	case RuleLoad:
		return "LoadHigh"
	case RuleSwap:
		return "SwapActive"
	case RuleMemoryPressure:
		return "MemoryPressure"
	case RuleCPUPressure:
		return "CPUPressure"
	case RuleFD:
		return "FileDescriptorsHigh"
	case RuleDiskFull:
		return "DiskFillingUp"
	case RuleDown:
		return "ServerDown"
	case RuleStore:
		return "StoreUnreachable"
	}
	return "ProcessCount"
}

// A Notification is the digest of one round: every alert that fired,
// repeated or resolved in it, sent as one message per channel.
type Notification struct {
	// ID is deterministic, a hash of Created and the alerts' keys, states
	// and start times, so the outbox can drop a notification it already has.
	ID      string
	Created time.Time
	Alerts  []Alert
	// Test marks the notification sent by `collector alerts test`.
	Test bool
}

// NewNotification returns the notification of alerts created at created,
// with its ID computed by NotificationID. It sorts alerts by server, then
// rule.
func NewNotification(created time.Time, alerts []Alert, test bool) *Notification {
	sortAlerts(alerts)
	return &Notification{
		ID:      NotificationID(created, alerts, test),
		Created: created,
		Alerts:  alerts,
		Test:    test,
	}
}

// NotificationID returns a hex digest of created and each alert's key,
// state and start time (and of test), so that the same round produces the
// same ID however often it is computed.
func NotificationID(created time.Time, alerts []Alert, test bool) string {
	h := sha256.New()
	h.Write([]byte(created.UTC().Format(time.RFC3339Nano)))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatBool(test)))
	for _, a := range alerts {
		h.Write([]byte{0})
		h.Write([]byte(a.Key()))
		h.Write([]byte{0})
		h.Write([]byte(a.State))
		h.Write([]byte{0})
		h.Write([]byte(a.StartsAt.UTC().Format(time.RFC3339Nano)))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func sortAlerts(alerts []Alert) {
	sort.SliceStable(alerts, func(i, j int) bool {
		if alerts[i].Server != alerts[j].Server {
			return alerts[i].Server < alerts[j].Server
		}
		return alerts[i].Rule < alerts[j].Rule
	})
}
