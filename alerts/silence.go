package alerts

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// NewSilence returns a silence of rule of server from now for d, with a
// random ID. rule is a rule name, monitor.SilenceAllProcesses for every
// process rule, or "" for all rules. It rejects an empty server, a d that
// is not positive and a rule name that no rule has.
func NewSilence(server, rule, comment string, now time.Time, d time.Duration) (monitor.Silence, error) {
	if strings.TrimSpace(server) == "" {
		return monitor.Silence{}, errors.New("silence: no server name")
	}
	if d <= 0 {
		return monitor.Silence{}, fmt.Errorf("silence %s: duration %s is not positive; give how long, e.g. --for 2h", server, d)
	}
	if err := checkRule(rule); err != nil {
		return monitor.Silence{}, fmt.Errorf("silence %s: %w", server, err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return monitor.Silence{}, fmt.Errorf("silence %s: make id: %w", server, err)
	}
	return monitor.Silence{
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
	case "", RuleCPU, RuleMemory, RuleDisk, RuleLoad, RuleSwap, RuleMemoryPressure, RuleCPUPressure, RuleFD, RuleDiskFull,
		RuleDown, monitor.SilenceAllProcesses:
		return nil
	}
	if kw, ok := strings.CutPrefix(rule, RuleProcessesPrefix); ok && kw != "" {
		return nil
	}
	return fmt.Errorf("rule %q is not cpu, memory, disk, load, swap, memory_pressure, cpu_pressure, fd, disk_full, down, processes or processes:<keyword>", rule)
}
