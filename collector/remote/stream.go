package remote

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// A Stream is a long-lived command in a session of its own, spoken to in
// lines: the caller writes a line to its stdin and reads the line it prints
// back (the probe's watch mode). Client.Start and Local.Start start one.
//
// Every line read is capped (maxLine of Start): a longer one ends the
// stream with an error wrapping ErrOutputTooLarge. At most one line waits
// to be read at a time; while it waits, the command's further output waits
// in the transport, so what a command prints unasked cannot make the
// collector buffer without bound. Only the tail of stderr is kept (see
// MaxStderr).
//
// A Stream is used by one goroutine at a time, except Close, Done and Err,
// which may be called from any.
type Stream struct {
	where   string // names the target in errors
	stdin   io.WriteCloser
	lines   chan []byte   // closed when stdout ends
	closing chan struct{} // closed by Close: no line is read any more
	done    chan struct{} // closed when the command has ended and end is set
	stderr  *tailBuffer
	closeFn func() // ends the session or process; called once, by Close

	closeOnce sync.Once
	endMu     sync.Mutex
	end       *EndedError // how the command ended; set before done is closed
	readErr   error       // a line over the cap
	closed    bool        // Close was called
}

// An EndedError says how a Stream's command ended: with an exit status or a
// signal (Result), or with the transport gone before it said (Err). Every
// call on a Stream whose command ended returns it.
type EndedError struct {
	Result Result // ExitStatus, Signal and the tail of Stderr
	// Err is set when there is no exit status: the connection was lost,
	// the stream was closed, or a line was over the cap.
	Err error
	// where names the target, as in the errors of Run.
	where string
}

func (e *EndedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: command ended: %v", e.where, e.Err)
	}
	msg := fmt.Sprintf("%s: command ended with exit status %d", e.where, e.Result.ExitStatus)
	if e.Result.Signal != "" {
		msg = fmt.Sprintf("%s: command killed by signal %s", e.where, e.Result.Signal)
	}
	if s := bytes.TrimSpace(e.Result.Stderr); len(s) > 0 {
		msg += ": " + string(s)
	}
	return msg
}

func (e *EndedError) Unwrap() error { return e.Err }

// ErrStreamClosed is the cause of a Stream's end when its caller closed it.
var ErrStreamClosed = errors.New("stream closed")

// Start starts cmd in a new session, its stdin and stdout kept open for
// WriteLine and ReadLine; the server's login shell interprets it. ctx bounds
// the start only: the command then runs until it exits, the stream is
// closed, or the connection ends. Lines read are capped at maxLine bytes
// (DefaultMaxStdout when not positive).
func (c *Client) Start(ctx context.Context, cmd string, maxLine int64) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: start command: %w", c.ep, err)
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		return nil, err
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("%s: start command: %w", c.ep, err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("%s: start command: %w", c.ep, err)
	}
	s := newStream(c.ep.String(), stdin, func() { sess.Close() })
	sess.Stderr = s.stderr
	// Session.Start ignores ctx: close the session when it is done first.
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	err = sess.Start(cmd)
	stopped := stop()
	if err != nil || !stopped {
		sess.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: start command: %w", c.ep, ctx.Err())
		}
		return nil, fmt.Errorf("%s: start command: %w", c.ep, err)
	}
	go s.read(stdout, maxLine, func() *EndedError {
		err := sess.Wait()
		sess.Close()
		var (
			exit    *ssh.ExitError
			missing *ssh.ExitMissingError
		)
		switch {
		case err == nil:
			return &EndedError{}
		case errors.As(err, &exit):
			r := Result{ExitStatus: exit.ExitStatus()}
			if exit.Signal() != "" {
				r.ExitStatus, r.Signal = -1, exit.Signal()
			}
			return &EndedError{Result: r}
		case errors.As(err, &missing):
			return &EndedError{Err: errors.New("no exit status (connection lost?)")}
		}
		return &EndedError{Err: err}
	})
	return s, nil
}

func newStream(where string, stdin io.WriteCloser, closeFn func()) *Stream {
	return &Stream{
		where: where, stdin: stdin, closeFn: closeFn,
		lines: make(chan []byte), closing: make(chan struct{}), done: make(chan struct{}), stderr: &tailBuffer{max: MaxStderr},
	}
}

// read hands each line of stdout to ReadLine until stdout ends, then waits
// for the command (wait) and records how it ended.
func (s *Stream) read(stdout io.Reader, maxLine int64, wait func() *EndedError) {
	if maxLine <= 0 {
		maxLine = DefaultMaxStdout
	}
	err := readLines(stdout, maxLine, s.lines, s.closing)
	close(s.lines)
	if err != nil {
		s.endMu.Lock()
		s.readErr = err
		s.endMu.Unlock()
		s.Close() // a line over the cap: the stream cannot go on
	}
	end := wait()
	end.where = s.where
	end.Result.Stderr = s.stderr.freeze()
	s.endMu.Lock()
	switch {
	case s.readErr != nil:
		end.Err = s.readErr
	case end.Err != nil && s.closed:
		end.Err = ErrStreamClosed // no exit status because it was closed
	}
	s.end = end
	s.endMu.Unlock()
	close(s.done)
}

// readLines sends each line of r, without its newline, on lines until r
// ends or closing is closed. It returns an error wrapping ErrOutputTooLarge
// for a line longer than maxLine bytes, and nil otherwise (a last line
// without a newline is dropped: it was cut off).
func readLines(r io.Reader, maxLine int64, lines chan<- []byte, closing <-chan struct{}) error {
	// A snapshot is a few KiB: a small buffer per stream keeps a fleet's
	// streams cheap, and a longer line is put together from several reads.
	br := bufio.NewReaderSize(r, 8<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if int64(len(line)+len(chunk)) > maxLine+1 { // +1: the newline
			return fmt.Errorf("a line of stdout exceeds %d bytes: %w", maxLine, ErrOutputTooLarge)
		}
		switch {
		case err == nil:
			if len(line) == 0 {
				line = make([]byte, 0, len(chunk))
			}
			line = append(line, chunk[:len(chunk)-1]...)
			select {
			case lines <- line:
			case <-closing:
				return nil // a line nobody will read: the stream was closed
			}
			line = nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, chunk...)
		default:
			return nil // io.EOF, or the session's end
		}
	}
}

// WriteLine writes line and a newline to the command's stdin. A write to
// the SSH channel blocks only while the command leaves its stdin unread for
// a whole channel window (megabytes); ctx is checked before it. Once the
// command has ended, it returns its *EndedError.
func (s *Stream) WriteLine(ctx context.Context, line []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: write line: %w", s.where, err)
	}
	select {
	case <-s.done:
		return s.end
	default:
	}
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	if _, err := s.stdin.Write(buf); err != nil {
		if end := s.ended(ctx); end != nil {
			return end
		}
		return fmt.Errorf("%s: write line: %w", s.where, err)
	}
	return nil
}

// ReadLine returns the next line the command printed, without its newline.
// When ctx ends first, the stream is closed (a line half read cannot be
// resumed) and the error wraps ctx.Err(). Once the command has ended and
// its lines are read, it returns its *EndedError.
func (s *Stream) ReadLine(ctx context.Context) ([]byte, error) {
	select {
	case line, ok := <-s.lines:
		if ok {
			return line, nil
		}
		if end := s.ended(ctx); end != nil {
			return nil, end
		}
	case <-ctx.Done():
	}
	s.Close()
	return nil, fmt.Errorf("%s: read line: %w", s.where, ctx.Err())
}

// ended waits for the command's end, at most until ctx ends, and returns
// it, or nil when ctx ended first.
func (s *Stream) ended(ctx context.Context) *EndedError {
	select {
	case <-s.done:
		return s.end
	case <-ctx.Done():
		return nil
	}
}

// Close ends the stream: it closes the command's stdin, so that a command
// that reads it sees its end, and then the session (or, for Local, kills
// the command's process group if it has not exited within a second). It
// does not wait for the command; Done is closed when it has ended.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.endMu.Lock()
		s.closed = true
		s.endMu.Unlock()
		close(s.closing)
		s.stdin.Close()
		s.closeFn()
	})
	return nil
}

// Done is closed once the command has ended and Err tells how.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err returns how the command ended, or nil while it runs.
func (s *Stream) Err() *EndedError {
	select {
	case <-s.done:
		return s.end
	default:
		return nil
	}
}
