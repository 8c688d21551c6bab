package remote

import "strings"

// Quote quotes s as one word for a POSIX shell. It puts s in single quotes,
// inside which the shell gives no character a meaning, and writes each
// single quote of s as quote, backslash, quote, quote:
//
//	Quote("it's") == `'it'\''s'`
//	Quote("")     == `''`
//
// s must not contain NUL, which no shell argument can hold.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
