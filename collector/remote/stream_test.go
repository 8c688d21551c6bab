package remote_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/remote"
)

type starter interface {
	Start(ctx context.Context, cmd string, maxLine int64) (*remote.Stream, error)
}

// TestStreamContract checks the contract of Start on a Client and on Local.
func TestStreamContract(t *testing.T) {
	srv := sshdtest.Start(t)
	starters := map[string]starter{
		"ssh":   dial(t, endpoint(srv, "web1")),
		"local": remote.Local{},
	}
	for name, s := range starters {
		t.Run(name, func(t *testing.T) { testStreamContract(t, s) })
	}
}

func start(t *testing.T, s starter, cmd string, maxLine int64) *remote.Stream {
	t.Helper()
	st, err := s.Start(context.Background(), cmd, maxLine)
	if err != nil {
		t.Fatalf("Start(%q): %v", cmd, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// ended waits for the stream's command to end (a safety net, not a timing).
func ended(t *testing.T, st *remote.Stream) *remote.EndedError {
	t.Helper()
	select {
	case <-st.Done():
	case <-time.After(prompt):
		t.Fatalf("the command has not ended after %v", prompt)
	}
	return st.Err()
}

func testStreamContract(t *testing.T, s starter) {
	ctx := context.Background()

	t.Run("lines", func(t *testing.T) {
		st := start(t, s, `while read l; do echo "got $l"; done`, 100)
		for _, l := range []string{"a", "b", ""} {
			if err := st.WriteLine(ctx, []byte(l)); err != nil {
				t.Fatalf("WriteLine: %v", err)
			}
			got, err := st.ReadLine(ctx)
			if err != nil || string(got) != "got "+l {
				t.Fatalf("ReadLine: %q, %v; want %q", got, err, "got "+l)
			}
		}
		if st.Err() != nil {
			t.Fatalf("Err while running: %v", st.Err())
		}
		st.Close()
		// The command saw the end of its stdin and exited on its own.
		if end := ended(t, st); end == nil || end.Result.ExitStatus != 0 || end.Result.Signal != "" {
			t.Fatalf("after Close: %#v; want exit status 0 (stdin ended)", end)
		}
	})

	t.Run("exit status", func(t *testing.T) {
		st := start(t, s, `read l; echo one; echo oops >&2; exit 3`, 100)
		if err := st.WriteLine(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := st.ReadLine(ctx); err != nil || string(got) != "one" {
			t.Fatalf("ReadLine: %q, %v", got, err)
		}
		_, err := st.ReadLine(ctx)
		var end *remote.EndedError
		if !errors.As(err, &end) || end.Result.ExitStatus != 3 || end.Err != nil {
			t.Fatalf("ReadLine after the exit: %v; want an EndedError with exit status 3", err)
		}
		if !strings.Contains(err.Error(), "exit status 3: oops") {
			t.Errorf("message %q does not give the status and stderr", err)
		}
		if err := st.WriteLine(ctx, nil); !errors.As(err, &end) {
			t.Errorf("WriteLine after the exit: %v; want the EndedError", err)
		}
	})

	t.Run("signal", func(t *testing.T) {
		st := start(t, s, `exec sh -c 'kill -KILL $$'`, 100)
		_, err := st.ReadLine(ctx)
		var end *remote.EndedError
		if !errors.As(err, &end) || end.Result.Signal != "KILL" {
			t.Fatalf("ReadLine: %v; want killed by KILL", err)
		}
	})

	t.Run("line over the cap", func(t *testing.T) {
		st := start(t, s, `head -c 5000 /dev/zero | tr '\0' x; echo; cat >/dev/null`, 1000)
		_, err := st.ReadLine(ctx)
		if !errors.Is(err, remote.ErrOutputTooLarge) {
			t.Fatalf("ReadLine: %v; want ErrOutputTooLarge", err)
		}
		ended(t, st)
	})

	t.Run("a line of exactly the cap", func(t *testing.T) {
		st := start(t, s, `head -c 1000 /dev/zero | tr '\0' x; echo`, 1000)
		got, err := st.ReadLine(ctx)
		if err != nil || len(got) != 1000 {
			t.Fatalf("ReadLine: %d bytes, %v; want 1000", len(got), err)
		}
	})

	t.Run("ctx ends a read", func(t *testing.T) {
		st := start(t, s, `cat >/dev/null`, 100)
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		began := time.Now()
		_, err := st.ReadLine(rctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReadLine: %v; want the deadline", err)
		}
		if took := time.Since(began); took > prompt {
			t.Errorf("ReadLine took %v past its deadline", took)
		}
		// The stream is closed: the command sees its stdin end and goes.
		end := ended(t, st)
		if end == nil {
			t.Fatal("no end recorded")
		}
		if _, err := st.ReadLine(ctx); !errors.As(err, &end) {
			t.Errorf("ReadLine after the stream was closed: %v", err)
		}
	})

	t.Run("cancelled start", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Start(cctx, "true", 100); !errors.Is(err, context.Canceled) {
			t.Fatalf("Start with a cancelled ctx: %v", err)
		}
	})
}

// TestStreamConnectionLost: when the connection ends, a Stream over it
// ends too, with an error and no exit status.
func TestStreamConnectionLost(t *testing.T) {
	srv := sshdtest.Start(t)
	c := dial(t, endpoint(srv, "web1"))
	st := start(t, c, `cat`, 100)
	c.Close()
	end := ended(t, st)
	if end == nil || end.Err == nil {
		t.Fatalf("after the connection closed: %#v; want an error without exit status", end)
	}
	if _, err := st.ReadLine(context.Background()); err == nil {
		t.Fatal("ReadLine on a lost connection succeeded")
	}
}

// TestStreamLateLine: a line that arrives after its read gave up is
// dropped, and the stream still ends (no reader left waiting to hand it on).
func TestStreamLateLine(t *testing.T) {
	st := start(t, remote.Local{}, `read l; sleep 0.5; echo late; sleep 0.5`, 100)
	if err := st.WriteLine(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := st.ReadLine(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadLine: %v; want the deadline", err)
	}
	if end := ended(t, st); end == nil {
		t.Fatal("no end recorded")
	}
}
