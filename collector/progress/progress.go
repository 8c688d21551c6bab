// Package progress reports how far a command that works through many servers
// has got: on a terminal, one status line redrawn in place; elsewhere, a line
// per failed server.
//
// On a terminal the line reads "[37/120] 2 failed  last: web7 (unreachable)"
// and is redrawn with a carriage return after each server, cut to 79
// characters so that it never wraps. Anywhere else (a log file, a pipe)
// nothing can be redrawn, so only failures are printed, one line each as they
// happen ("[37/120] web7 failed: unreachable"): successes would be most of
// the lines and say little. Finish prints "[120/120] done, 2 failed" in both
// modes.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Widths, in characters, that keep the status line on one line of an
// 80-column terminal.
const (
	maxLine   = 79
	maxReason = 40
)

// A Progress counts finished servers and shows the count on w. It is safe
// for concurrent use.
type Progress struct {
	w        io.Writer
	total    int
	terminal bool

	mu       sync.Mutex
	done     int
	failed   int
	finished bool
}

// New returns a Progress for total servers that writes to w. isTerminal says
// whether w is a terminal, where the status line is drawn at once and then
// redrawn in place.
func New(w io.Writer, total int, isTerminal bool) *Progress {
	p := &Progress{w: w, total: total, terminal: isTerminal}
	if isTerminal {
		p.draw(p.count())
	}
	return p
}

// Done records that server finished, and failed with err unless err is nil.
// err's message should be short, such as the kind of failure
// ("unreachable"): only its first line is shown, cut to 40 characters.
// Calls after Finish are ignored.
func (p *Progress) Done(server string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.done++
	reason := "ok"
	if err != nil {
		p.failed++
		reason = clean(err.Error(), maxReason)
	}
	server = clean(server, maxLine)
	switch {
	case p.terminal:
		p.draw(fmt.Sprintf("%s %d failed  last: %s (%s)", p.count(), p.failed, server, reason))
	case err != nil:
		fmt.Fprintf(p.w, "%s %s failed: %s\n", p.count(), server, reason)
	}
}

// Finish prints the final count and ends the status line. Later calls do
// nothing.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	line := fmt.Sprintf("%s done, %d failed", p.count(), p.failed)
	if p.terminal {
		p.draw(line)
		io.WriteString(p.w, "\n")
		return
	}
	fmt.Fprintln(p.w, line)
}

// count returns "[done/total]".
func (p *Progress) count() string {
	return fmt.Sprintf("[%d/%d]", p.done, p.total)
}

// draw replaces the status line with line: back to its start, the text, then
// clear what is left of an older, longer line.
func (p *Progress) draw(line string) {
	if utf8.RuneCountInString(line) > maxLine {
		line = string([]rune(line)[:maxLine-1]) + "…"
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
}

// clean returns the first line of s with control characters replaced, cut
// to max characters: server names and errors may come from anywhere.
func clean(s string, max int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return s
}
