package inventory

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// positions knows the line of every table header and key in a TOML file.
//
// BurntSushi/toml keeps one position per dotted key name, so all [[server]]
// entries share the position of the last "server.port" in the file. To point
// each message at the right line, the file is scanned again here. The scan is
// lenient: it only ever runs on text that toml.Decode has accepted.
type positions struct {
	entries []entry
	// at maps "key\x00elem" to the first entry with that key in that element.
	at map[string]int
	// headers holds, per array-of-tables path, the line of each element.
	headers map[string][]int
}

// An entry is one table header or key/value line.
type entry struct {
	key  toml.Key // full dotted path, e.g. server.port
	elem int      // index of the enclosing [[array table]] element; -1 outside one
	line int
}

func atKey(key string, elem int) string { return key + "\x00" + strconv.Itoa(elem) }

// line returns the line of key in element elem (-1 for a plain table), or 0.
func (p *positions) line(key toml.Key, elem int) int {
	if i, ok := p.at[atKey(key.String(), elem)]; ok {
		return p.entries[i].line
	}
	return 0
}

// first returns the line of the first occurrence of key in any element, or 0.
func (p *positions) first(key toml.Key) int {
	k := key.String()
	for _, e := range p.entries {
		if e.key.String() == k {
			return e.line
		}
	}
	return 0
}

// header returns the line of element elem of the array of tables at path, or 0.
func (p *positions) header(path string, elem int) int {
	if h := p.headers[path]; elem >= 0 && elem < len(h) {
		return h[elem]
	}
	return 0
}

// headersWithin returns the header lines of the elements of the array of
// tables at path that belong to element elem of the array of tables at
// parent: those after that element's header and before the next one's, such
// as the [[server.alerts.processes]] of the second [[server]].
func (p *positions) headersWithin(path, parent string, elem int) []int {
	from := p.header(parent, elem)
	if from == 0 {
		return nil
	}
	to := p.header(parent, elem+1)
	var out []int
	for _, l := range p.headers[path] {
		if l > from && (to == 0 || l < to) {
			out = append(out, l)
		}
	}
	return out
}

// scanPositions finds the table headers and keys of a valid TOML document.
// Keys inside inline tables are not listed; the key holding the inline table is.
func scanPositions(src string) *positions {
	s := &scanner{src: src, line: 1}
	p := &positions{at: map[string]int{}, headers: map[string][]int{}}
	var (
		table    toml.Key // current table
		elem     = -1     // element index for table, when inside an array of tables
		arrays   = map[string]int{}
		lastArr  toml.Key
		lastElem = -1
	)
	add := func(e entry) {
		k := atKey(e.key.String(), e.elem)
		if _, dup := p.at[k]; !dup {
			p.at[k] = len(p.entries)
		}
		p.entries = append(p.entries, e)
	}
	for {
		s.skipSpaceAndComments(true)
		if s.eof() {
			return p
		}
		line := s.line
		switch {
		case strings.HasPrefix(s.rest(), "[["):
			s.pos += 2
			table = s.keyUntil("]]")
			k := table.String()
			elem = arrays[k]
			arrays[k]++
			lastArr, lastElem = table, elem
			p.headers[k] = append(p.headers[k], line)
			add(entry{key: table, elem: elem, line: line})
		case s.peek() == '[':
			s.pos++
			table = s.keyUntil("]")
			// A sub-table such as [server.extra] belongs to the last [[server]].
			elem = -1
			if lastArr != nil && hasPrefix(table, lastArr) {
				elem = lastElem
			}
			add(entry{key: table, elem: elem, line: line})
		default:
			key := s.keyUntil("=")
			if len(key) == 0 { // not a key: cannot happen in valid TOML
				s.skipLine()
				continue
			}
			full := append(append(toml.Key{}, table...), key...)
			add(entry{key: full, elem: elem, line: line})
			s.skipValue()
		}
	}
}

func hasPrefix(k, prefix toml.Key) bool {
	if len(prefix) > len(k) {
		return false
	}
	for i := range prefix {
		if k[i] != prefix[i] {
			return false
		}
	}
	return true
}

type scanner struct {
	src  string
	pos  int
	line int
}

func (s *scanner) eof() bool    { return s.pos >= len(s.src) }
func (s *scanner) rest() string { return s.src[s.pos:] }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *scanner) next() byte {
	c := s.src[s.pos]
	s.pos++
	if c == '\n' {
		s.line++
	}
	return c
}

func (s *scanner) skipLine() {
	for !s.eof() && s.next() != '\n' {
	}
}

// skipSpaceAndComments skips blanks and comments, and newlines when newlines is set.
func (s *scanner) skipSpaceAndComments(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case c == '\n' && newlines:
			s.next()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		default:
			return
		}
	}
}

// keyUntil reads a dotted key up to and including end ("=", "]" or "]]").
func (s *scanner) keyUntil(end string) toml.Key {
	var key toml.Key
	for !s.eof() {
		s.skipSpaceAndComments(false)
		switch {
		case strings.HasPrefix(s.rest(), end):
			s.pos += len(end)
			return key
		case s.peek() == '.':
			s.next()
		case s.peek() == '"' || s.peek() == '\'':
			key = append(key, s.quoted())
		case s.peek() == '\n':
			return key
		default:
			start := s.pos
			for !s.eof() && isBare(s.peek()) {
				s.next()
			}
			if s.pos == start { // unexpected byte: give up on this key
				s.next()
				continue
			}
			key = append(key, s.src[start:s.pos])
		}
	}
	return key
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// quoted reads a single-line quoted key and returns its value.
func (s *scanner) quoted() string {
	q := s.next()
	start := s.pos
	for !s.eof() && s.peek() != q && s.peek() != '\n' {
		if q == '"' && s.peek() == '\\' {
			s.next()
		}
		s.next()
	}
	raw := s.src[start:s.pos]
	if !s.eof() && s.peek() == q {
		s.next()
	}
	if q == '\'' {
		return raw
	}
	if v, err := strconv.Unquote(`"` + raw + `"`); err == nil {
		return v
	}
	return raw
}

// skipValue skips a value, including multi-line arrays, inline tables and
// strings, and the rest of its line.
func (s *scanner) skipValue() {
	depth := 0
	for !s.eof() {
		switch c := s.peek(); c {
		case '"', '\'':
			s.skipString()
		case '[', '{':
			depth++
			s.next()
		case ']', '}':
			depth--
			s.next()
		case '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		case '\n':
			s.next()
			if depth <= 0 {
				return
			}
		default:
			s.next()
		}
	}
}

func (s *scanner) skipString() {
	q := s.src[s.pos]
	triple := strings.Repeat(string(q), 3)
	if strings.HasPrefix(s.rest(), triple) {
		s.pos += 3
		for !s.eof() {
			if q == '"' && s.peek() == '\\' {
				s.next()
				if !s.eof() {
					s.next()
				}
				continue
			}
			if strings.HasPrefix(s.rest(), triple) {
				s.pos += 3
				// Up to two more quotes may belong to the string: """a""""".
				for i := 0; i < 2 && s.peek() == q; i++ {
					s.next()
				}
				return
			}
			s.next()
		}
		return
	}
	s.next()
	for !s.eof() && s.peek() != '\n' {
		c := s.next()
		if c == '\\' && q == '"' && !s.eof() {
			s.next()
			continue
		}
		if c == q {
			return
		}
	}
}
