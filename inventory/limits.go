package inventory

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Caps on what an inventory may hold, checked before the file is decoded,
// so that a wrong or hostile file is refused at once instead of after
// seconds of work and hundreds of megabytes.
const (
	// MaxFileSize is the largest servers.toml Load and Parse read, in
	// bytes: 4 MiB, room for about 30,000 servers written out key by key.
	MaxFileSize = 4 << 20
	// MaxServers is the most [[server]] entries one inventory may list.
	MaxServers = 100_000
)

// tooLarge is the error for a file of size bytes (-1: unknown, read
// from a stream) over MaxFileSize.
func tooLarge(file string, size int64) *Error {
	msg := "file is over the 4 MiB limit of servers.toml"
	if size >= 0 {
		msg = fmt.Sprintf("file of %d bytes is over the 4 MiB limit of servers.toml", size)
	}
	return &Error{File: file, Msg: msg, Fix: "is this the right file? 4 MiB holds tens of thousands of servers; split a larger fleet over several collectors"}
}

// countServers counts the [[server]] headers in src, a cheap scan that
// runs before decoding, and returns the line of the first header past
// MaxServers (0 when there are no more than MaxServers). A header-like
// line inside a multi-line string counts too; that can only make a file
// near the cap fail early, never let one through.
func countServers(src []byte) (overLine int) {
	n, line := 0, 0
	for len(src) > 0 {
		line++
		l := src
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			l, src = src[:i], src[i+1:]
		} else {
			src = nil
		}
		if isServerHeader(l) {
			if n++; n > MaxServers {
				return line
			}
		}
	}
	return 0
}

// isServerHeader reports whether line is "[[server]]", allowing blanks
// and quotes around the key and a comment after it.
func isServerHeader(line []byte) bool {
	l := bytes.TrimLeft(line, " \t")
	if !bytes.HasPrefix(l, []byte("[[")) {
		return false
	}
	l = bytes.TrimLeft(l[2:], " \t")
	switch {
	case bytes.HasPrefix(l, []byte("server")):
		l = l[len("server"):]
	case bytes.HasPrefix(l, []byte(`"server"`)), bytes.HasPrefix(l, []byte(`'server'`)):
		l = l[len(`"server"`):]
	default:
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(l, " \t"), []byte("]]"))
}

// tooManyServers is the error for an inventory with more than MaxServers
// entries; line is that of the first entry past the cap, if known.
func tooManyServers(file string, line int) *Error {
	return &Error{File: file, Line: line, Msg: fmt.Sprintf("more than %d [[server]] entries", MaxServers),
		Fix: "split the fleet over several collectors, each with its own servers.toml"}
}

// firstControl returns the first C0 control character (U+0000 to U+001F)
// or DEL (U+007F) in s, and whether there is one.
func firstControl(s string) (rune, bool) {
	i := strings.IndexFunc(s, isControl)
	if i < 0 {
		return 0, false
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return r, true
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// c0Names are the ASCII names of the C0 control characters.
var c0Names = [...]string{
	"NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT (tab)", "LF (newline)", "VT", "FF", "CR (carriage return)", "SO", "SI",
	"DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
}

// controlName names the control character r for messages: "NUL",
// "LF (newline)", "DEL".
func controlName(r rune) string {
	if r >= 0 && int(r) < len(c0Names) {
		return c0Names[r]
	}
	if r == 0x7f {
		return "DEL"
	}
	return fmt.Sprintf("U+%04X", r)
}

// checkControl reports at key of p when value holds a control character,
// as `<what> "<value>" contains a control character (NUL)`; why says where
// the value goes, for the fix. It reports whether there was one.
func (c *checker) checkControl(p place, key, what, value, why string) bool {
	return c.checkControlAt(0, p, key, what, value, why)
}

// checkControlAt is checkControl reporting at line (see reportAt).
func (c *checker) checkControlAt(line int, p place, key, what, value, why string) bool {
	r, ok := firstControl(value)
	if !ok {
		return false
	}
	c.reportAt(line, p, key, fmt.Sprintf("%s %q contains a control character (%s)", what, value, controlName(r)),
		"remove it (a TOML escape such as \\u0000, \\n or \\t writes one): "+why)
	return true
}

// Where the checked strings go, for the fixes of checkControl.
const (
	onCommandLine = "it is passed on the remote command line"
	forProbe      = "keywords are passed to the probe on the remote command line"
	inFileNames   = "it is a file name"
	inNames       = "server names are used in file names, URLs and on the command line"
	toSSH         = "it is sent to the SSH server"
	toDial        = "it is the address to connect to"
	inChannels    = "channel names are used in logs and in the outbox"
)
