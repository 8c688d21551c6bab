package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// DefaultMaxStdout is the stdout cap of Run when maxStdout is not positive.
const DefaultMaxStdout = 16 << 20

// MaxStderr is how much of stderr Run keeps: the last MaxStderr bytes, where
// error messages usually are. More stderr is not an error.
const MaxStderr = 64 << 10

// A Result is what a command printed and how it ended.
type Result struct {
	Stdout []byte
	Stderr []byte // the last MaxStderr bytes
	// ExitStatus is the command's exit status, or -1 when it was killed by
	// a signal.
	ExitStatus int
	Signal     string // the signal that killed the command, such as "KILL"; empty otherwise
}

// Run runs cmd in a new session; the server's login shell interprets it.
// stdin may be nil. Stdout is capped at maxStdout bytes (DefaultMaxStdout
// when not positive): over the cap, Run closes the session at once and
// returns the Result so far with an error wrapping ErrOutputTooLarge. Only
// the tail of stderr is kept (see MaxStderr).
//
// A command that exits non-zero is not an error: see Result.ExitStatus.
// When ctx is done, Run closes the session and returns an error wrapping
// ctx.Err(). Run has stopped reading stdin when it returns.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, maxStdout int64) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("%s: run command: %w", c.ep, err)
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		return Result{}, err
	}
	defer sess.Close()

	out := newCapBuffer(maxStdout)
	errOut := &tailBuffer{max: MaxStderr}
	in := &stopReader{r: stdin}
	defer in.stop()
	sess.Stdout, sess.Stderr = out, errOut
	if stdin != nil {
		sess.Stdin = in
	}
	result := func() Result {
		return Result{Stdout: out.freeze(), Stderr: errOut.freeze()}
	}

	// Session.Start and Wait ignore ctx: close the session when it is done.
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	if err := sess.Start(cmd); err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("%s: run command: %w", c.ep, ctx.Err())
		}
		return Result{}, fmt.Errorf("%s: start command: %w", c.ep, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	finished := false
	select {
	case err = <-done:
		finished = true
	case <-out.exceeded:
	case <-ctx.Done():
	}
	select {
	case <-out.exceeded:
		sess.Close()
		return result(), fmt.Errorf("%s: stdout exceeds %d bytes: %w", c.ep, out.max, ErrOutputTooLarge)
	default:
	}
	if !finished || (err != nil && ctx.Err() != nil) {
		sess.Close()
		return result(), fmt.Errorf("%s: run command: %w", c.ep, ctx.Err())
	}

	res := result()
	var (
		exit    *ssh.ExitError
		missing *ssh.ExitMissingError
	)
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit):
		res.ExitStatus = exit.ExitStatus()
		if exit.Signal() != "" {
			res.ExitStatus, res.Signal = -1, exit.Signal()
		}
		return res, nil
	case errors.As(err, &missing):
		return res, fmt.Errorf("%s: command ended without an exit status (connection lost?): %w", c.ep, err)
	}
	return res, fmt.Errorf("%s: run command: %w", c.ep, err)
}

// newSession opens a session, giving up when ctx is done.
func (c *Client) newSession(ctx context.Context) (*ssh.Session, error) {
	type opened struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := c.conn.NewSession()
		ch <- opened{s, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, fmt.Errorf("%s: open session: %w", c.ep, o.err)
		}
		return o.s, nil
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.s != nil {
				o.s.Close()
			}
		}()
		return nil, fmt.Errorf("%s: open session: %w", c.ep, ctx.Err())
	}
}

// errTooLarge stops copying into a full capBuffer.
var errTooLarge = errors.New("stdout cap reached")

// A capBuffer keeps up to max bytes and closes exceeded when more arrive.
type capBuffer struct {
	max      int64
	exceeded chan struct{}

	mu     sync.Mutex
	buf    []byte
	frozen bool
}

func newCapBuffer(max int64) *capBuffer {
	if max <= 0 {
		max = DefaultMaxStdout
	}
	return &capBuffer{max: max, exceeded: make(chan struct{})}
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.frozen {
		return 0, errTooLarge
	}
	room := b.max - int64(len(b.buf))
	if int64(len(p)) <= room {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	b.buf = append(b.buf, p[:room]...)
	b.frozen = true
	close(b.exceeded)
	return int(room), errTooLarge
}

// freeze returns the bytes kept and drops later writes.
func (b *capBuffer) freeze() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frozen = true
	return b.buf
}

// A tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int

	mu     sync.Mutex
	buf    []byte
	frozen bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.frozen {
		return len(p), nil
	}
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	// Trim once twice the cap, so that trimming costs O(1) per byte.
	if len(b.buf) >= 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) freeze() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frozen = true
	if len(b.buf) > b.max {
		return b.buf[len(b.buf)-b.max:]
	}
	return b.buf
}

// A stopReader passes reads to r until stop, so that a command's stdin is
// never read after Run returned. A Read in progress delays stop.
type stopReader struct {
	mu      sync.Mutex
	r       io.Reader
	stopped bool
}

var errStopped = errors.New("command finished")

func (s *stopReader) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.r == nil {
		return 0, errStopped
	}
	return s.r.Read(p)
}

func (s *stopReader) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}
