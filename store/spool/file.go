package spool

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/internal/fsutil"

	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/probe/snapshot"
)

// version is the "v" of each spool line.
const version = 1

// entry is one line of the spool: a Result as JSON (see the package doc).
// Its fields and their order make the line format; change neither.
type entry struct {
	V          int                `json:"v"`
	Server     string             `json:"server"`
	At         time.Time          `json:"at"`
	DurationMS int64              `json:"duration_ms"`
	Snapshot   *snapshot.Snapshot `json:"snapshot,omitempty"`
	Kind       monitor.Kind       `json:"err_kind,omitempty"`
	Err        string             `json:"err,omitempty"`
	// ClockSkewMS is monitor.Result.ClockSkew, when it was noted. Added
	// after version 1 was first written; lines without it read as before.
	ClockSkewMS int64 `json:"clock_skew_ms,omitempty"`
	// Slot and Member are monitor.Result's, when set. Added after version
	// 1 was first written; lines without them read as before.
	Slot   *time.Time `json:"slot,omitempty"`
	Member string     `json:"member,omitempty"`
}

// file is the spool on disk: an append-only file of JSON lines, one Result
// each. Replay moves a mark past the lines it has written (results.offset:
// byte offset and line number); when it reaches the end the file is
// emptied. Lines that cannot be replayed are copied to rejected.jsonl. Not
// safe for concurrent use: Spool.mu guards it.
type file struct {
	path     string // results.jsonl
	markPath string // results.offset
	rejPath  string // rejected.jsonl
	max      int64
	logger   *slog.Logger

	f      *os.File // opened for append on first use
	size   int64    // bytes in the file
	torn   bool     // the file does not end with a newline
	offset int64    // bytes replayed
	line   int      // lines replayed
}

func openFile(dir string, max int64, logger *slog.Logger) (*file, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	sp := &file{
		path:     filepath.Join(dir, "results.jsonl"),
		markPath: filepath.Join(dir, "results.offset"),
		rejPath:  filepath.Join(dir, "rejected.jsonl"),
		max:      max,
		logger:   logger,
	}
	f, err := os.Open(sp.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return sp, nil
	case err != nil:
		return nil, fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	sp.size = fi.Size()
	if sp.size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, sp.size-1); err != nil {
			return nil, fmt.Errorf("open spool: %w", err)
		}
		sp.torn = last[0] != '\n'
	}
	sp.offset, sp.line = sp.readMark()
	if sp.pending() {
		logger.Info("spool has results waiting for the database", "spool", sp.path, "spool_bytes", sp.size-sp.offset)
	}
	return sp, nil
}

// readMark returns the replay mark, or the start of the file when there is
// none or it does not fit the file; replaying again is harmless.
func (sp *file) readMark() (int64, int) {
	b, err := os.ReadFile(sp.markPath)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0
	}
	var off int64
	var line int
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			off, err = strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				line, err = strconv.Atoi(f[1])
			}
		} else {
			err = errors.New("want offset and line")
		}
	}
	if err != nil || off < 0 || off > sp.size || line < 0 {
		sp.logger.Warn("spool mark unreadable; replaying the spool from its start", "file", sp.markPath, "err", err)
		return 0, 0
	}
	return off, line
}

// pending reports whether results wait in the spool.
func (sp *file) pending() bool { return sp.size > sp.offset }

// encode returns the spool line of r, which must be normalized, without
// its newline.
func encode(r monitor.Result) ([]byte, error) {
	line, err := json.Marshal(entry{
		V:           version,
		Server:      r.Server,
		At:          r.At,
		DurationMS:  r.Duration.Milliseconds(),
		Snapshot:    r.Snapshot,
		Kind:        r.Kind,
		Err:         r.Error(),
		ClockSkewMS: r.ClockSkew.Milliseconds(),
		Slot:        slotOf(r),
		Member:      r.Member,
	})
	if err != nil {
		return nil, fmt.Errorf("spool result for %s at %s: %w", r.Server, r.At.Format(time.RFC3339Nano), err)
	}
	return line, nil
}

// append adds lines (without their newlines) to the spool in one write and
// syncs it to disk, and returns how many of them it added: the first n.
// Lines that would grow the file past max are not added (ErrSpoolFull, with
// a loud log). When the write fails (a full disk, an I/O error) the file is
// cut back to where it was and none is added.
func (sp *file) append(lines [][]byte) (int, error) {
	var buf bytes.Buffer
	if sp.torn {
		buf.WriteByte('\n') // end a line torn by a crash; replay reports it
	}
	n := 0
	var full error
	for i, l := range lines {
		if sp.size+int64(buf.Len()+len(l)+1) > sp.max {
			dropped := len(lines) - i
			sp.logger.Error("SPOOL FULL: results dropped; the database has been unreachable too long",
				"spool", sp.path, "spool_bytes", sp.size+int64(buf.Len()), "spool_max_bytes", sp.max, "dropped", dropped)
			full = fmt.Errorf("%w: %s holds %d of %d bytes; %d results dropped",
				ErrSpoolFull, sp.path, sp.size+int64(buf.Len()), sp.max, dropped)
			break
		}
		buf.Write(l)
		buf.WriteByte('\n')
		n++
	}
	if n == 0 {
		return 0, full
	}
	if err := sp.write(buf.Bytes()); err != nil {
		return 0, fmt.Errorf("append %d results to %s: %w", n, sp.path, err)
	}
	sp.torn = false
	return n, full
}

// write appends b and syncs the file. On failure it cuts the file back to
// its size before, so that no part of b stays behind.
func (sp *file) write(b []byte) error {
	if sp.f == nil {
		f, err := os.OpenFile(sp.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		if err := fsutil.SyncDir(filepath.Dir(sp.path)); err != nil {
			f.Close()
			return err
		}
		sp.f = f
	}
	_, err := sp.f.Write(b)
	if err == nil {
		err = sp.f.Sync()
	}
	if err != nil {
		if terr := sp.f.Truncate(sp.size); terr != nil {
			// The file keeps a torn line: the next append ends it, and
			// replay reports it.
			sp.torn = true
			if fi, serr := sp.f.Stat(); serr == nil && fi.Mode().IsRegular() {
				sp.size = fi.Size()
			}
		}
		// Open the file anew on the next append: this handle may be in a
		// bad state, or the file replaced meanwhile.
		sp.f.Close()
		sp.f = nil
		return err
	}
	sp.size += int64(len(b))
	return nil
}

// mark records that everything before off (line number line) is replayed.
func (sp *file) mark(off int64, line int) error {
	err := fsutil.WriteSync(sp.markPath, []byte(fmt.Sprintf("%d %d\n", off, line)))
	if err != nil {
		return fmt.Errorf("mark spool replayed: %w", err)
	}
	sp.offset, sp.line = off, line
	return nil
}

// reset empties the fully replayed spool. The mark goes first: a crash in
// between replays the old lines again, which is harmless, where a mark
// left over a new spool would skip results.
func (sp *file) reset() error {
	if err := os.Remove(sp.markPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reset spool: %w", err)
	}
	if err := os.Truncate(sp.path, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reset spool: %w", err)
	}
	sp.size, sp.offset, sp.line, sp.torn = 0, 0, 0, false
	return nil
}

// reject reports a line that cannot be replayed and keeps a copy of it.
func (sp *file) reject(lineNo int, line []byte, reason error) {
	sp.logger.Error("spool line skipped", "file", sp.path, "line", lineNo, "err", reason, "kept_in", sp.rejPath)
	f, err := os.OpenFile(sp.rejPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		line = bytes.TrimRight(line, "\n")
		_, err = f.Write(append(line, '\n'))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		sp.logger.Error("cannot keep a copy of a skipped spool line", "file", sp.rejPath, "err", err)
	}
}

func (sp *file) close() error {
	if sp.f == nil {
		return nil
	}
	err := sp.f.Close()
	sp.f = nil
	if err != nil {
		return fmt.Errorf("close spool: %w", err)
	}
	return nil
}

// line is one line read back, with where it ends.
type line struct {
	no     int   // 1-based line number in the file
	end    int64 // offset just past the line
	raw    []byte
	result monitor.Result
	err    error // the line is not a valid result
}

// reader reads lines from the replay mark on, up to the end of the file
// when it was made: lines appended since are for the next reader.
type reader struct {
	f   *os.File
	r   *bufio.Reader
	off int64
	no  int
}

func (sp *file) reader() (*reader, error) {
	f, err := os.Open(sp.path)
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	if _, err := f.Seek(sp.offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("read spool: %w", err)
	}
	limited := io.LimitReader(f, sp.size-sp.offset)
	return &reader{f: f, r: bufio.NewReaderSize(limited, 1<<20), off: sp.offset, no: sp.line}, nil
}

// next returns the next line, or io.EOF.
func (rd *reader) next() (line, error) {
	b, err := rd.r.ReadBytes('\n')
	if len(b) == 0 && err != nil {
		if errors.Is(err, io.EOF) {
			return line{}, io.EOF
		}
		return line{}, fmt.Errorf("read spool: %w", err)
	}
	rd.no++
	rd.off += int64(len(b))
	l := line{no: rd.no, end: rd.off, raw: b}
	if b[len(b)-1] != '\n' {
		l.err = errors.New("truncated line (no newline at the end of the file)")
		return l, nil
	}
	l.result, l.err = parseLine(b)
	return l, nil
}

func (rd *reader) close() { rd.f.Close() }

// parseLine decodes one spool line strictly, into a normalized Result.
func parseLine(b []byte) (monitor.Result, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return monitor.Result{}, errors.New("empty line")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e entry
	if err := dec.Decode(&e); err != nil {
		return monitor.Result{}, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return monitor.Result{}, errors.New("decode: trailing data after the entry")
	}
	if e.V != version {
		return monitor.Result{}, fmt.Errorf("spool entry version %d, want %d", e.V, version)
	}
	r := monitor.Result{
		Server:   e.Server,
		At:       e.At,
		Duration: time.Duration(e.DurationMS) * time.Millisecond,
		Snapshot: e.Snapshot,
		Kind:     e.Kind,
	}
	if e.Err != "" {
		r.Err = errors.New(e.Err)
	}
	r.ClockSkew = time.Duration(e.ClockSkewMS) * time.Millisecond
	if e.Slot != nil {
		r.Slot = *e.Slot
	}
	r.Member = e.Member
	return r.Normalized()
}

// slotOf returns r's slot for a spool line: nil when it has none.
func slotOf(r monitor.Result) *time.Time {
	if r.Slot.IsZero() {
		return nil
	}
	return &r.Slot
}
