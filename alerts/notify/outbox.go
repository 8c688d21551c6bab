package notify

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/sync/errgroup"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/internal/fsutil"
	"github.com/crawlerfleet/collector/monitor"
)

// OutboxStore keeps outbox entries; package store implements it.
type OutboxStore interface {
	// OutboxInsert adds e; false (and no error) when e.ID is already there.
	OutboxInsert(ctx context.Context, e monitor.OutboxEntry) (inserted bool, err error)
	// OutboxDue returns the pending entries whose NextAttempt is at or
	// before now, oldest Created first, at most limit of them (all when
	// limit <= 0).
	OutboxDue(ctx context.Context, now time.Time, limit int) ([]monitor.OutboxEntry, error)
	// OutboxSave writes Status, Attempts, NextAttempt, Updated and
	// LastError of the existing entry e.ID; the error wraps
	// monitor.ErrNotFound when there is no such entry.
	OutboxSave(ctx context.Context, e monitor.OutboxEntry) error
	// OutboxPrune deletes sent and failed entries updated before before,
	// and returns how many went. Pending entries are never pruned.
	OutboxPrune(ctx context.Context, before time.Time) (int64, error)
	// OutboxPending returns how many entries are pending, due or not.
	OutboxPending(ctx context.Context) (int64, error)
}

// A Claimer lets one of several outboxes that share a store deliver each
// entry: before an entry is delivered, Claim must give this outbox the
// claim of its next attempt. It is for a collector that is one member of
// several (collector/cluster, over store.OutboxClaim).
type Claimer interface {
	// Claim reports whether this outbox may deliver e's next attempt now,
	// and until when it holds that claim. false: another outbox delivers
	// it, or this one may not deliver anything from the store now.
	Claim(ctx context.Context, e monitor.OutboxEntry) (until time.Time, ok bool, err error)
	// Unclaimed reports whether the entries this outbox holds locally
	// (its store did not take them) go out without a claim: while this
	// collector cannot reach the store at all (it is fenced), no other
	// can deliver what only it holds, such as its own "store" alert.
	Unclaimed() bool
}

// Outbox defaults.
const (
	DefaultRetryMin = 30 * time.Second // the wait after the first failure
	DefaultRetryMax = time.Hour        // the longest wait between attempts
	DefaultKeep     = 7 * 24 * time.Hour
	// flushLimit caps the entries one Flush reads; the rest wait for the
	// next.
	flushLimit = 500
	// parallel channels delivered to at once.
	parallel = 4
)

// StoreWait bounds each call the outbox makes to its store, and StoreRetry
// is how long the outbox stops calling a store that failed to answer: a
// round that queues a notification waits on the database at most StoreWait,
// and not at all while it is known to be down. What the store does not take
// is held, in a local file when KeepLocally names one.
const (
	StoreWait  = time.Second
	StoreRetry = 15 * time.Second
)

// A Backoff says how long to wait before attempt n+1 after n failures:
// Min doubled n-1 times, at most Max, less up to Jitter of it at random (so
// that many entries failed together do not retry together).
type Backoff struct {
	Min, Max time.Duration
	Jitter   float64 // 0 to 1
}

// DefaultBackoff is 30 s doubling to 1 h, less up to 20 % at random.
var DefaultBackoff = Backoff{Min: DefaultRetryMin, Max: DefaultRetryMax, Jitter: 0.2}

// Delay returns the wait after failures failed attempts (failures >= 1).
func (b Backoff) Delay(failures int) time.Duration {
	d := b.Min
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if b.Jitter > 0 {
		d -= time.Duration(rand.Float64() * b.Jitter * float64(d))
	}
	return d
}

// An Outbox delivers notifications to channels so that none is lost and
// none is sent twice by the outbox itself.
//
// Enqueue stores one entry per notification and channel before anything is
// sent; its ID is the notification's ID and the channel's name, so a
// notification enqueued again (a replay, a crash before its round was
// recorded) adds nothing. Flush sends the entries that are due: a sent one
// is marked sent and kept for Keep, a retryable failure waits (Backoff)
// and counts its attempts, a permanent one is marked failed and logged. The
// entries live in the store, so a new Outbox over the same store (a
// restart) carries on where the last one stopped.
//
// Delivery is at least once: a crash between a channel's acceptance and the
// "sent" mark sends that notification again after the restart.
type Outbox struct {
	store OutboxStore
	clock clockwork.Clock

	notifiersMu sync.RWMutex
	notifiers   map[string]Notifier // by channel name; see SetNotifiers

	logger *slog.Logger

	// Backoff spaces retries; DefaultBackoff unless set before use.
	Backoff Backoff
	// Keep is how long sent and failed entries stay, so that a replay of
	// the same notification is recognised; DefaultKeep unless set.
	Keep time.Duration

	flushMu sync.Mutex // one Flush at a time
	// notBefore holds, per channel, the end of the backoff after its last
	// retryable failure: the channel's other entries wait too, oldest
	// first, rather than each trying a channel known to be down.
	notBefore map[string]time.Time

	heldMu sync.Mutex
	// held are entries the store did not take (it was down): inserted
	// false for a new entry, true for a state change not yet saved. Flush
	// writes them back first. With a local file (KeepLocally) they survive
	// a restart; without one they are lost if the process ends before.
	held      map[string]heldEntry
	localPath string // see KeepLocally

	downMu    sync.Mutex
	downUntil time.Time // no store call before this: it failed to answer

	claimer Claimer // see SetClaimer; set before use

	wake chan struct{}
}

type heldEntry struct {
	Entry    monitor.OutboxEntry `json:"entry"`
	Inserted bool                `json:"inserted"`
}

// NewOutbox returns an outbox that keeps its entries in st and delivers
// them through notifiers, by name. clock dates the entries and ticks Run;
// nil means the real clock (tests pass clockwork.NewFakeClock()).
func NewOutbox(st OutboxStore, notifiers []Notifier, clock clockwork.Clock, logger *slog.Logger) *Outbox {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if logger == nil {
		logger = slog.Default()
	}
	o := &Outbox{
		store:     st,
		clock:     clock,
		logger:    logger,
		Backoff:   DefaultBackoff,
		Keep:      DefaultKeep,
		notBefore: map[string]time.Time{},
		held:      map[string]heldEntry{},
		wake:      make(chan struct{}, 1),
	}
	o.SetNotifiers(notifiers)
	return o
}

// SetNotifiers replaces the channels, as a reloaded configuration names
// them. Entries already queued for a channel that is gone are marked failed
// by the next Flush; a new channel gets the notifications enqueued from now.
func (o *Outbox) SetNotifiers(notifiers []Notifier) {
	m := make(map[string]Notifier, len(notifiers))
	for _, n := range notifiers {
		m[n.Name()] = n
	}
	o.notifiersMu.Lock()
	o.notifiers = m
	o.notifiersMu.Unlock()
}

// SetClaimer makes the outbox deliver an entry only once c has given it
// the claim of that attempt, and only while the claim holds, so that of
// several collectors sharing the store one delivers it. Entries it holds
// locally need no claim while c.Unclaimed(). Call it before use.
func (o *Outbox) SetClaimer(c Claimer) { o.claimer = c }

// channels returns the current channels.
func (o *Outbox) channels() map[string]Notifier {
	o.notifiersMu.RLock()
	defer o.notifiersMu.RUnlock()
	return o.notifiers
}

// entryID names the entry of notification id for channel.
func entryID(id, channel string) string { return id + "|" + channel }

// Enqueue stores n once for every channel and wakes Run to deliver it. An
// entry the store cannot take now (within StoreWait) is held, in the local
// file when there is one, and stored by a later Flush. Enqueue fails for a
// notification that could be kept nowhere (no ID; the store down and the
// local file unwritable): its round should notify again.
func (o *Outbox) Enqueue(ctx context.Context, n alerts.Notification) error {
	if n.ID == "" {
		return errors.New("enqueue notification: no id")
	}
	payload, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("enqueue notification %s: %w", n.ID, err)
	}
	now := o.clock.Now().UTC()
	created := n.Created
	if created.IsZero() {
		created = now
	}
	var errs []error
	for name := range o.channels() {
		e := monitor.OutboxEntry{
			ID:           entryID(n.ID, name),
			Notification: n.ID,
			Channel:      name,
			Payload:      payload,
			Status:       monitor.OutboxPending,
			NextAttempt:  now,
			Created:      created,
			Updated:      now,
		}
		var inserted bool
		err := o.call(ctx, func(ctx context.Context) (err error) {
			inserted, err = o.store.OutboxInsert(ctx, e)
			return err
		})
		if err != nil {
			o.logger.Warn("outbox store unavailable; holding the notification", "local_file", o.localPath,
				"notification", n.ID, "channel", name, "err", err)
			o.heldMu.Lock()
			if _, ok := o.held[e.ID]; !ok { // held already: keep its state
				o.held[e.ID] = heldEntry{Entry: e}
				if err := o.persistLocked(); err != nil {
					delete(o.held, e.ID)
					errs = append(errs, fmt.Errorf("enqueue notification %s for %s: the store did not take it and %w", n.ID, name, err))
				}
			}
			o.heldMu.Unlock()
			continue
		}
		if !inserted {
			o.logger.Debug("notification already in the outbox", "notification", n.ID, "channel", name)
		}
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return errors.Join(errs...)
}

// call runs one store operation within StoreWait, unless the store failed
// to answer less than StoreRetry ago: then it fails at once.
func (o *Outbox) call(ctx context.Context, op func(ctx context.Context) error) error {
	o.downMu.Lock()
	until := o.downUntil
	o.downMu.Unlock()
	if now := o.clock.Now(); now.Before(until) {
		return fmt.Errorf("outbox store did not answer; next try in %s: %w", until.Sub(now).Round(time.Second), monitor.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, StoreWait)
	defer cancel()
	err := op(ctx)
	if err != nil && (errors.Is(err, monitor.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)) {
		o.downMu.Lock()
		o.downUntil = o.clock.Now().Add(StoreRetry)
		o.downMu.Unlock()
	}
	return err
}

// KeepLocally makes the outbox keep the entries its store does not take in
// the file at path (a JSON list, rewritten atomically on every change), and
// loads those an earlier run left there, so that a notification queued
// while the database is down survives a restart. Call it before use.
func (o *Outbox) KeepLocally(path string) error {
	o.heldMu.Lock()
	defer o.heldMu.Unlock()
	o.localPath = path
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read held notifications: %w", err)
	}
	var held []heldEntry
	if err := json.Unmarshal(b, &held); err != nil {
		return fmt.Errorf("read held notifications from %s: %w", path, err)
	}
	for _, h := range held {
		if _, ok := o.held[h.Entry.ID]; !ok {
			o.held[h.Entry.ID] = h
		}
	}
	if len(held) > 0 {
		o.logger.Info("notifications held while the database was down are back in the outbox", "file", path, "entries", len(held))
	}
	return nil
}

// persistLocked writes the held entries to the local file, if there is
// one. heldMu must be held.
func (o *Outbox) persistLocked() error {
	if o.localPath == "" {
		return nil
	}
	held := make([]heldEntry, 0, len(o.held))
	for _, h := range o.held {
		held = append(held, h)
	}
	slices.SortFunc(held, func(a, b heldEntry) int { return strings.Compare(a.Entry.ID, b.Entry.ID) })
	if err := fsutil.WriteJSON(o.localPath, held); err != nil {
		return fmt.Errorf("keep held notifications in %s: %w", o.localPath, err)
	}
	return nil
}

func (o *Outbox) hold(e monitor.OutboxEntry, inserted bool) {
	o.heldMu.Lock()
	defer o.heldMu.Unlock()
	if h, ok := o.held[e.ID]; ok && h.Inserted {
		inserted = true
	}
	o.held[e.ID] = heldEntry{Entry: e, Inserted: inserted}
	if err := o.persistLocked(); err != nil {
		o.logger.Error("notification state kept in memory only", "entry", e.ID, "err", err)
	}
}

// Flush delivers every entry that is due now: channels in parallel, each
// channel's entries oldest first. It returns how many were sent and how many
// failed (retryable or not); err reports what the store could not read or
// record, never a channel's failure, which is logged and kept in the entry.
func (o *Outbox) Flush(ctx context.Context) (sent, failed int, err error) {
	o.flushMu.Lock()
	defer o.flushMu.Unlock()
	now := o.clock.Now()
	notifiers := o.channels()

	var errs []error
	held := o.saveHeld(ctx)
	var due []monitor.OutboxEntry
	err = o.call(ctx, func(ctx context.Context) (err error) {
		due, err = o.store.OutboxDue(ctx, now, flushLimit)
		return err
	})
	if err != nil {
		errs = append(errs, err)
	}
	byChannel := map[string][]monitor.OutboxEntry{}
	var channels []string
	add := func(e monitor.OutboxEntry) {
		if _, ok := byChannel[e.Channel]; !ok {
			channels = append(channels, e.Channel)
		}
		byChannel[e.Channel] = append(byChannel[e.Channel], e)
	}
	claim := map[string]bool{} // entries read from the store: delivered under a claim
	for _, e := range due {
		if _, ok := held[e.ID]; !ok { // a held state is newer
			add(e)
			claim[e.ID] = o.claimer != nil
		}
	}
	// A held entry may be in the store all the same (an insert that
	// timed out may have landed): with a claimer it goes out under a
	// claim too, unless the claimer says this outbox is on its own.
	unclaimed := o.claimer == nil || o.claimer.Unclaimed()
	for _, h := range held {
		if h.Entry.Status == monitor.OutboxPending && !h.Entry.NextAttempt.After(now) {
			add(h.Entry)
			claim[h.Entry.ID] = !unclaimed
		}
	}

	type job struct {
		notifier Notifier
		entries  []monitor.OutboxEntry
		sent     int
		failed   int
		retryAt  time.Time
		err      error
	}
	var jobs []*job
	for _, ch := range channels {
		entries := byChannel[ch]
		slices.SortFunc(entries, func(a, b monitor.OutboxEntry) int {
			return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
		})
		if nb, ok := o.notBefore[ch]; ok && now.Before(nb) {
			continue
		}
		delete(o.notBefore, ch)
		notifier, ok := notifiers[ch]
		if !ok {
			for _, e := range entries {
				o.logger.Warn("notification dropped: its channel is no longer configured",
					"channel", ch, "notification", e.Notification)
				e.Status, e.LastError, e.Updated = monitor.OutboxFailed, "channel "+ch+" is no longer configured", now
				failed++
				if err := o.save(ctx, e); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		jobs = append(jobs, &job{notifier: notifier, entries: entries})
	}

	var g errgroup.Group
	g.SetLimit(parallel)
	for _, j := range jobs {
		g.Go(func() error {
			j.sent, j.failed, j.retryAt, j.err = o.deliver(ctx, j.notifier, j.entries, now, claim)
			return nil
		})
	}
	_ = g.Wait()
	for _, j := range jobs {
		sent += j.sent
		failed += j.failed
		if !j.retryAt.IsZero() {
			o.notBefore[j.notifier.Name()] = j.retryAt
		}
		if j.err != nil {
			errs = append(errs, j.err)
		}
	}
	return sent, failed, errors.Join(errs...)
}

// deliver sends one channel's due entries in order until one fails in a
// way a retry can help; then the rest wait until retryAt. An entry in
// claim is sent only under a claim (see SetClaimer); one this outbox does
// not get is left to the collector that holds it.
func (o *Outbox) deliver(ctx context.Context, nt Notifier, entries []monitor.OutboxEntry, now time.Time, claim map[string]bool) (sent, failed int, retryAt time.Time, err error) {
	var errs []error
	for _, e := range entries {
		if ctx.Err() != nil {
			break
		}
		logger := o.logger.With("channel", e.Channel, "notification", e.Notification)
		if claim[e.ID] && !o.claimed(ctx, e, logger) {
			continue
		}
		var n alerts.Notification
		sendErr := json.Unmarshal(e.Payload, &n)
		if sendErr != nil {
			sendErr = Permanent(fmt.Errorf("decode outbox entry %s: %w", e.ID, sendErr))
		} else {
			sendErr = nt.Notify(ctx, n)
		}
		e.Attempts++
		e.Updated = o.clock.Now()
		switch {
		case sendErr == nil:
			e.Status, e.LastError = monitor.OutboxSent, ""
			sent++
			logger.Info("notification sent", "attempts", e.Attempts)
		case IsPermanent(sendErr):
			e.Status, e.LastError = monitor.OutboxFailed, sendErr.Error()
			failed++
			logger.Error("notification refused for good", "attempts", e.Attempts, "err", sendErr)
		default:
			wait := o.Backoff.Delay(e.Attempts)
			e.NextAttempt, e.LastError = now.Add(wait), sendErr.Error()
			failed++
			retryAt = e.NextAttempt
			logger.Warn("notification not sent; will retry", "attempts", e.Attempts,
				"retry_in_s", int(math.Round(wait.Seconds())), "retry_at", e.NextAttempt.UTC().Format(time.RFC3339), "err", sendErr)
		}
		if err := o.save(ctx, e); err != nil {
			errs = append(errs, err)
		}
		if !retryAt.IsZero() {
			break
		}
	}
	return sent, failed, retryAt, errors.Join(errs...)
}

// claimed reports whether this outbox holds the claim of e's next attempt,
// with time left on it.
func (o *Outbox) claimed(ctx context.Context, e monitor.OutboxEntry, logger *slog.Logger) bool {
	var (
		until time.Time
		ok    bool
	)
	err := o.call(ctx, func(ctx context.Context) (err error) {
		until, ok, err = o.claimer.Claim(ctx, e)
		return err
	})
	switch {
	case err != nil:
		logger.Warn("notification not claimed; tried again later", "err", err)
		return false
	case !ok:
		logger.Debug("notification left to the collector that claimed it")
		return false
	case !o.clock.Now().Before(until):
		return false
	}
	return true
}

// save records e's new state, or holds it for the next Flush when the store
// cannot take it now, so that a sent entry is not sent again meanwhile.
func (o *Outbox) save(ctx context.Context, e monitor.OutboxEntry) error {
	o.heldMu.Lock()
	h, wasHeld := o.held[e.ID]
	o.heldMu.Unlock()
	if wasHeld && !h.Inserted {
		o.hold(e, false)
		return nil // saveHeld inserts it with this state
	}
	if err := o.call(ctx, func(ctx context.Context) error { return o.store.OutboxSave(ctx, e) }); err != nil {
		o.hold(e, true)
		return fmt.Errorf("record outbox entry %s: %w", e.ID, err)
	}
	if wasHeld {
		o.heldMu.Lock()
		delete(o.held, e.ID)
		if err := o.persistLocked(); err != nil {
			o.logger.Warn("held notifications file not updated", "err", err)
		}
		o.heldMu.Unlock()
	}
	return nil
}

// saveHeld writes held entries to the store and returns those it still
// holds.
func (o *Outbox) saveHeld(ctx context.Context) map[string]heldEntry {
	o.heldMu.Lock()
	defer o.heldMu.Unlock()
	changed := false
	for id, h := range o.held {
		err := o.call(ctx, func(ctx context.Context) error {
			if h.Inserted {
				return o.store.OutboxSave(ctx, h.Entry)
			}
			inserted, err := o.store.OutboxInsert(ctx, h.Entry)
			if err == nil && !inserted && h.Entry.Status != monitor.OutboxPending {
				// Already there (the failed insert had landed): record
				// that it was sent meanwhile.
				err = o.store.OutboxSave(ctx, h.Entry)
			}
			return err
		})
		if err != nil {
			break // the store is down: the rest waits too
		}
		delete(o.held, id)
		changed = true
	}
	if changed {
		if err := o.persistLocked(); err != nil {
			o.logger.Warn("held notifications file not updated", "err", err)
		}
	}
	out := make(map[string]heldEntry, len(o.held))
	for id, h := range o.held {
		out[id] = h
	}
	return out
}

// Prune deletes sent and failed entries older than Keep.
func (o *Outbox) Prune(ctx context.Context) (n int64, err error) {
	err = o.call(ctx, func(ctx context.Context) (err error) {
		n, err = o.store.OutboxPrune(ctx, o.clock.Now().Add(-o.Keep))
		return err
	})
	return n, err
}

// Pending returns how many entries are pending: waiting for their first
// attempt or for a retry, due or not, in the store and held locally. It is
// the outbox gauge.
func (o *Outbox) Pending(ctx context.Context) (n int64, err error) {
	err = o.call(ctx, func(ctx context.Context) (err error) {
		n, err = o.store.OutboxPending(ctx)
		return err
	})
	o.heldMu.Lock()
	defer o.heldMu.Unlock()
	for _, h := range o.held {
		if h.Entry.Status == monitor.OutboxPending && !h.Inserted {
			n++
		}
	}
	return n, err
}

// Held returns how many entries the outbox holds because its store did not
// take them.
func (o *Outbox) Held() int {
	o.heldMu.Lock()
	defer o.heldMu.Unlock()
	return len(o.held)
}

// Run flushes at once, then whenever Enqueue adds something, when the
// earliest retry is due, and at least every every (all on the outbox's
// clock), until ctx ends. Failures are logged. Pruning is the caller's
// (Prune), on its own schedule.
func (o *Outbox) Run(ctx context.Context, every time.Duration) {
	for {
		if _, _, err := o.Flush(ctx); err != nil && ctx.Err() == nil {
			o.logger.Warn("outbox flush incomplete", "err", err)
		}
		wait := every
		if next, ok := o.nextRetry(); ok {
			wait = min(wait, max(o.clock.Until(next), 0))
		}
		timer := o.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-timer.Chan():
		case <-o.wake:
		}
		timer.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// nextRetry returns the earliest time a retry is due that the outbox knows
// of: a channel's back-off, or a held entry's next attempt.
func (o *Outbox) nextRetry() (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	o.flushMu.Lock()
	for _, t := range o.notBefore {
		consider(t)
	}
	o.flushMu.Unlock()
	// A held entry still due after a Flush waits on the store (to be
	// stored, or claimed): not before the store is asked again.
	o.downMu.Lock()
	storeBack := o.downUntil
	o.downMu.Unlock()
	o.heldMu.Lock()
	for _, h := range o.held {
		if h.Entry.Status == monitor.OutboxPending {
			if h.Entry.NextAttempt.After(storeBack) {
				consider(h.Entry.NextAttempt)
			} else {
				consider(storeBack)
			}
		}
	}
	o.heldMu.Unlock()
	return next, !next.IsZero()
}
