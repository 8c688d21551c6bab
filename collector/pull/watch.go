package pull

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// A Streamer starts a long-lived command spoken to in lines.
// *remote.Client and remote.Local satisfy it.
type Streamer interface {
	Start(ctx context.Context, cmd string, maxLine int64) (*remote.Stream, error)
}

// WatchOptions say how to start a watching probe (probe -watch).
type WatchOptions struct {
	Keywords   []string      // process keywords; none counts no process
	Resolution time.Duration // how often the probe samples
	// Silence is how long the probe waits for a line before it exits: the
	// bound on how long a probe outlives a collector that went away without
	// closing its session.
	Silence time.Duration
	// Timeout bounds the making of each snapshot on the target (the
	// probe's -timeout); at least a second.
	Timeout   time.Duration
	ProbeDir  string // DefaultProbeDir when empty
	MaxOutput int64  // the cap on each snapshot's line; snapshot.DefaultMaxBytes when zero
	// Now is the collector's clock, for the probe clock's skew (time.Now
	// when nil).
	Now func() time.Time
}

// A Watch is a probe running in watch mode on one target, in a session of
// its own: each Next asks it for the snapshot of the interval since the
// previous one. Close it when done; the probe exits when its stdin closes.
type Watch struct {
	stream   *remote.Stream
	opts     WatchOptions
	platform string
}

// Watch starts the probe in watch mode and checks that it answers: it asks
// for a first snapshot (of the moment since the start, which it drops), so
// that a probe that cannot run fails here and not at the next tick. When the
// shell says the probe is missing, it uploads it, as Pull does, and starts
// it again. The first Next covers the time from this start.
func (t *Target) Watch(ctx context.Context, opts WatchOptions) (*Watch, Info, error) {
	var info Info
	streamer, ok := t.runner.(Streamer)
	if !ok {
		return nil, info, &ProbeError{Step: "watch", Err: fmt.Errorf("this target cannot keep a probe running (%T)", t.runner)}
	}
	build, err := t.platformBuild(ctx)
	if err != nil {
		return nil, info, err
	}
	info.Platform = build.Platform()
	dir := opts.ProbeDir
	if dir == "" {
		dir = DefaultProbeDir
	}
	w, err := startWatch(ctx, streamer, dir, build, opts)
	var end *remote.EndedError
	if errors.As(err, &end) && end.Err == nil && missing(end.Result) {
		if err := t.upload(ctx, dir, build); err != nil {
			return nil, info, err
		}
		info.Uploaded = true
		w, err = startWatch(ctx, streamer, dir, build, opts)
	}
	if err != nil {
		return nil, info, wrapWatch("start", err, dir)
	}
	w.platform = info.Platform
	return w, info, nil
}

// startWatch starts the probe and reads its first snapshot. Its error is
// not yet wrapped, so that the caller can tell a missing probe.
func startWatch(ctx context.Context, s Streamer, dir string, build probebin.Build, opts WatchOptions) (*Watch, error) {
	stream, err := s.Start(ctx, watchCommand(dir, build, opts), maxOutputOf(opts.MaxOutput))
	if err != nil {
		return nil, err
	}
	w := &Watch{stream: stream, opts: opts}
	line, err := w.exchange(ctx)
	if err == nil {
		if _, err = snapshot.Unmarshal(line); err != nil {
			err = &ProbeError{Step: "watch start", Err: err}
		}
	}
	if err != nil {
		stream.Close()
		return nil, err
	}
	return w, nil
}

// watchCommand is the shell command that runs build from dir in watch mode.
func watchCommand(dir string, build probebin.Build, opts WatchOptions) string {
	timeout := max(opts.Timeout, time.Second)
	args := []string{
		"-watch",
		"-resolution", opts.Resolution.String(),
		"-silence", opts.Silence.String(),
		"-timeout", timeout.Round(time.Millisecond).String(),
		"--",
	}
	args = append(args, opts.Keywords...)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = remote.Quote(a)
	}
	// exec, as for a one-shot probe: no shell lingers, and the session's
	// end reaches the probe itself.
	return "exec " + shellPath(dir+"/"+build.FileName()) + " " + strings.Join(quoted, " ")
}

// WatchTimeout is the probe's -timeout for a server whose whole probe has
// timeout: the same reserve as a one-shot probe's, at least a second.
func WatchTimeout(timeout time.Duration) time.Duration {
	return max(timeout-inventory.ProbeReserve, time.Second)
}

// exchange writes a line and reads the snapshot line that answers it.
func (w *Watch) exchange(ctx context.Context) ([]byte, error) {
	if err := w.stream.WriteLine(ctx, nil); err != nil {
		return nil, err
	}
	return w.stream.ReadLine(ctx)
}

// Next asks the probe for the snapshot of the interval since the last one
// (or since the start), decodes it strictly and checks it as Pull does; it
// must carry its Interval. A failure to read (the probe gone, the
// connection lost, ctx ended) ends the Watch: Done is then closed or about
// to be, and a new Watch must be started.
func (w *Watch) Next(ctx context.Context) (*snapshot.Snapshot, Info, error) {
	info := Info{Platform: w.platform}
	line, err := w.exchange(ctx)
	if err != nil {
		return nil, info, wrapWatch("read", err, "")
	}
	snap, err := snapshot.Unmarshal(line)
	if err != nil {
		w.Close() // what else it prints cannot be trusted either
		return nil, info, &ProbeError{Step: "decode", Err: err}
	}
	now := time.Now()
	if w.opts.Now != nil {
		now = w.opts.Now()
	}
	if snap.Interval == nil {
		return nil, info, &ProbeError{Step: "check", Err: errors.New("implausible snapshot: a watching probe's snapshot has no interval")}
	}
	if err := check(snap, w.opts.Keywords, now); err != nil {
		return nil, info, &ProbeError{Step: "check", Err: err}
	}
	if skew := snap.Time.Sub(now); skew > NoteClockSkew || skew < -NoteClockSkew {
		info.ClockSkew = skew.Truncate(time.Millisecond)
	}
	return snap, info, nil
}

// wrapWatch turns an error of the stream into one the fleet can classify: the
// probe's own end (an exit status, a signal, a line over the cap) is a
// *ProbeError; a transport failure or ctx's end stays what it is.
func wrapWatch(step string, err error, dir string) error {
	var (
		end *remote.EndedError
		pe  *ProbeError
	)
	switch {
	case errors.As(err, &pe):
		return err
	case errors.Is(err, remote.ErrOutputTooLarge):
		return &ProbeError{Step: "watch " + step, Err: err}
	case errors.As(err, &end) && end.Err == nil:
		if dir != "" && missing(end.Result) {
			return &ProbeError{Step: "watch " + step, Err: fmt.Errorf("probe uploaded to %s but cannot be executed (%s); is the directory on a noexec file system? set probe_dir", dir, err)}
		}
		return &ProbeError{Step: "watch " + step, Err: fmt.Errorf("the watching probe ended: %w", err)}
	}
	return fmt.Errorf("watch %s: %w", step, err)
}

// Close ends the Watch: the probe sees its stdin end and exits.
func (w *Watch) Close() error { return w.stream.Close() }

// Done is closed once the probe has ended.
func (w *Watch) Done() <-chan struct{} { return w.stream.Done() }

// Err returns why the probe ended, as Next would report it, or nil while it
// runs.
func (w *Watch) Err() error {
	if end := w.stream.Err(); end != nil {
		return wrapWatch("read", end, "")
	}
	return nil
}

func maxOutputOf(n int64) int64 {
	if n > 0 {
		return n
	}
	return snapshot.DefaultMaxBytes
}
