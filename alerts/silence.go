package alerts

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RuleProcesses, as a silence's rule, covers every "processes:<keyword>"
// rule.
const RuleProcesses = "processes"

// A Silence keeps a server's alerts, or one rule's, from being notified
// until it expires. State still advances underneath.
type Silence struct {
	ID     string
	Server string
	// Rule is a rule name, "processes" for every process rule, or "" for
	// all rules.
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
	case RuleProcesses:
		return strings.HasPrefix(rule, RuleProcessesPrefix)
	}
	return false
}

// NewSilence returns a silence of rule ("" for all) of server from now for
// d, with a random ID. It rejects an empty server, a d that is not positive
// and a rule name that no rule has.
func NewSilence(server, rule, comment string, now time.Time, d time.Duration) (Silence, error) {
	if strings.TrimSpace(server) == "" {
		return Silence{}, errors.New("silence: no server name")
	}
	if d <= 0 {
		return Silence{}, fmt.Errorf("silence %s: duration %s is not positive; give how long, e.g. --for 2h", server, d)
	}
	if err := checkRule(rule); err != nil {
		return Silence{}, fmt.Errorf("silence %s: %w", server, err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Silence{}, fmt.Errorf("silence %s: make id: %w", server, err)
	}
	return Silence{
		ID:      hex.EncodeToString(b[:]),
		Server:  server,
		Rule:    rule,
		Until:   now.Add(d),
		Created: now,
		Comment: comment,
	}, nil
}

func checkRule(rule string) error {
	switch rule {
	case "", RuleCPU, RuleMemory, RuleDisk, RuleLoad, RuleDown, RuleProcesses:
		return nil
	}
	if kw, ok := strings.CutPrefix(rule, RuleProcessesPrefix); ok && kw != "" {
		return nil
	}
	return fmt.Errorf("rule %q is not cpu, memory, disk, load, down, processes or processes:<keyword>", rule)
}
