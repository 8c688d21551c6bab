// Package ansible reads an Ansible inventory (the JSON that
// `ansible-inventory --list` prints, or an INI inventory file) and turns its
// hosts into servers.toml [[server]] entries: groups become tags, and the
// connection variables Ansible and the collector share (ansible_host,
// ansible_port, ansible_user, ansible_ssh_private_key_file, a ProxyJump in
// ansible_ssh_common_args) become keys. What cannot be carried over is
// listed per host and variable.
package ansible

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// An Inventory is the hosts and groups of an Ansible inventory, with the
// variables as written: host variables, and each group's own.
type Inventory struct {
	Hosts  []string                     // in the order first seen
	Vars   map[string]map[string]string // host variables, by host
	Groups map[string]*Group            // by name; "all" holds every host
}

// A Group is an Ansible group.
type Group struct {
	Hosts    []string // direct members
	Children []string // child groups
	Vars     map[string]string
}

func newInventory() *Inventory {
	return &Inventory{Vars: map[string]map[string]string{}, Groups: map[string]*Group{}}
}

func (inv *Inventory) group(name string) *Group {
	g := inv.Groups[name]
	if g == nil {
		g = &Group{Vars: map[string]string{}}
		inv.Groups[name] = g
	}
	return g
}

func (inv *Inventory) addHost(host, group string) {
	if _, ok := inv.Vars[host]; !ok {
		inv.Vars[host] = map[string]string{}
		inv.Hosts = append(inv.Hosts, host)
	}
	if group != "" {
		g := inv.group(group)
		if !slices.Contains(g.Hosts, host) {
			g.Hosts = append(g.Hosts, host)
		}
	}
}

// Parse reads an Ansible inventory: JSON when it starts with '{', else INI.
// name is used in error messages.
func Parse(r io.Reader, name string) (*Inventory, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return parseJSON(data, name)
	}
	return parseINI(string(data), name)
}

// jsonGroup is a group in the JSON of ansible-inventory --list.
type jsonGroup struct {
	Hosts    []string       `json:"hosts"`
	Children []string       `json:"children"`
	Vars     map[string]any `json:"vars"`
}

func parseJSON(data []byte, name string) (*Inventory, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: not the JSON of ansible-inventory --list: %w", name, err)
	}
	inv := newInventory()
	var meta struct {
		HostVars map[string]map[string]any `json:"hostvars"`
	}
	if m, ok := raw["_meta"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, fmt.Errorf("%s: _meta: %w", name, err)
		}
	}
	groups := make([]string, 0, len(raw))
	for g := range raw {
		if g != "_meta" {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	for _, g := range groups {
		var jg jsonGroup
		if err := json.Unmarshal(raw[g], &jg); err != nil {
			return nil, fmt.Errorf("%s: group %s: %w", name, g, err)
		}
		grp := inv.group(g)
		grp.Children = append(grp.Children, jg.Children...)
		for k, v := range jg.Vars {
			grp.Vars[k] = scalar(v)
		}
		for _, h := range jg.Hosts {
			inv.addHost(h, g)
		}
	}
	hosts := make([]string, 0, len(meta.HostVars))
	for h := range meta.HostVars {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		inv.addHost(h, "")
		for k, v := range meta.HostVars[h] {
			inv.Vars[h][k] = scalar(v)
		}
	}
	return inv, nil
}

// scalar writes a JSON value as Ansible would template it into a string.
func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// An Entry is one [[server]] of servers.toml made from an Ansible host.
type Entry struct {
	Name         string   `toml:"name"`
	Address      string   `toml:"address"`
	Port         int      `toml:"port,omitzero"`
	User         string   `toml:"user,omitempty"`
	IdentityFile string   `toml:"identity_file,omitempty"`
	Jump         string   `toml:"jump,omitempty"`
	Tags         []string `toml:"tags,omitempty"`
}

// A Skipped is a variable of a host that was not carried over, and why.
type Skipped struct {
	Host, Var, Why string
}

func (s Skipped) String() string { return fmt.Sprintf("%s: %s: %s", s.Host, s.Var, s.Why) }

// The variables that carry over, under each of their names.
var (
	hostVars = []string{"ansible_host", "ansible_ssh_host"}
	portVars = []string{"ansible_port", "ansible_ssh_port"}
	userVars = []string{"ansible_user", "ansible_ssh_user", "ansible_remote_user"}
	keyVars  = []string{"ansible_ssh_private_key_file", "ansible_private_key_file"}
	argVars  = []string{"ansible_ssh_common_args", "ansible_ssh_extra_args"}
)

// nameRE is what servers.toml allows in names and tags.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]*$`)

// Entries turns every host into an Entry, in the order the inventory first
// names them, and lists what it could not carry over. Variables apply as in
// Ansible: those of "all", then of each group from parent to child, then
// the host's own.
func (inv *Inventory) Entries() ([]Entry, []Skipped) {
	var (
		out     []Entry
		skipped []Skipped
		names   = map[string]bool{}
	)
	for _, h := range inv.Hosts {
		vars := inv.effectiveVars(h)
		skip := func(v, why string) { skipped = append(skipped, Skipped{h, v, why}) }
		switch c := vars["ansible_connection"]; c {
		case "", "ssh", "smart", "paramiko", "paramiko_ssh":
		case "local":
		default:
			skip("ansible_connection", fmt.Sprintf("%q is not SSH: host left out", c))
			continue
		}
		e := Entry{Name: h, Address: h}
		if !nameRE.MatchString(e.Name) {
			e.Name = strings.Trim(regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(h, "-"), "-")
			skip("name", fmt.Sprintf("%q is not a usable server name: written as %q", h, e.Name))
		}
		for base, n := e.Name, 2; names[e.Name]; n++ {
			e.Name = fmt.Sprintf("%s-%d", base, n)
		}
		names[e.Name] = true
		if v, _ := first(vars, hostVars); v != "" {
			e.Address = v
		}
		if vars["ansible_connection"] == "local" {
			e.Address = "local"
		}
		if v, k := first(vars, portVars); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				skip(k, fmt.Sprintf("%q is not a port", v))
			} else if p != 22 {
				e.Port = p
			}
		}
		if v, _ := first(vars, userVars); v != "" {
			e.User = v
		}
		if v, _ := first(vars, keyVars); v != "" {
			e.IdentityFile = v
		}
		for _, k := range argVars {
			if v := vars[k]; v != "" {
				jump, rest := proxyJump(v)
				if jump != "" && e.Jump == "" {
					e.Jump = jump
				}
				if rest != "" {
					skip(k, fmt.Sprintf("options other than a jump host are not used: %s", rest))
				}
			}
		}
		if strings.Contains(e.Address, "{{") || strings.Contains(e.User, "{{") || strings.Contains(e.IdentityFile, "{{") || strings.Contains(e.Jump, "{{") {
			skip("templates", "a value holds a Jinja2 template ({{ }}), written as is: render it (ansible-inventory --list does) or edit the entry")
		}
		for _, g := range inv.groupsOf(h) {
			if g == "all" || g == "ungrouped" {
				continue
			}
			if !nameRE.MatchString(g) {
				skip("group "+g, "not a usable tag name: left out")
				continue
			}
			e.Tags = append(e.Tags, g)
		}
		for _, k := range sortedKeys(vars) {
			switch {
			case slices.Contains(hostVars, k), slices.Contains(portVars, k), slices.Contains(userVars, k),
				slices.Contains(keyVars, k), slices.Contains(argVars, k), k == "ansible_connection":
			case k == "ansible_password", k == "ansible_ssh_pass", k == "ansible_become_password", k == "ansible_become_pass":
				skip(k, "passwords are not used: the collector logs in with keys (identity_file, ssh-agent)")
			case strings.HasPrefix(k, "ansible_"):
				skip(k, "no servers.toml key for it")
			}
		}
		out = append(out, e)
	}
	return out, skipped
}

// first returns the value of the first of names set in vars, and its name.
func first(vars map[string]string, names []string) (string, string) {
	for _, n := range names {
		if v := vars[n]; v != "" {
			return v, n
		}
	}
	return "", ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// groupsOf returns the groups host belongs to, directly or through child
// groups, sorted.
func (inv *Inventory) groupsOf(host string) []string {
	var out []string
	for _, g := range inv.groupOrder() {
		if inv.contains(g, host, map[string]bool{}) {
			out = append(out, g)
		}
	}
	return out
}

// groupOrder returns the group names sorted.
func (inv *Inventory) groupOrder() []string {
	names := make([]string, 0, len(inv.Groups))
	for g := range inv.Groups {
		names = append(names, g)
	}
	slices.Sort(names)
	return names
}

// contains reports whether group g holds host, directly or through its
// children (a cycle is not followed twice).
func (inv *Inventory) contains(g, host string, seen map[string]bool) bool {
	grp := inv.Groups[g]
	if grp == nil || seen[g] {
		return false
	}
	seen[g] = true
	if g == "all" || slices.Contains(grp.Hosts, host) {
		return true
	}
	for _, c := range grp.Children {
		if inv.contains(c, host, seen) {
			return true
		}
	}
	return false
}

// depth is how many parents deep group g sits below "all".
func (inv *Inventory) depth(g string) int {
	if g == "all" {
		return 0
	}
	best := 1
	for name, grp := range inv.Groups {
		if name != g && slices.Contains(grp.Children, g) && name != "all" {
			best = max(best, inv.depth(name)+1)
		}
	}
	return best
}

// effectiveVars merges the variables of host's groups, shallow first, and
// its own on top.
func (inv *Inventory) effectiveVars(host string) map[string]string {
	groups := inv.groupsOf(host)
	if g := inv.Groups["all"]; g != nil && !slices.Contains(groups, "all") {
		groups = append(groups, "all")
	}
	slices.SortStableFunc(groups, func(a, b string) int { return inv.depth(a) - inv.depth(b) })
	out := map[string]string{}
	for _, g := range groups {
		for k, v := range inv.Groups[g].Vars {
			out[k] = v
		}
	}
	for k, v := range inv.Vars[host] {
		out[k] = v
	}
	return out
}

// proxyJump finds the jump host in ssh arguments: -J host, -o
// ProxyJump=host, or a ProxyCommand of the simple form "ssh -W %h:%p
// [-q] [-p port] [user@]host". It returns the jump as servers.toml writes
// it and the arguments left over.
func proxyJump(args string) (jump, rest string) {
	fields := splitShell(args)
	var left []string
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		opt := ""
		switch {
		case f == "-J" && i+1 < len(fields):
			jump = fields[i+1]
			i++
			continue
		case strings.HasPrefix(f, "-J"):
			jump = f[2:]
			continue
		case f == "-o" && i+1 < len(fields):
			opt = fields[i+1]
			i++
		case strings.HasPrefix(f, "-o"):
			opt = f[2:]
		default:
			left = append(left, f)
			continue
		}
		key, val, ok := strings.Cut(opt, "=")
		if !ok {
			key, val, _ = strings.Cut(opt, " ")
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "proxyjump":
			jump = strings.TrimSpace(val)
		case "proxycommand":
			if j := proxyCommandJump(val); j != "" {
				jump = j
				continue
			}
			left = append(left, "-o "+opt)
		default:
			left = append(left, "-o "+opt)
		}
	}
	return jump, strings.Join(left, " ")
}

// proxyCommandJump returns the jump of a ProxyCommand "ssh -W %h:%p [-q]
// [-p port] [-l user] [user@]host", or "" for any other command.
func proxyCommandJump(cmd string) string {
	f := splitShell(cmd)
	if len(f) < 3 || f[0] != "ssh" {
		return ""
	}
	var host, user, port string
	forward := false
	for i := 1; i < len(f); i++ {
		switch {
		case f[i] == "-W" && i+1 < len(f) && f[i+1] == "%h:%p":
			forward = true
			i++
		case f[i] == "-q":
		case f[i] == "-p" && i+1 < len(f):
			port = f[i+1]
			i++
		case f[i] == "-l" && i+1 < len(f):
			user = f[i+1]
			i++
		case !strings.HasPrefix(f[i], "-") && host == "":
			host = f[i]
		default:
			return ""
		}
	}
	if !forward || host == "" {
		return ""
	}
	if user != "" && !strings.Contains(host, "@") {
		host = user + "@" + host
	}
	if port != "" {
		host += ":" + port
	}
	return host
}

// WriteTOML writes entries as servers.toml [[server]] tables, after a
// comment naming source.
func WriteTOML(w io.Writer, source string, entries []Entry) error {
	if _, err := fmt.Fprintf(w, "# Imported from %s by `collector import ansible`: %d servers.\n"+
		"# Ansible groups are tags. Paste into servers.toml, or point --config at this file.\n\n", source, len(entries)); err != nil {
		return err
	}
	enc := toml.NewEncoder(w)
	enc.Indent = ""
	return enc.Encode(struct {
		Servers []Entry `toml:"server"`
	}{entries})
}
