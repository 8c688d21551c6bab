package ansible

import (
	"fmt"
	"strconv"
	"strings"
)

// Ansible's INI inventory is not plain INI, so gopkg.in/ini.v1 does not fit:
// a host line is a host pattern followed by key=value pairs split as a shell
// splits words ("web[01:03] ansible_user=ops note='a b'"), sections are
// "[group]", "[group:vars]" and "[group:children]", and hosts before any
// section are in "ungrouped". parseINI reads that dialect; values are kept
// as strings with their quotes removed.

func parseINI(src, name string) (*Inventory, error) {
	inv := newInventory()
	inv.group("all")
	section, kind := "ungrouped", "hosts"
	for i, line := range strings.Split(src, "\n") {
		n := i + 1
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: section header %q has no ']'", name, n, line)
			}
			section, kind, _ = strings.Cut(strings.TrimSpace(line[1:end]), ":")
			switch kind {
			case "":
				kind = "hosts"
			case "vars", "children":
			default:
				return nil, fmt.Errorf("%s:%d: [%s:%s]: want [group], [group:vars] or [group:children]", name, n, section, kind)
			}
			if section == "" {
				return nil, fmt.Errorf("%s:%d: empty group name", name, n)
			}
			inv.group(section)
			continue
		}
		fields := splitShell(line)
		switch kind {
		case "vars":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: [%s:vars] line %q is not key=value", name, n, section, line)
			}
			inv.group(section).Vars[strings.TrimSpace(k)] = unquote(strings.TrimSpace(v))
		case "children":
			g := inv.group(section)
			inv.group(fields[0])
			g.Children = append(g.Children, fields[0])
		default:
			hosts, err := expandRange(fields[0])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, n, err)
			}
			vars := map[string]string{}
			for _, f := range fields[1:] {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					return nil, fmt.Errorf("%s:%d: %q after host %s is not key=value", name, n, f, fields[0])
				}
				vars[k] = v
			}
			for _, h := range hosts {
				inv.addHost(h, section)
				for k, v := range vars {
					inv.Vars[h][k] = v
				}
			}
		}
	}
	return inv, nil
}

// unquote removes one pair of matching quotes around s.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// splitShell splits s into words as a POSIX shell does for quoting: spaces
// separate words, single quotes keep everything, double quotes keep all but
// backslash escapes, a backslash outside quotes escapes the next character.
// A "#" that starts a word starts a comment.
func splitShell(s string) []string {
	var (
		words []string
		cur   strings.Builder
		in    bool // a word has started
		quote byte
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0:
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '#' && !in:
			return words
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// expandRange expands one Ansible host range in pattern: "web[01:03]" is
// web01, web02, web03; "db-[a:c]" is db-a, db-b, db-c; "[1:9:4]" steps by 4.
func expandRange(pattern string) ([]string, error) {
	open := strings.IndexByte(pattern, '[')
	if open < 0 {
		return []string{pattern}, nil
	}
	end := strings.IndexByte(pattern[open:], ']')
	if end < 0 {
		return nil, fmt.Errorf("host range %q has no ']'", pattern)
	}
	end += open
	parts := strings.Split(pattern[open+1:end], ":")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("host range %q: want [start:end] or [start:end:step]", pattern)
	}
	step := 1
	if len(parts) == 3 {
		s, err := strconv.Atoi(parts[2])
		if err != nil || s < 1 {
			return nil, fmt.Errorf("host range %q: step %q is not a positive number", pattern, parts[2])
		}
		step = s
	}
	var items []string
	lo, hi := parts[0], parts[1]
	a, errA := strconv.Atoi(lo)
	b, errB := strconv.Atoi(hi)
	switch {
	case errA == nil && errB == nil && a <= b:
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		for i := a; i <= b; i += step {
			items = append(items, fmt.Sprintf("%0*d", width, i))
		}
	case len(lo) == 1 && len(hi) == 1 && lo[0] <= hi[0] && isLetter(lo[0]) && isLetter(hi[0]):
		for c := lo[0]; c <= hi[0]; c += byte(step) {
			items = append(items, string(c))
			if int(c)+step > 255 {
				break
			}
		}
	default:
		return nil, fmt.Errorf("host range %q: [%s:%s] is neither numbers nor letters in order", pattern, lo, hi)
	}
	if len(items) > 10000 {
		return nil, fmt.Errorf("host range %q gives %d hosts: too many", pattern, len(items))
	}
	var out []string
	for _, it := range items {
		rest, err := expandRange(pattern[end+1:])
		if err != nil {
			return nil, err
		}
		for _, r := range rest {
			out = append(out, pattern[:open]+it+r)
		}
	}
	return out, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
