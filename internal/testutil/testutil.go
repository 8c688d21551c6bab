// Package testutil holds the helpers that tests of several packages share:
// a buffer safe for concurrent writers, a logger that shows its output only
// when a test fails, a wait for a condition that other goroutines make true,
// waits for a fake clock's timers and for a channel's next value, each
// bounded by a safety net (Patience) rather than an expected time, and a
// fuzz test's seeds read from files. Clocks
// come from github.com/jonboulle/clockwork (clockwork.NewFakeClock).
package testutil

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// A SyncBuffer is an io.Writer that several goroutines may write to while a
// test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns a debug-level text logger into a SyncBuffer, which it also
// returns; the buffer's content is printed when the test fails.
func Logger(tb testing.TB) (*slog.Logger, *SyncBuffer) {
	tb.Helper()
	buf := &SyncBuffer{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// Eventually waits until cond returns true, checking every few
// milliseconds, and fails the test with what when it has not after limit.
// limit is a safety net against a hang, never the expected time: a test that
// passes only because something happened within limit is wrong.
func Eventually(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: still not %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Patience bounds every wait of BlockUntil and Receive: a safety net against
// a hang, far beyond what any wait takes even on a loaded machine.
const Patience = time.Minute

// BlockUntil waits until fc has n timers and tickers waiting on it (see
// clockwork.FakeClock.BlockUntilContext), and fails the test with what when
// that has not happened within Patience. Code under test that waits on fc
// is then known to be waiting: the next fc.Advance reaches it.
func BlockUntil(tb testing.TB, fc *clockwork.FakeClock, n int, what string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	if err := fc.BlockUntilContext(ctx, n); err != nil {
		tb.Fatalf("after %v: still not %d timers waiting on the fake clock: %s", Patience, n, what)
	}
}

// Receive returns the next value from c, and fails the test with what when
// none has come within Patience.
func Receive[T any](tb testing.TB, c <-chan T, what string) T {
	tb.Helper()
	t := time.NewTimer(Patience)
	defer t.Stop()
	select {
	case v := <-c:
		return v
	case <-t.C:
		tb.Fatalf("after %v: still no %s", Patience, what)
		var zero T
		return zero
	}
}

// AddFiles adds the content of every file that pattern (filepath.Glob)
// matches to f's seed corpus, and fails when none does: a fuzz test seeded
// with nothing would only search from empty input.
func AddFiles(f *testing.F, pattern string) {
	f.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil || len(paths) == 0 {
		f.Fatalf("seed files %s: none (%v)", pattern, err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}
