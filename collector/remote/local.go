package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// Local runs commands on this machine with /bin/sh -c, under the contract of
// Client.Run. It serves the servers whose address is "local".
type Local struct{}

// localWaitDelay bounds how long Run waits for the output pipes once the
// shell is gone, in case a background process it started holds them open.
const localWaitDelay = time.Second

// Run runs cmd with /bin/sh -c; see Client.Run for the contract. When ctx is
// done or stdout is over the cap, the shell's process group is killed.
func (Local) Run(ctx context.Context, cmd string, stdin io.Reader, maxStdout int64) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("run command locally: %w", err)
	}
	out := newCapBuffer(maxStdout)
	errOut := &tailBuffer{max: MaxStderr}
	in := &stopReader{r: stdin}
	defer in.stop()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-out.exceeded:
			cancel()
		case <-runCtx.Done():
		}
	}()

	c := exec.CommandContext(runCtx, "/bin/sh", "-c", cmd)
	c.Stdout, c.Stderr = out, errOut
	if stdin != nil {
		c.Stdin = in
	}
	c.WaitDelay = localWaitDelay
	killGroupOnCancel(c)
	err := c.Run()
	res := Result{Stdout: out.freeze(), Stderr: errOut.freeze()}

	select {
	case <-out.exceeded:
		return res, fmt.Errorf("run command locally: stdout exceeds %d bytes: %w", out.max, ErrOutputTooLarge)
	default:
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("run command locally: %w", ctx.Err())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit):
		res.ExitStatus = exit.ExitCode()
		if sig := signalName(exit.ProcessState); sig != "" {
			res.ExitStatus, res.Signal = -1, sig
		}
		return res, nil
	}
	return res, fmt.Errorf("run command locally: %w", err)
}

// Start starts cmd with /bin/sh -c in a process group of its own; see
// Client.Start for the contract. Close closes its stdin and kills the group
// if the shell has not exited a second later.
func (Local) Start(ctx context.Context, cmd string, maxLine int64) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start command locally: %w", err)
	}
	// Cancelled by Close (a second late) or once the command has ended.
	runCtx, cancel := context.WithCancel(context.Background())
	c := exec.CommandContext(runCtx, "/bin/sh", "-c", cmd)
	killGroupOnCancel(c)
	c.WaitDelay = localWaitDelay
	stdin, err := c.StdinPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start command locally: %w", err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start command locally: %w", err)
	}
	s := newStream("local", stdin, func() { time.AfterFunc(localWaitDelay, cancel) })
	c.Stderr = s.stderr
	if err := c.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start command locally: %w", err)
	}
	go s.read(stdout, maxLine, func() *EndedError {
		err := c.Wait()
		cancel()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return &EndedError{}
		case errors.As(err, &exit):
			r := Result{ExitStatus: exit.ExitCode()}
			if sig := signalName(exit.ProcessState); sig != "" {
				r.ExitStatus, r.Signal = -1, sig
			}
			return &EndedError{Result: r}
		}
		return &EndedError{Err: err}
	})
	return s, nil
}
