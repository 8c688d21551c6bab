package inventory

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// An Error is one problem in an inventory file. Parse returns all problems it
// finds, joined with errors.Join and sorted by line; errors.As finds the first.
type Error struct {
	File string
	Line int // 1-based; 0 when not known
	Col  int // 1-based; set for TOML syntax errors only

	// Table is where the problem is: "" for the top level, "defaults",
	// "server", or the name of another table.
	Table string
	// Server is the server's name when Table is "server"; "#3" for the third
	// entry when it has no usable name.
	Server string
	Key    string // the key the problem is about, if any

	Msg string // what is wrong
	Fix string // how to fix it; may be empty
}

// Error formats e as "<problem> in <where> (<file>:<line>); <fix>",
// or "<file>:<line>:<col>: <problem>" for a TOML syntax error.
func (e *Error) Error() string {
	var b strings.Builder
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Col > 0 {
		fmt.Fprintf(&b, "%s:%d: %s", loc, e.Col, e.Msg)
	} else {
		b.WriteString(e.Msg)
		if w := e.where(); w != "" {
			b.WriteString(" in ")
			b.WriteString(w)
		}
		fmt.Fprintf(&b, " (%s)", loc)
	}
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

func (e *Error) where() string {
	switch {
	case e.Table == "":
		return ""
	case e.Table == "server" && strings.HasPrefix(e.Server, "#"):
		return "server " + e.Server
	case e.Table == "server" && e.Server != "":
		return "server '" + e.Server + "'"
	case e.Table == "server":
		return "a [[server]] entry"
	default:
		return "[" + e.Table + "]"
	}
}

// sortErrors orders errs by line; problems without a line go last.
func sortErrors(errs []*Error) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Line, errs[j].Line
		if a == 0 || b == 0 {
			return a != 0 && b == 0
		}
		return a < b
	})
}

// aliases maps names people write from habit (ssh_config, other tools) to our keys.
var aliases = map[string]string{
	"host":               "address",
	"hostname":           "address",
	"ip":                 "address",
	"addr":               "address",
	"username":           "user",
	"login":              "user",
	"key":                "identity_file",
	"keyfile":            "identity_file",
	"key_file":           "identity_file",
	"identityfile":       "identity_file",
	"identity":           "identity_file",
	"private_key":        "identity_file",
	"proxyjump":          "jump",
	"proxy_jump":         "jump",
	"bastion":            "jump",
	"jump_host":          "jump",
	"jumphost":           "jump",
	"userknownhostsfile": "known_hosts",
	"known_hosts_file":   "known_hosts",
	"tag":                "tags",
	"keyword":            "keywords",
	"servers":            "server",
}

// suggest returns the known key closest to key, or "" when none is close.
func suggest(key string, known []string) string {
	lower := strings.ToLower(key)
	if a, ok := aliases[strings.ReplaceAll(lower, "-", "_")]; ok && slices.Contains(known, a) {
		return a
	}
	best, bestDist := "", -1
	for _, k := range known {
		d := editDistance(lower, strings.ToLower(k))
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist < 0 || bestDist > max(2, len([]rune(key))/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// secretWords mark keys that would hold a secret in the file.
var secretWords = []string{"password", "passwd", "passphrase", "secret", "token", "api_key", "apikey", "private_key_data"}

// isSecretKey reports whether an unknown key looks like it holds a secret.
func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	if strings.HasSuffix(k, "_env") {
		return false
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// secretFix tells how to pass the secret behind key instead, given the keys
// known where it was written.
func secretFix(key string, known []string) string {
	k := strings.ToLower(key)
	var envKeys []string
	for _, kk := range known {
		if strings.HasSuffix(kk, "_env") {
			envKeys = append(envKeys, kk)
		}
	}
	const never = "secrets are never written in this file"
	switch {
	case slices.Contains(known, k+"_env"):
		return fmt.Sprintf("%s: put it in an environment variable and set %s to the variable's name", never, k+"_env")
	case strings.Contains(k, "passphrase") && slices.Contains(known, "identity_passphrase_env"):
		return never + ": put the key's passphrase in an environment variable and set identity_passphrase_env to the variable's name"
	case strings.Contains(k, "passw") && slices.Contains(known, "identity_file"):
		return never + " and SSH password login is not supported: use a key (identity_file or ssh-agent); " +
			"if the key has a passphrase, put it in an environment variable and set identity_passphrase_env to the variable's name"
	case len(envKeys) > 0:
		return fmt.Sprintf("%s: put it in an environment variable and name the variable with a *_env key (%s)", never, strings.Join(envKeys, ", "))
	default:
		return never + ": put it in an environment variable"
	}
}
