package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/crawlerfleet/collector/monitor"
)

// DefaultMax is the usual cap of the spool file: 1 GiB.
const DefaultMax = 1 << 30

// Defaults for the settings that Options change.
const (
	// DefaultChunkSize is how many spooled results go to the writer at a
	// time.
	DefaultChunkSize = 5000
	// DefaultRetryAfter is how long Write sends results straight to the
	// spool after an outage, instead of waiting for the writer again on
	// every round.
	DefaultRetryAfter = 15 * time.Second
)

// writeReplayChunks is how many chunks Write replays before its own results
// go to the writer; past that they join the spool, so that a long backlog
// does not hold up a round. Replay has no such limit.
const writeReplayChunks = 4

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
// (DefaultChunkSize); Write replays writeReplayChunks chunks at most.
func WithChunkSize(n int) Option { return func(s *Spool) { s.chunkSize = max(n, 1) } }

// WithRetryAfter sets how long Write keeps results in the spool after an
// outage before it tries the writer again (DefaultRetryAfter).
func WithRetryAfter(d time.Duration) Option { return func(s *Spool) { s.retryAfter = d } }

// WithClock sets the clock that times the retry after an outage
// (time.Now).
func WithClock(now func() time.Time) Option { return func(s *Spool) { s.now = now } }

// A Spool passes results to a Writer and keeps them on disk while the
// writer is down (see the package doc). Its methods are safe for concurrent
// use; writes and replays are serialised.
type Spool struct {
	w          Writer
	logger     *slog.Logger
	now        func() time.Time
	chunkSize  int
	retryAfter time.Duration
	path       string // results.jsonl, for Bytes

	mu      sync.Mutex
	f       *file     // guarded by mu
	retryAt time.Time // no writer attempt before this, except by Replay; guarded by mu
	outage  bool      // the last writer attempt was an outage; guarded by mu
}

// Open opens the spool in dir, creating dir with mode 0700, in front of w.
// The spool file is capped at max bytes (DefaultMax when max <= 0). Results
// left in it by an earlier run are replayed by the next Write or Replay.
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
		now:        time.Now,
		chunkSize:  DefaultChunkSize,
		retryAfter: DefaultRetryAfter,
		path:       f.path,
		f:          f,
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Write stores results through the writer, after the spooled ones. The
// writer must take results it already has without harm (a *store.Store
// skips a result stored before), as a replay may repeat a batch.
//
// When the writer fails, or earlier results still wait in the spool,
// results go to the spool and Write returns nil. Write returns an error only
// for results that could not be kept anywhere: invalid ones (see
// monitor.Result.Normalized), ones the writer refused, or ones the full
// spool could not take (wrapping ErrSpoolFull).
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
	if len(valid) == 0 {
		return errors.Join(errs...)
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if s.f.pending() && s.allowed() {
		_, _ = s.replayLocked(ctx, writeReplayChunks) // logs its own failure; the spool keeps order
	}
	if !s.f.pending() && s.allowed() {
		refused, err := s.w.WriteResults(ctx, valid)
		if err == nil {
			s.up()
			for _, rerr := range refused {
				if rerr != nil {
					errs = append(errs, fmt.Errorf("write: %w", rerr))
				}
			}
			return errors.Join(errs...)
		}
		s.down(err)
	}
	if err := s.f.append(valid); err != nil {
		errs = append(errs, fmt.Errorf("write: %w", err))
	}
	return errors.Join(errs...)
}

// allowed reports whether Write may try the writer now.
func (s *Spool) allowed() bool { return !s.now().Before(s.retryAt) }

// down notes a failed writer attempt. After an outage results go to the
// spool for a while. Any other error (the writer refused the batch as a
// whole) is retried at once, so that replay can single out the result at
// fault.
func (s *Spool) down(err error) {
	if errors.Is(err, monitor.ErrUnavailable) {
		if !s.outage {
			s.logger.Warn("database unavailable; spooling results", "err", err, "spool", s.path)
		}
		s.outage = true
		s.retryAt = s.now().Add(s.retryAfter)
		return
	}
	s.logger.Error("database refused a batch; spooled for replay", "err", err)
}

// up notes a writer attempt that succeeded.
func (s *Spool) up() {
	if s.outage {
		s.logger.Info("database available again")
	}
	s.outage = false
	s.retryAt = time.Time{}
}

// Replay is the explicit drain of the spool: it writes all the spooled
// results in the order they were spooled and reports how many the writer
// took. Write replays too, before its own results, but at most
// writeReplayChunks chunks, so that a long backlog does not hold up a round;
// call Replay to empty the spool at once (before a shutdown, or from a
// maintenance command). It tries the writer even within the retry time
// after an outage. A line that is not a valid result, or that the writer
// refuses, is logged with its line number, copied to rejected.jsonl next to
// the spool, and skipped. Replay stops with an error when the writer fails;
// what is left stays spooled.
func (s *Spool) Replay(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replayLocked(ctx, 0)
}

// replayLocked replays at most maxChunks chunks, or all with 0.
func (s *Spool) replayLocked(ctx context.Context, maxChunks int) (int, error) {
	f := s.f
	if !f.pending() {
		return 0, nil
	}
	rd, err := f.reader()
	if err != nil {
		return 0, err
	}
	defer rd.close()

	written := 0
	for chunks := 0; ; chunks++ {
		if maxChunks > 0 && chunks == maxChunks {
			s.logger.Info("spool partly replayed; the rest follows", "results", written, "spool_bytes_left", f.size-f.offset)
			return written, nil
		}
		var chunk []line
		var eof bool
		for len(chunk) < s.chunkSize {
			l, err := rd.next()
			if errors.Is(err, io.EOF) {
				eof = true
				break
			}
			if err != nil {
				return written, err
			}
			chunk = append(chunk, l)
		}
		n, err := s.replayChunk(ctx, chunk)
		written += n
		if err != nil {
			s.down(err)
			s.logger.Warn("spool replay stopped; the rest stays spooled", "replayed", written, "err", err)
			return written, fmt.Errorf("replay spool: %w", err)
		}
		for _, l := range chunk {
			if l.err != nil { // reported once the chunk is past, not on every retry
				f.reject(l.no, l.raw, l.err)
			}
		}
		if len(chunk) > 0 {
			last := chunk[len(chunk)-1]
			if err := f.mark(last.end, last.no); err != nil {
				return written, err
			}
		}
		if eof {
			break
		}
	}
	s.up()
	if err := f.reset(); err != nil {
		return written, err
	}
	s.logger.Info("spool replayed", "results", written)
	return written, nil
}

// replayChunk writes the valid lines of chunk. When the writer refuses the
// batch as a whole without being down, it writes them one by one to single
// out and reject the lines at fault.
func (s *Spool) replayChunk(ctx context.Context, chunk []line) (int, error) {
	var lines []line
	var results []monitor.Result
	for _, l := range chunk {
		if l.err == nil {
			lines = append(lines, l)
			results = append(results, l.result)
		}
	}
	if len(results) == 0 {
		return 0, nil
	}
	refused, err := s.w.WriteResults(ctx, results)
	if err == nil {
		n := len(results)
		for i, rerr := range refused {
			if rerr != nil && i < len(lines) {
				s.f.reject(lines[i].no, lines[i].raw, rerr)
				n--
			}
		}
		return n, nil
	}
	if errors.Is(err, monitor.ErrUnavailable) {
		return 0, err
	}
	written := 0
	for _, l := range lines {
		refused, err := s.w.WriteResults(ctx, []monitor.Result{l.result})
		switch {
		case err != nil && errors.Is(err, monitor.ErrUnavailable):
			return written, err
		case err != nil:
			s.f.reject(l.no, l.raw, err)
		case len(refused) > 0 && refused[0] != nil:
			s.f.reject(l.no, l.raw, refused[0])
		default:
			written++
		}
	}
	return written, nil
}

// Bytes returns the size of the spool file on disk: results waiting for the
// writer, plus replayed ones not yet truncated away. It takes no lock, so a
// metrics scrape never waits for a write.
func (s *Spool) Bytes() int64 {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Close closes the spool file. Spooled results stay on disk for the next
// Open; it does not close the writer.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.close()
}
