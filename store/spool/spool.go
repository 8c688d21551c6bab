package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/monitor"
)

// DefaultMax is the usual cap of the spool file: 1 GiB.
const DefaultMax = 1 << 30

// Defaults for the settings that Options change.
const (
	// DefaultChunkSize is how many spooled results go to the writer at a
	// time.
	DefaultChunkSize = 5000
	// DefaultRetryAfter is how long the spool waits after an outage before
	// it tries the writer again.
	DefaultRetryAfter = 15 * time.Second
	// DefaultHeldMax is how many results the spool keeps in memory while
	// its file cannot be written (a full disk); past it results are lost.
	DefaultHeldMax = 10_000
	// PingTimeout bounds the check that the writer answers, made before the
	// first write and after every outage, so that a database that is down
	// is found out within it rather than within the driver's much longer
	// server-selection timeout.
	PingTimeout = time.Second
)

// ErrSpoolFull is wrapped by Write's error when the spool had no room left.
var ErrSpoolFull = errors.New("spool full")

// A Writer stores results: the database behind the spool.
type Writer interface {
	// WriteResults stores results. refused is nil or holds one entry per
	// result: refused[i] != nil when the writer refused results[i] for
	// itself. err != nil when the whole pass failed; it may be repeated
	// without harm, and errors.Is(err, monitor.ErrUnavailable) when the
	// writer could not be reached.
	WriteResults(ctx context.Context, results []monitor.Result) (refused []error, err error)
}

// A Pinger is a Writer that can say quickly whether it answers. The spool
// pings before its first write and after an outage, within PingTimeout.
type Pinger interface {
	Ping(ctx context.Context) error
}

// WriterFunc is a function that is a Writer.
type WriterFunc func(ctx context.Context, results []monitor.Result) (refused []error, err error)

// WriteResults calls f.
func (f WriterFunc) WriteResults(ctx context.Context, results []monitor.Result) ([]error, error) {
	return f(ctx, results)
}

var _ Writer = WriterFunc(nil)

// An Option changes a setting of Open.
type Option func(*Spool)

// WithChunkSize sets how many spooled results go to the writer at a time
// (DefaultChunkSize).
func WithChunkSize(n int) Option { return func(s *Spool) { s.chunkSize = max(n, 1) } }

// WithRetryAfter sets how long the spool waits after an outage before it
// tries the writer again (DefaultRetryAfter).
func WithRetryAfter(d time.Duration) Option { return func(s *Spool) { s.retryAfter = d } }

// WithHeldMax sets how many results the spool keeps in memory while its
// file cannot be written (DefaultHeldMax).
func WithHeldMax(n int) Option { return func(s *Spool) { s.heldMax = max(n, 0) } }

// WithClock sets the clock that times the retries after an outage (the
// real clock).
func WithClock(clock clockwork.Clock) Option { return func(s *Spool) { s.clock = clock } }

// A Spool is a write-ahead journal in front of a Writer: Write appends
// results to the spool file and syncs it, and a background drainer writes
// them to the writer in order, marking them done. A round therefore never
// waits on the database, and a result handed to Write survives a crash.
// When the file cannot be written (a full disk) results wait in memory, up
// to a cap. Its methods are safe for concurrent use. See the package doc.
type Spool struct {
	w          Writer
	logger     *slog.Logger
	clock      clockwork.Clock
	chunkSize  int
	retryAfter time.Duration
	heldMax    int
	dir        string

	mu        sync.Mutex
	f         *file            // guarded by mu
	held      []monitor.Result // results the file could not take; guarded by mu
	appendErr error            // why the last append failed, nil once appends work; guarded by mu
	closed    bool             // guarded by mu

	lost    atomic.Int64 // results kept nowhere since Open
	pending atomic.Int64 // bytes in the file not yet written to the writer

	// The drainer's state; changed only by drain passes (one at a time:
	// drainMu), read by Health under stateMu.
	drainMu     sync.Mutex
	stateMu     sync.Mutex
	retryAt     time.Time // no writer attempt before this, except by Replay
	outage      bool      // the last writer attempt was an outage
	outageSince time.Time
	outageErr   error
	pinged      bool // a ping succeeded since the last outage
	passes      uint64

	wake     chan struct{}
	progress chan struct{} // closed and replaced after each drain pass
	stop     context.CancelFunc
	done     chan struct{}
}

// Open opens the spool in dir, creating dir with mode 0700, in front of w,
// and starts its drainer. The spool file is capped at max bytes (DefaultMax
// when max <= 0). Results left in it by an earlier run are written first.
// Close stops the drainer.
func Open(dir string, max int64, w Writer, logger *slog.Logger, opts ...Option) (*Spool, error) {
	if max <= 0 {
		max = DefaultMax
	}
	if logger == nil {
		logger = slog.Default()
	}
	f, err := openFile(dir, max, logger)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		w:          w,
		logger:     logger,
		clock:      clockwork.NewRealClock(),
		chunkSize:  DefaultChunkSize,
		retryAfter: DefaultRetryAfter,
		heldMax:    DefaultHeldMax,
		dir:        dir,
		f:          f,
		wake:       make(chan struct{}, 1),
		progress:   make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.pending.Store(f.size - f.offset)
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.drainer(ctx) // its first pass writes what an earlier run left
	return s, nil
}

// Write appends results to the spool file and syncs it; the drainer then
// writes them to the writer. It returns once the results are on disk, never
// waiting for the writer. When the file cannot take them (a full disk, an
// I/O error) they wait in memory and go to the file first on the next
// Write; past the memory cap they are lost.
//
// It returns an error only for results kept nowhere: invalid ones (see
// monitor.Result.Normalized), ones past the spool's cap (wrapping
// ErrSpoolFull) and ones past the memory cap; Lost counts them.
func (s *Spool) Write(ctx context.Context, results []monitor.Result) error {
	valid := make([]monitor.Result, 0, len(results))
	var errs []error
	for _, r := range results {
		r, err := r.Normalized()
		if err != nil {
			errs = append(errs, fmt.Errorf("write: %w", err))
			continue
		}
		valid = append(valid, r)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.lost.Add(int64(len(valid)))
		return errors.Join(append(errs, fmt.Errorf("write %d results: spool closed", len(valid)))...)
	}
	batch := append(s.held, valid...)
	s.held = nil
	lines := make([][]byte, 0, len(batch))
	encoded := batch[:0:0]
	for _, r := range batch {
		l, err := encode(r)
		if err != nil {
			s.lost.Add(1)
			errs = append(errs, fmt.Errorf("write: %w", err))
			continue
		}
		lines = append(lines, l)
		encoded = append(encoded, r)
	}
	appended, err := s.f.append(lines)
	switch {
	case err != nil && !errors.Is(err, ErrSpoolFull):
		// The file could not take them: keep them in memory for the next try.
		rest := encoded[appended:]
		// Said on every write while it lasts: about once a round.
		s.logger.Error("spool cannot be written; results wait in memory until there is room",
			"dir", s.dir, "held", min(len(rest), s.heldMax), "err", err, "fix", "free space in "+s.dir)
		s.appendErr = err
		if over := len(rest) - s.heldMax; over > 0 {
			s.lost.Add(int64(over))
			errs = append(errs, fmt.Errorf("write: %d results lost: the spool in %s cannot be written (%w) and %d already wait in memory; free space there",
				over, s.dir, err, s.heldMax))
			rest = rest[over:]
		}
		s.held = append([]monitor.Result(nil), rest...)
	case err != nil: // the spool is full: what did not fit is lost
		s.lost.Add(int64(len(lines) - appended))
		errs = append(errs, fmt.Errorf("write: %w", err))
		fallthrough
	default:
		if s.appendErr != nil && appended > 0 {
			s.logger.Info("spool writable again", "dir", s.dir)
			s.appendErr = nil
		}
	}
	s.pending.Store(s.f.size - s.f.offset)
	s.mu.Unlock()
	if appended > 0 {
		s.kick()
	}
	return errors.Join(errs...)
}

// kick wakes the drainer.
func (s *Spool) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drainer writes what the spool holds to the writer whenever Write adds to
// it, and retries after an outage, until ctx ends.
func (s *Spool) drainer(ctx context.Context) {
	defer close(s.done)
	for {
		wait := s.drainPass(ctx, false)
		var timer clockwork.Timer
		var fired <-chan time.Time
		if wait > 0 {
			timer = s.clock.NewTimer(wait)
			fired = timer.Chan()
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-fired:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// drainPass writes spooled results to the writer until the spool is empty
// or the writer fails, and returns how long to wait before the next pass (0:
// until woken). With force it tries the writer even before the retry time.
func (s *Spool) drainPass(ctx context.Context, force bool) time.Duration {
	s.drainMu.Lock()
	defer func() {
		s.stateMu.Lock()
		s.passes++
		close(s.progress)
		s.progress = make(chan struct{})
		s.stateMu.Unlock()
		s.drainMu.Unlock()
	}()
	if !force {
		if wait := s.clock.Until(s.retryAtNow()); wait > 0 {
			return wait
		}
	}
	// Results waiting in memory go to the file with the next Write.
	s.mu.Lock()
	pendingNow := s.f.pending()
	s.mu.Unlock()
	if !pendingNow {
		return 0
	}
	if !s.pingedNow() {
		if p, ok := s.w.(Pinger); ok {
			pctx, cancel := context.WithTimeout(ctx, PingTimeout)
			err := p.Ping(pctx)
			cancel()
			if err != nil {
				s.down(fmt.Errorf("%w: %w", monitor.ErrUnavailable, err))
				return s.retryAfter
			}
		}
		s.stateMu.Lock()
		s.pinged = true
		s.stateMu.Unlock()
	}
	for ctx.Err() == nil {
		done, err := s.replayChunk(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			s.down(err)
			s.logger.Warn("spool not written to the database; it stays spooled", "err", err, "pending_bytes", s.pending.Load())
			return s.retryAfter
		}
		if done {
			return 0
		}
	}
	return 0
}

func (s *Spool) retryAtNow() time.Time {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.retryAt
}

func (s *Spool) pingedNow() bool {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.pinged
}

// down notes a failed writer attempt. After an outage the spool waits
// retryAfter before it tries again. Any other error (the writer refused a
// batch as a whole) is retried as soon as more results arrive.
func (s *Spool) down(err error) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if errors.Is(err, monitor.ErrUnavailable) {
		if !s.outage {
			s.logger.Warn("database unavailable; results are kept in the spool until it answers", "err", err, "spool", s.dir)
			s.outageSince = s.clock.Now()
		}
		s.outage = true
		s.outageErr = err
		s.pinged = false
		s.retryAt = s.clock.Now().Add(s.retryAfter)
		return
	}
	s.logger.Error("database refused a batch; it stays spooled", "err", err)
}

// up notes a writer attempt that succeeded.
func (s *Spool) up() {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.outage {
		s.logger.Info("database available again", "down_for", s.clock.Since(s.outageSince).Round(time.Second).String())
	}
	s.outage, s.outageErr = false, nil
	s.retryAt = time.Time{}
}

// replayChunk writes the next chunk of the spool to the writer, marks it
// done and reports whether the spool is now empty. Lines that are not valid
// results, or that the writer refuses for itself, are copied to
// rejected.jsonl and skipped. When the writer refuses the chunk as a whole
// without being down, it writes the lines one by one to single out and
// reject the ones at fault.
func (s *Spool) replayChunk(ctx context.Context) (empty bool, err error) {
	s.mu.Lock()
	rd, err := s.f.reader()
	s.mu.Unlock()
	if err != nil {
		return false, err
	}
	defer rd.close()
	var chunk []line
	for len(chunk) < s.chunkSize {
		l, err := rd.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, err
		}
		chunk = append(chunk, l)
	}
	if len(chunk) == 0 {
		return true, nil
	}
	var lines []line
	var results []monitor.Result
	for _, l := range chunk {
		if l.err == nil {
			lines = append(lines, l)
			results = append(results, l.result)
		}
	}
	rejected := map[int]error{} // by line number
	if len(results) > 0 {
		refused, err := s.w.WriteResults(ctx, results)
		switch {
		case err == nil:
			for i, rerr := range refused {
				if rerr != nil && i < len(lines) {
					rejected[lines[i].no] = rerr
				}
			}
		case errors.Is(err, monitor.ErrUnavailable):
			return false, err
		default:
			for _, l := range lines {
				refused, err := s.w.WriteResults(ctx, []monitor.Result{l.result})
				switch {
				case err != nil && errors.Is(err, monitor.ErrUnavailable):
					return false, err
				case err != nil:
					rejected[l.no] = err
				case len(refused) > 0 && refused[0] != nil:
					rejected[l.no] = refused[0]
				}
			}
		}
	}
	s.up() // before the chunk is marked done: a drain that sees it done sees the writer up
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range chunk {
		reason := l.err
		if reason == nil {
			reason = rejected[l.no]
		}
		if reason != nil { // reported once the chunk is past, not on every retry
			s.f.reject(l.no, l.raw, reason)
		}
	}
	last := chunk[len(chunk)-1]
	if err := s.f.mark(last.end, last.no); err != nil {
		return false, err
	}
	empty = !s.f.pending()
	if empty {
		if err := s.f.reset(); err != nil {
			return false, err
		}
	}
	s.pending.Store(s.f.size - s.f.offset)
	return empty, nil
}

// Drain waits until everything spooled so far is written to the writer,
// the writer is found down, or ctx ends, and returns nil only in the first
// case. One-shot commands call it before they exit, with a short deadline:
// what is not written stays spooled for the next run.
func (s *Spool) Drain(ctx context.Context) error {
	for {
		s.stateMu.Lock()
		progress, passes := s.progress, s.passes
		outage, outageErr := s.outage, s.outageErr
		s.stateMu.Unlock()
		s.mu.Lock()
		empty, held := !s.f.pending(), len(s.held)
		s.mu.Unlock()
		if empty && held == 0 {
			return nil
		}
		if outage && passes > 0 {
			return fmt.Errorf("drain spool: %d bytes wait for the database: %w", s.pending.Load(), outageErr)
		}
		s.kick()
		select {
		case <-progress:
			// A pass ended: look again. A pass that found the writer down
			// sets outage; one that emptied the spool leaves it empty.
			s.stateMu.Lock()
			outage, outageErr = s.outage, s.outageErr
			s.stateMu.Unlock()
			if outage {
				return fmt.Errorf("drain spool: %d bytes wait for the database: %w", s.pending.Load(), outageErr)
			}
		case <-ctx.Done():
			return fmt.Errorf("drain spool: %d bytes not written yet: %w", s.pending.Load(), ctx.Err())
		}
	}
}

// Replay is the explicit drain: it writes everything spooled to the writer
// now, even within the retry time after an outage, and returns an error
// when the writer failed; what is left stays spooled.
func (s *Spool) Replay(ctx context.Context) error {
	s.drainPass(ctx, true)
	s.stateMu.Lock()
	outage, outageErr := s.outage, s.outageErr
	s.stateMu.Unlock()
	if outage {
		return fmt.Errorf("replay spool: %w", outageErr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f.pending() || len(s.held) > 0 {
		return fmt.Errorf("replay spool: %d bytes and %d results in memory not written", s.f.size-s.f.offset, len(s.held))
	}
	return nil
}

// Bytes returns the bytes of results in the spool file that wait for the
// writer. It takes no lock, so a metrics scrape never waits for a write.
func (s *Spool) Bytes() int64 { return s.pending.Load() }

// Lost returns how many results were kept nowhere since Open.
func (s *Spool) Lost() int64 { return s.lost.Load() }

// Health is what the spool knows of its own state and the writer's.
type Health struct {
	Dir string
	// PendingBytes wait in the spool file for the writer.
	PendingBytes int64
	// Held results wait in memory because the file cannot be written;
	// AppendError says why.
	Held        int
	AppendError string
	// Lost results were kept nowhere since Open.
	Lost int64
	// WriterDown is set while the writer is unreachable, since
	// WriterDownSince, for WriterError.
	WriterDown      bool
	WriterDownSince time.Time
	WriterError     string
}

// Problems returns one sentence per problem, for a health check; none when
// all is well.
func (h Health) Problems() []string {
	var out []string
	if h.WriterDown {
		out = append(out, fmt.Sprintf("database unreachable since %s (%s); %d bytes of results wait in the spool in %s",
			h.WriterDownSince.UTC().Format(time.RFC3339), h.WriterError, h.PendingBytes, h.Dir))
	}
	if h.Held > 0 {
		out = append(out, fmt.Sprintf("the spool in %s cannot be written (%s): %d results wait in memory; free space there", h.Dir, h.AppendError, h.Held))
	}
	if h.Lost > 0 {
		out = append(out, fmt.Sprintf("%d results lost since start: kept nowhere", h.Lost))
	}
	return out
}

// Health returns the spool's state now.
func (s *Spool) Health() Health {
	h := Health{Dir: s.dir, PendingBytes: s.pending.Load(), Lost: s.lost.Load()}
	s.mu.Lock()
	h.Held = len(s.held)
	if s.appendErr != nil {
		h.AppendError = s.appendErr.Error()
	}
	s.mu.Unlock()
	s.stateMu.Lock()
	h.WriterDown, h.WriterDownSince = s.outage, s.outageSince
	if s.outageErr != nil {
		h.WriterError = s.outageErr.Error()
	}
	s.stateMu.Unlock()
	return h
}

// Close stops the drainer (a write to the writer in flight is cancelled and
// stays spooled) and closes the spool file. Results still waiting in memory
// are lost, and counted. Spooled results stay on disk for the next Open; it
// does not close the writer.
func (s *Spool) Close() error {
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if n := len(s.held); n > 0 {
		s.lost.Add(int64(n))
		s.logger.Error("results lost: the spool could not be written before the collector stopped",
			"results", n, "dir", s.dir, "err", s.appendErr)
		s.held = nil
	}
	return s.f.close()
}
