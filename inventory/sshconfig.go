package inventory

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// DefaultSSHConfig is the OpenSSH client configuration read when [defaults]
// does not set ssh_config. A missing default file is no error.
const DefaultSSHConfig = "~/.ssh/config"

// BuiltinOrigin is the origin of a setting no file sets.
const BuiltinOrigin = "built-in default"

// The SSH client config keywords the collector applies. The others (such as
// ProxyCommand, UserKnownHostsFile or HostKeyAlias) are ignored.
var sshKeywords = []string{"HostName", "User", "Port", "IdentityFile", "IdentitiesOnly", "CertificateFile", "ProxyJump"}

// sshConfig is an OpenSSH client configuration file (ssh_config(5)), parsed
// by github.com/kevinburke/ssh_config. That library follows Include
// (relative paths from ~/.ssh, globs, ~) and knows Host and "Match host" /
// "Match all" blocks; it refuses other Match criteria (exec, user, ...), so
// a file that uses them cannot be read, and so is one with a quoted Include
// (the library would split it at its spaces and include nothing). Values
// found through an Include are attributed to the Include line, since the
// library does not expose the included files' positions, and "Match host"
// matches the name as written (OpenSSH matches the HostName).
type sshConfig struct {
	name string // the path as written, for origins: "~/.ssh/config"
	cfg  *ssh_config.Config
}

// readSSHConfig reads the SSH client config at path (as written; ~ is
// expanded). A missing file is nil, nil when missingOK.
func readSSHConfig(path string, env environment, missingOK bool) (*sshConfig, error) {
	p, err := env.expand(path)
	if err != nil {
		if missingOK {
			return nil, nil // no home directory: no default file either
		}
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) && missingOK {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cfg, err := ssh_config.DecodeBytes(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	if line, arg := quotedInclude(data); line > 0 {
		return nil, fmt.Errorf("line %d: Include %s: a quoted path is not supported by the SSH config parser the collector uses "+
			"(kevinburke/ssh_config splits an Include at its spaces and keeps the quotes, so what it names would silently not apply); "+
			"write the path without quotes (it cannot hold spaces)", line, arg)
	}
	return &sshConfig{name: path, cfg: cfg}, nil
}

// quotedInclude returns the line number and argument of the first Include
// of data whose argument holds a double quote; 0 when none does.
func quotedInclude(data []byte) (int, string) {
	for i, line := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(line)
		const kw = "include"
		if len(l) <= len(kw) || !strings.EqualFold(l[:len(kw)], kw) || !strings.ContainsRune(" \t=", rune(l[len(kw)])) {
			continue
		}
		arg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l[len(kw):]), "="))
		if strings.ContainsRune(arg, '"') {
			return i + 1, arg
		}
	}
	return 0, ""
}

// lookup returns the values of keyword for host as OpenSSH takes them: the
// first value found in the blocks that match host, in file order, or every
// value when all is set (IdentityFile, CertificateFile). origin says where
// the (first) value is written.
func (c *sshConfig) lookup(host, keyword string, all bool) (vals []string, origin string) {
	if c == nil {
		return nil, ""
	}
	for _, h := range c.cfg.Hosts {
		if !h.Matches(host) {
			continue
		}
		for _, n := range h.Nodes {
			var got []string
			where := ""
			switch n := n.(type) {
			case *ssh_config.KV:
				if strings.EqualFold(n.Key, keyword) {
					got = []string{n.Value}
					where = fmt.Sprintf("%s line %d (%s)", c.name, n.Pos().Line, hostLabel(h))
				}
			case *ssh_config.Include:
				if v, err := n.GetAll(host, keyword); err == nil && len(v) > 0 {
					got = v
					where = fmt.Sprintf("%s line %d (%s, in %s)", c.name, n.Pos().Line, hostLabel(h), strings.TrimSpace(n.String()))
				}
			}
			if len(got) == 0 {
				continue
			}
			if origin == "" {
				origin = where
			}
			if !all {
				return got[:1], origin
			}
			vals = append(vals, got...)
		}
	}
	return vals, origin
}

// hostLabel names the block h for origins: "Host web*", "Match host db*".
func hostLabel(h *ssh_config.Host) string {
	head, _, _ := strings.Cut(strings.TrimSpace(h.String()), "\n")
	head, _, _ = strings.Cut(head, "#")
	head = strings.TrimSpace(head)
	if f := strings.Fields(head); len(f) > 0 && (strings.EqualFold(f[0], "Host") || strings.EqualFold(f[0], "Match")) {
		return head
	}
	return "before any Host line"
}

// sshTokens are the values of the % tokens of ssh_config(5) that the
// collector expands in HostName, IdentityFile and CertificateFile.
type sshTokens struct {
	home, localUser  string // %d, %u
	host, alias      string // %h (the HostName), %n (as written)
	remoteUser, port string // %r, %p
	localID          string // %i; %l (the local host name) is looked up when used
}

// expand expands a leading ~ and the tokens %%, %d, %h, %i, %l, %n, %p, %r
// and %u in s.
func (t sshTokens) expand(s string) (string, error) {
	if s == "~" || strings.HasPrefix(s, "~/") {
		s = t.home + s[1:]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q ends with a lone %%", s)
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'd':
			b.WriteString(t.home)
		case 'u':
			b.WriteString(t.localUser)
		case 'h':
			b.WriteString(t.host)
		case 'n':
			b.WriteString(t.alias)
		case 'r':
			b.WriteString(t.remoteUser)
		case 'p':
			b.WriteString(t.port)
		case 'l':
			h, err := os.Hostname()
			if err != nil {
				return "", fmt.Errorf("%q: %%l: %w", s, err)
			}
			b.WriteString(h)
		case 'i':
			b.WriteString(t.localID)
		default:
			return "", fmt.Errorf("%q: the token %%%c is not supported (use %%%%, %%d, %%h, %%i, %%l, %%n, %%p, %%r or %%u)", s, s[i])
		}
	}
	return b.String(), nil
}

// applySSH applies the SSH client config entry of alias (the address as
// written) to s: HostName always; User, Port, IdentityFile, IdentitiesOnly,
// CertificateFile and ProxyJump where servers.toml leaves the setting unset.
// set holds the origin of each setting servers.toml sets for s (by its key:
// "user", "port", "identity_file", "jump", "known_hosts"); s.Origins gets
// the origin of every setting.
func (c *sshConfig) applySSH(s *Server, alias string, set map[string]string, env environment) error {
	s.Origins = map[string]string{"address": set["address"]}
	for _, k := range []string{"user", "port", "identity_file", "jump", "known_hosts", "identities_only", "certificate_file"} {
		s.Origins[k] = BuiltinOrigin
		if o, ok := set[k]; ok {
			s.Origins[k] = o
		}
	}
	if c == nil {
		return nil // no SSH client config is read
	}
	home, _ := env.home()
	localUser, _ := env.user()
	t := sshTokens{home: home, localUser: localUser, alias: alias, host: alias, localID: strconv.Itoa(os.Getuid())}

	if v, o := c.lookup(alias, "HostName", false); len(v) > 0 {
		host, err := t.expand(v[0])
		if err != nil {
			return fmt.Errorf("HostName at %s: %w", o, err)
		}
		if err := checkHost(host); err != nil {
			return fmt.Errorf("HostName at %s: %w", o, err)
		}
		s.Alias, s.Address = alias, host
		s.Origins["address"] = o
	}
	t.host = s.Address
	if _, ok := set["user"]; !ok {
		if v, o := c.lookup(alias, "User", false); len(v) > 0 {
			u, err := t.expand(v[0])
			if err != nil {
				return fmt.Errorf("User at %s: %w", o, err)
			}
			s.User, s.Origins["user"] = u, o
		}
	}
	if _, ok := set["port"]; !ok {
		if v, o := c.lookup(alias, "Port", false); len(v) > 0 {
			p, err := strconv.Atoi(v[0])
			if err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("Port %q at %s is not a port from 1 to 65535", v[0], o)
			}
			s.Port, s.Origins["port"] = p, o
		}
	}
	t.remoteUser, t.port = s.User, strconv.Itoa(s.Port)
	if _, ok := set["identity_file"]; !ok {
		if v, o := c.lookup(alias, "IdentityFile", true); len(v) > 0 {
			files, err := expandAll(t, v)
			if err != nil {
				return fmt.Errorf("IdentityFile at %s: %w", o, err)
			}
			s.IdentityFiles, s.Origins["identity_file"] = files, o
		}
	}
	if v, o := c.lookup(alias, "IdentitiesOnly", false); len(v) > 0 {
		switch strings.ToLower(v[0]) {
		case "yes", "true":
			s.IdentitiesOnly = true
		case "no", "false":
		default:
			return fmt.Errorf("IdentitiesOnly %q at %s is neither yes nor no", v[0], o)
		}
		s.Origins["identities_only"] = o
	}
	if v, o := c.lookup(alias, "CertificateFile", true); len(v) > 0 {
		files, err := expandAll(t, v)
		if err != nil {
			return fmt.Errorf("CertificateFile at %s: %w", o, err)
		}
		s.CertificateFiles, s.Origins["certificate_file"] = files, o
	}
	if _, ok := set["jump"]; !ok && !s.IsLocal() {
		if v, o := c.lookup(alias, "ProxyJump", false); len(v) > 0 && !strings.EqualFold(v[0], "none") {
			hops := splitJump(v[0])
			// A ProxyJump that a wildcard block gives the jump host itself
			// is not followed: it would lead to a cycle.
			if len(hops) > 0 && hops[0] != alias && hops[0] != s.Name {
				s.Jump, s.Origins["jump"] = v[0], o
			}
		}
	}
	return nil
}

func expandAll(t sshTokens, vals []string) ([]string, error) {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		x, err := t.expand(v)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out, nil
}

// splitJump splits a jump chain "a,user@b:2222" into its hops, outermost
// first; an ssh:// in front of a hop is dropped.
func splitJump(s string) []string {
	var hops []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimPrefix(strings.TrimSpace(h), "ssh://"); h != "" {
			hops = append(hops, h)
		}
	}
	return hops
}

// A Setting is one SSH setting of a server as it took effect, and where it
// came from.
type Setting struct {
	Key    string `json:"key"`    // as in servers.toml: "user", "identity_file"
	Value  string `json:"value"`  // as used
	Origin string `json:"origin"` // "server entry, servers.toml:12", "[defaults], servers.toml:5", "~/.ssh/config line 4 (Host web*)", BuiltinOrigin
}

// Explain returns s's SSH settings with where each came from, for
// `collector check --explain`.
func (s Server) Explain() []Setting {
	addr := s.Address
	if s.Alias != "" {
		addr = fmt.Sprintf("%s (HostName of %s)", s.Address, s.Alias)
	}
	ids := strings.Join(s.IdentityFiles, ", ")
	if ids == "" {
		ids = "ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa"
	}
	certs := strings.Join(s.CertificateFiles, ", ")
	if certs == "" {
		certs = "KEY-cert.pub next to each key, when present"
	}
	jump := s.Jump
	if jump == "" {
		jump = "none"
	}
	only := "no"
	if s.IdentitiesOnly {
		only = "yes"
	}
	out := []Setting{
		{"address", addr, s.Origins["address"]},
		{"port", strconv.Itoa(s.Port), s.Origins["port"]},
		{"user", s.User, s.Origins["user"]},
		{"identity_file", ids, s.Origins["identity_file"]},
		{"identities_only", only, s.Origins["identities_only"]},
		{"certificate_file", certs, s.Origins["certificate_file"]},
		{"jump", jump, s.Origins["jump"]},
		{"known_hosts", s.KnownHosts, s.Origins["known_hosts"]},
	}
	for i := range out {
		if out[i].Origin == "" {
			out[i].Origin = BuiltinOrigin
		}
	}
	return out
}
