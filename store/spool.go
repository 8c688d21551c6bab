package store

import (
	"bufio"
	"bytes"
	"context"
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

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// ErrSpoolFull is wrapped by Write's error when the spool had no room left.
var ErrSpoolFull = errors.New("spool full")

// spoolVersion is the "v" of each spool line.
const spoolVersion = 1

// defaultReplayChunk is how many spooled results Replay writes at a time.
const defaultReplayChunk = 5000

// writeReplayChunks is how many chunks Write replays before its own results
// go to the database; past that they join the spool, so that a long backlog
// does not hold up a round. Replay has no such limit.
const writeReplayChunks = 4

// spoolEntry is one line of the spool: a Result as JSON.
type spoolEntry struct {
	V          int                `json:"v"`
	Server     string             `json:"server"`
	At         time.Time          `json:"at"`
	DurationMS int64              `json:"duration_ms"`
	Snapshot   *snapshot.Snapshot `json:"snapshot,omitempty"`
	ErrKind    ErrKind            `json:"err_kind,omitempty"`
	Err        string             `json:"err,omitempty"`
}

// spool is an append-only file of JSON lines, one Result each, that holds
// results while the database is down. Replay moves a mark past the lines it
// has written (results.offset: byte offset and line number); when it reaches
// the end the file is emptied. Lines that cannot be replayed are copied to
// rejected.jsonl. Not safe for concurrent use: Store.mu guards it.
type spool struct {
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

func openSpool(dir string, max int64, logger *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	sp := &spool{
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
func (sp *spool) readMark() (int64, int) {
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
func (sp *spool) pending() bool { return sp.size > sp.offset }

// append adds results to the spool and syncs it to disk. Results that would
// grow the file past max are dropped with a loud log and ErrSpoolFull.
func (sp *spool) append(results []Result) error {
	var buf bytes.Buffer
	if sp.torn {
		buf.WriteByte('\n') // end a line torn by a crash; replay reports it
	}
	var errs []error
	kept := 0
	for i, r := range results {
		line, err := json.Marshal(spoolEntry{
			V:          spoolVersion,
			Server:     r.Server,
			At:         r.At,
			DurationMS: r.Duration.Milliseconds(),
			Snapshot:   r.Snapshot,
			ErrKind:    r.ErrKind,
			Err:        r.Err,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("spool result for %s at %s: %w", r.Server, timeID(r.At), err))
			continue
		}
		if sp.size+int64(buf.Len()+len(line)+1) > sp.max {
			dropped := len(results) - i
			sp.logger.Error("SPOOL FULL: results dropped; the database has been unreachable too long",
				"spool", sp.path, "spool_bytes", sp.size+int64(buf.Len()), "spool_max_bytes", sp.max, "dropped", dropped)
			errs = append(errs, fmt.Errorf("%w: %s holds %d of %d bytes; %d results dropped",
				ErrSpoolFull, sp.path, sp.size+int64(buf.Len()), sp.max, dropped))
			break
		}
		buf.Write(line)
		buf.WriteByte('\n')
		kept++
	}
	if kept == 0 {
		return errors.Join(errs...)
	}
	if err := sp.write(buf.Bytes()); err != nil {
		return errors.Join(append(errs, fmt.Errorf("spool %d results: %w", kept, err))...)
	}
	sp.torn = false
	return errors.Join(errs...)
}

func (sp *spool) write(b []byte) error {
	if sp.f == nil {
		f, err := os.OpenFile(sp.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(sp.path)); err != nil {
			f.Close()
			return err
		}
		sp.f = f
	}
	n, err := sp.f.Write(b)
	sp.size += int64(n)
	if err != nil {
		return err
	}
	return sp.f.Sync()
}

// mark records that everything before off (line number line) is replayed.
func (sp *spool) mark(off int64, line int) error {
	err := writeFileSync(sp.markPath, []byte(fmt.Sprintf("%d %d\n", off, line)))
	if err != nil {
		return fmt.Errorf("mark spool replayed: %w", err)
	}
	sp.offset, sp.line = off, line
	return nil
}

// reset empties the fully replayed spool. The mark goes first: a crash in
// between replays the old lines again, which is harmless, where a mark
// left over a new spool would skip results.
func (sp *spool) reset() error {
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
func (sp *spool) reject(lineNo int, line []byte, reason error) {
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

func (sp *spool) close() error {
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

// spoolLine is one line read back, with where it ends.
type spoolLine struct {
	no     int   // 1-based line number in the file
	end    int64 // offset just past the line
	raw    []byte
	result Result
	err    error // the line is not a valid result
}

// spoolReader reads lines from the replay mark on.
type spoolReader struct {
	f   *os.File
	r   *bufio.Reader
	off int64
	no  int
}

func (sp *spool) reader() (*spoolReader, error) {
	f, err := os.Open(sp.path)
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	if _, err := f.Seek(sp.offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("read spool: %w", err)
	}
	return &spoolReader{f: f, r: bufio.NewReaderSize(f, 1<<20), off: sp.offset, no: sp.line}, nil
}

// next returns the next line, or io.EOF.
func (rd *spoolReader) next() (spoolLine, error) {
	b, err := rd.r.ReadBytes('\n')
	if len(b) == 0 && err != nil {
		if errors.Is(err, io.EOF) {
			return spoolLine{}, io.EOF
		}
		return spoolLine{}, fmt.Errorf("read spool: %w", err)
	}
	rd.no++
	rd.off += int64(len(b))
	l := spoolLine{no: rd.no, end: rd.off, raw: b}
	if b[len(b)-1] != '\n' {
		l.err = errors.New("truncated line (no newline at the end of the file)")
		return l, nil
	}
	l.result, l.err = parseSpoolLine(b)
	return l, nil
}

func (rd *spoolReader) close() { rd.f.Close() }

// parseSpoolLine decodes one spool line strictly.
func parseSpoolLine(b []byte) (Result, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Result{}, errors.New("empty line")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e spoolEntry
	if err := dec.Decode(&e); err != nil {
		return Result{}, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return Result{}, errors.New("decode: trailing data after the entry")
	}
	if e.V != spoolVersion {
		return Result{}, fmt.Errorf("spool entry version %d, want %d", e.V, spoolVersion)
	}
	r := Result{
		Server:   e.Server,
		At:       e.At,
		Duration: time.Duration(e.DurationMS) * time.Millisecond,
		Snapshot: e.Snapshot,
		ErrKind:  e.ErrKind,
		Err:      e.Err,
	}
	return r.normalize()
}

// Replay is the explicit drain of the spool: it writes all the spooled
// results to the database in the order they were spooled and reports how
// many it wrote. Write replays too, before its own results, but at most
// writeReplayChunks chunks of defaultReplayChunk results each, so that a
// long backlog does not hold up a round; call Replay to empty the spool at
// once (before a shutdown, or from a maintenance command). A line that is not
// a valid result, or that the database refuses, is logged with its line
// number, copied to rejected.jsonl next to the spool, and skipped. Replay
// stops with an error when the database fails; what is left stays spooled.
func (s *Store) Replay(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replayLocked(ctx, 0)
}

// replayLocked replays at most maxChunks chunks, or all with 0.
func (s *Store) replayLocked(ctx context.Context, maxChunks int) (int, error) {
	sp := s.spool
	if !sp.pending() {
		return 0, nil
	}
	rd, err := sp.reader()
	if err != nil {
		return 0, err
	}
	defer rd.close()

	written := 0
	for chunks := 0; ; chunks++ {
		if maxChunks > 0 && chunks == maxChunks {
			s.logger.Info("spool partly replayed; the rest follows", "results", written, "spool_bytes_left", sp.size-sp.offset)
			return written, nil
		}
		var chunk []spoolLine
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
			s.dbDown(err)
			s.logger.Warn("spool replay stopped; the rest stays spooled", "replayed", written, "err", err)
			return written, fmt.Errorf("replay spool: %w", err)
		}
		for _, l := range chunk {
			if l.err != nil { // reported once the chunk is past, not on every retry
				sp.reject(l.no, l.raw, l.err)
			}
		}
		if len(chunk) > 0 {
			last := chunk[len(chunk)-1]
			if err := sp.mark(last.end, last.no); err != nil {
				return written, err
			}
		}
		if eof {
			break
		}
	}
	s.dbUp()
	if err := sp.reset(); err != nil {
		return written, err
	}
	s.logger.Info("spool replayed", "results", written)
	return written, nil
}

// replayChunk writes the valid lines of chunk. When the database refuses the
// batch as a whole without being down, it writes them one by one to single
// out and reject the lines at fault.
func (s *Store) replayChunk(ctx context.Context, chunk []spoolLine) (int, error) {
	var lines []spoolLine
	var results []Result
	for _, l := range chunk {
		if l.err == nil {
			lines = append(lines, l)
			results = append(results, l.result)
		}
	}
	if len(results) == 0 {
		return 0, nil
	}
	rejected, err := s.writeDB(ctx, results)
	if err == nil {
		for _, rj := range rejected {
			l := lines[rj.index]
			s.spool.reject(l.no, l.raw, rj.err)
		}
		return len(results) - len(rejected), nil
	}
	if isOutage(err) {
		return 0, err
	}
	written := 0
	for _, l := range lines {
		rejected, err := s.writeDB(ctx, []Result{l.result})
		switch {
		case err != nil && isOutage(err):
			return written, err
		case err != nil:
			s.spool.reject(l.no, l.raw, err)
		case len(rejected) > 0:
			s.spool.reject(l.no, l.raw, rejected[0].err)
		default:
			written++
		}
	}
	return written, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
