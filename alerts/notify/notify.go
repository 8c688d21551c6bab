package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// A Notifier sends one notification to one channel.
type Notifier interface {
	// Name names the channel in logs and in the outbox; names are unique
	// among the notifiers of one configuration.
	Name() string
	// Notify sends n as one message. An error for which IsPermanent is true
	// means that sending the same notification again cannot succeed.
	Notify(ctx context.Context, n alerts.Notification) error
}

// DefaultTimeout bounds one delivery when the context has no earlier
// deadline.
const DefaultTimeout = 30 * time.Second

// permanentError marks a failure that a retry cannot help.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err to say that retrying cannot help: the channel refused
// the message itself (a 4xx answer, a robot's error code, an SMTP 5xx
// reply). Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked by
// Permanent. Every other error is worth a retry.
func IsPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}

// FromConfig returns a notifier for every channel in cfg, the [alerts] of
// an inventory.Parse result: the e-mail first, then the webhooks in file
// order. Parse has checked every rule that depends on the file alone and
// named every channel, uniquely; getenv (os.Getenv outside tests) supplies
// the password, URLs and secrets named in cfg, and only those are checked
// here.
//
// A channel that cannot be set up (its environment variable is unset, say)
// does not stop the others, nor change their names: FromConfig returns
// every notifier it could make together with an error naming each one it
// could not.
func FromConfig(cfg inventory.Alerts, getenv func(string) string) ([]Notifier, error) {
	var (
		out  []Notifier
		errs []error
	)
	if cfg.Email != nil {
		e, err := NewEmail(*cfg.Email, getenv)
		if err != nil {
			errs = append(errs, err)
		} else {
			out = append(out, e)
		}
	}
	client := &http.Client{Timeout: DefaultTimeout}
	for i, wc := range cfg.Webhooks {
		w, err := NewWebhook(wc, getenv, client)
		if err != nil {
			errs = append(errs, fmt.Errorf("webhook %d (%s): %w", i+1, wc.Name, err))
			continue
		}
		out = append(out, w)
	}
	// The outbox keeps entries per channel name: two channels of one name
	// would be one. Parse never makes such a configuration; one built by
	// hand might.
	seen := map[string]bool{}
	kept := out[:0]
	for _, n := range out {
		if seen[n.Name()] {
			errs = append(errs, fmt.Errorf("channel %q: another channel has this name: give each channel its own name", n.Name()))
			continue
		}
		seen[n.Name()] = true
		kept = append(kept, n)
	}
	return kept, errors.Join(errs...)
}

// NewTestNotification returns the notification `collector alerts test`
// sends: one firing alert on a made-up server, marked as a test, so that
// every channel shows what a real notification looks like.
func NewTestNotification(now time.Time) alerts.Notification {
	now = now.UTC().Truncate(time.Second)
	a := alerts.Alert{
		Server:    "test-server",
		Rule:      "test",
		State:     monitor.AlertFiring,
		Summary:   "test notification from collector: this channel works, no action needed",
		StartsAt:  now,
		Labels:    map[string]string{"alertname": "CollectorTest", "server": "test-server", "severity": "none", "rule": "test"},
		Threshold: 0,
	}
	return *alerts.NewNotification(now, []alerts.Alert{a}, true)
}

// withTimeout returns ctx bounded by DefaultTimeout unless it already ends
// sooner.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= DefaultTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// A Result is what sending to one channel came to.
type Result struct {
	Channel string
	Err     error // nil: sent
}

// SendTest sends NewTestNotification(now) straight to every notifier, not
// through the outbox, all at once, and returns one Result per notifier in
// their order. It is `collector alerts test`.
func SendTest(ctx context.Context, notifiers []Notifier, now time.Time) []Result {
	n := NewTestNotification(now)
	results := make([]Result, len(notifiers))
	var wg sync.WaitGroup
	for i, nt := range notifiers {
		results[i].Channel = nt.Name()
		wg.Go(func() {
			results[i].Err = nt.Notify(ctx, n)
		})
	}
	wg.Wait()
	return results
}
