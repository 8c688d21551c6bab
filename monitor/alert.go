package monitor

import (
	"strings"
	"time"
)

// AlertStatus is where one alert rule of one server stands.
type AlertStatus string

// The statuses of a rule: ok → pending → firing → resolved (→ ok).
const (
	AlertOK       AlertStatus = "ok"       // not breaching; never stored
	AlertPending  AlertStatus = "pending"  // breaching, but not yet for long enough
	AlertFiring   AlertStatus = "firing"   // breaching for long enough: notified
	AlertResolved AlertStatus = "resolved" // was firing, no longer breaching: notified once, then ok
)

// An AlertState is where one rule of one server stands after the last
// result that the rule looked at. The alert engine decides it; stores keep
// it as it is (one per server and rule, none for AlertOK).
type AlertState struct {
	Server string
	Rule   string
	Status AlertStatus
	// Streak counts consecutive results that breached (for "down":
	// failed) since the rule went pending, including the readings that kept
	// a firing alert firing between its clear level and threshold. It is 0
	// while ok or resolved.
	Streak int
	// Since is when the status began: the first breaching reading while
	// pending, the reading that fired while firing (the alert's start), the
	// reading that resolved while resolved.
	Since time.Time
	// LastNotified is when a firing (or repeat) notification last went out;
	// zero when the alert has not been notified since it fired, such as
	// under a silence.
	LastNotified time.Time
	// Value, Threshold and Summary describe the last reading evaluated.
	Value     float64
	Threshold float64
	Summary   string
	// Kind is the failure kind of the last failed attempt, for "down".
	Kind Kind
	// HostKeyChanged reports that "down" is firing because of a changed
	// host key (it stays set until the alert resolves).
	HostKeyChanged bool
}

// Key returns "server|rule", which names the state among all others.
func (s AlertState) Key() string { return s.Server + "|" + s.Rule }

// SilenceAllProcesses, as a silence's rule, covers every
// "processes:<keyword>" rule.
const SilenceAllProcesses = "processes"

// A Silence keeps a server's alert notifications, or one rule's, from going
// out until it expires. Rules are still evaluated underneath.
type Silence struct {
	ID     string
	Server string
	// Rule is a rule name, SilenceAllProcesses for every process rule, or
	// "" for all rules.
	Rule    string
	Until   time.Time
	Created time.Time
	Comment string
}

// Matches reports whether s silences rule of server at now.
func (s Silence) Matches(server, rule string, now time.Time) bool {
	if s.Server != server || !now.Before(s.Until) {
		return false
	}
	switch s.Rule {
	case "", rule:
		return true
	case SilenceAllProcesses:
		return strings.HasPrefix(rule, SilenceAllProcesses+":")
	}
	return false
}

// SilencedUntil returns when the last of silences that silence rule of
// server at now ends, and whether any does.
func SilencedUntil(silences []Silence, server, rule string, now time.Time) (time.Time, bool) {
	var until time.Time
	for _, s := range silences {
		if s.Matches(server, rule, now) && s.Until.After(until) {
			until = s.Until
		}
	}
	return until, !until.IsZero()
}
