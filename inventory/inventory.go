// Package inventory reads servers.toml, the list of servers the collector
// watches, and resolves each entry's SSH settings and route.
package inventory

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Built-in defaults, used where neither [defaults] nor a server sets a key.
const (
	DefaultPort           = 22
	DefaultKnownHosts     = "~/.ssh/known_hosts"
	DefaultProbeDir       = "~/.cache/collector"
	DefaultTimeout        = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultSample         = 1 * time.Second
	// LocalAddress is the address of the master itself: it is probed without SSH.
	LocalAddress = "local"
	// ProbeReserve is the part of a server's timeout kept back from the
	// probe: the collector gives the probe the time left to the deadline less
	// ProbeReserve (at least a second), so that it prints a partial snapshot
	// and the snapshot travels back before the collector gives up. sample +
	// ProbeReserve must therefore be shorter than timeout.
	ProbeReserve = time.Second
)

// DefaultKeywords returns the process keywords used when none are configured.
func DefaultKeywords() []string { return []string{"python"} }

// An Inventory is a parsed servers.toml.
type Inventory struct {
	Path     string
	Defaults Defaults // as written in [defaults], merged over the built-in defaults
	Servers  []Server // in file order, each with defaults applied and validated
	Store    Store    // [store]
	Schedule Schedule // [schedule]
	Alerts   Alerts   // [alerts]
	HTTP     HTTP     // [http]
	Cluster  Cluster  // [cluster]

	byName map[string]int
	// ssh is the SSH client config read (nil when off or missing); env and
	// defaultsSet (the origin of each SSH key [defaults] sets) are what
	// Route needs to resolve jump hosts that are not inventory entries.
	ssh         *sshConfig
	env         environment
	defaultsSet map[string]string
}

// Defaults holds the [defaults] of an inventory merged over the built-in
// defaults: the values a server gets for each key it does not set.
type Defaults struct {
	User                  string // the current OS user unless set
	Port                  int
	IdentityFiles         []string // ~ expanded; empty means ssh-agent and the usual keys
	IdentityPassphraseEnv string
	KnownHosts            string // ~ expanded
	Jump                  string
	Keywords              []string
	ProbeDir              string // kept with ~: it is expanded on the target
	Timeout               time.Duration
	ConnectTimeout        time.Duration
	Sample                time.Duration
	// SSHConfig is the OpenSSH client config file applied to every server
	// (~ expanded), or "" when none is read: ssh_config = "", or the default
	// ~/.ssh/config missing.
	SSHConfig string
}

// A Server is one [[server]] of the inventory with defaults applied.
type Server struct {
	Name, Description string
	// Address is the host name or IP address to connect to, without port
	// and brackets: as written, or the HostName that the SSH client config
	// gives the alias written (see Alias); LocalAddress for the master itself.
	Address string
	// Alias is the address as written when it is a Host alias of the SSH
	// client config that gave Address its HostName; "" otherwise.
	Alias string
	// Port comes from the address (host:port), else the port key, else
	// [defaults], else 22.
	Port int
	User string
	// IdentityFiles are the private keys to offer, ~ expanded. Empty means
	// ssh-agent plus whichever of ~/.ssh/id_ed25519, id_ecdsa and id_rsa
	// exist; the SSH layer resolves that.
	IdentityFiles []string
	// IdentityPassphraseEnv names the environment variable that holds the
	// passphrase of the identity files, if they have one.
	IdentityPassphraseEnv string
	KnownHosts            string // ~ expanded
	// IdentitiesOnly offers only the identity files, not the ssh-agent's
	// keys (IdentitiesOnly yes in the SSH client config).
	IdentitiesOnly bool
	// CertificateFiles are OpenSSH user certificates to offer with the key
	// each certifies (CertificateFile in the SSH client config). A key's
	// KEY-cert.pub is offered without being listed.
	CertificateFiles []string
	// Jump is the jump host as written: another server's name, an alias of
	// the SSH client config, or [user@]host[:port]; or a comma-separated
	// chain of them, outermost first (as ProxyJump). Route resolves it.
	Jump string
	// Origins says where each SSH setting came from, by servers.toml key
	// (address, port, user, identity_file, identities_only,
	// certificate_file, jump, known_hosts); Explain lists them.
	Origins map[string]string
	// Keywords select the processes the probe lists; an empty list (keywords
	// = []) lists none.
	Keywords []string
	Tags     []string
	// ProbeDir is where the probe is cached on the target, kept literally:
	// a leading ~ is expanded on the target.
	ProbeDir       string
	Timeout        time.Duration // the whole probe run, connecting included
	ConnectTimeout time.Duration // dial and SSH handshake
	Sample         time.Duration // CPU sample window passed to the probe
	// Schedule is when the daemon probes this server: the server's own
	// schedule key, else [schedule] cron. CronParser parses it.
	Schedule string
	// Resolution is how often the probe samples in `collector run`'s
	// watch mode, where one probe runs for the whole session and each tick
	// reads the interval since the last: the server's own resolution key,
	// else [schedule] resolution, else DefaultResolution. 0 turns watch
	// mode off: every tick runs the one-shot probe. once and collect always
	// run the one-shot probe.
	Resolution time.Duration
	// Alerts are this server's rules: [alerts] with [server.alerts] on top.
	Alerts AlertRules
	// Line is the line of this server's [[server]] header, for messages. For a
	// jump host built by Route it is the line of the server that names it.
	Line int
}

// IsLocal reports whether s is the master itself, probed without SSH.
func (s Server) IsLocal() bool { return s.Address == LocalAddress }

// HostPort returns the address to dial, such as "[::1]:22".
func (s Server) HostPort() string { return net.JoinHostPort(s.Address, strconv.Itoa(s.Port)) }

// Parse reads an inventory from r; name is the file name used in error
// messages. All problems found are returned together, each an *Error, joined
// with errors.Join and sorted by line. Parse reads at most MaxFileSize
// bytes and refuses a longer input, and an inventory of more than
// MaxServers servers, before decoding it.
func Parse(r io.Reader, name string) (*Inventory, error) {
	return parse(r, name, osEnvironment())
}

// Load reads the inventory file at path, expanding a leading ~. A file
// larger than MaxFileSize is refused before it is read.
func Load(path string) (*Inventory, error) {
	return load(path, osEnvironment())
}

func load(path string, env environment) (*Inventory, error) {
	p, err := env.expand(path)
	if err != nil {
		return nil, fmt.Errorf("load inventory %s: %w", path, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("load inventory: %w", err)
	}
	defer f.Close()
	// Refuse an oversized file before reading it; parse caps what it
	// reads too, for files whose size stat does not know.
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileSize {
		return nil, tooLarge(p, fi.Size())
	}
	return parse(f, p, env)
}

// Server returns the server called name.
func (inv *Inventory) Server(name string) (Server, bool) {
	i, ok := inv.byName[name]
	if !ok {
		return Server{}, false
	}
	return inv.Servers[i], true
}

// An UnknownServerError is returned by Select for a name not in the inventory.
type UnknownServerError struct {
	Name       string
	File       string
	Suggestion string   // the closest known name, or ""
	Known      []string // all known names, in file order
	IsTag      bool     // Name is no server's name but some server's tag
}

func (e *UnknownServerError) Error() string {
	if e.IsTag {
		return fmt.Sprintf("unknown server '%s' (it is a tag: use --tag %s)", e.Name, e.Name)
	}
	msg := fmt.Sprintf("unknown server '%s' in %s", e.Name, e.File)
	switch {
	case e.Suggestion != "":
		return msg + fmt.Sprintf("; did you mean '%s'?", e.Suggestion)
	case len(e.Known) == 0:
		return msg + "; it lists no servers"
	case len(e.Known) > 10:
		return msg + "; known servers: " + strings.Join(e.Known[:10], ", ") + ", ..."
	default:
		return msg + "; known servers: " + strings.Join(e.Known, ", ")
	}
}

// Select returns the named servers in the order given, or all servers when
// names is empty. A name given twice is returned once. Each unknown name is
// an *UnknownServerError that suggests the closest known name.
func (inv *Inventory) Select(names []string) ([]Server, error) {
	if len(names) == 0 {
		return append([]Server(nil), inv.Servers...), nil
	}
	known := make([]string, len(inv.Servers))
	for i, s := range inv.Servers {
		known[i] = s.Name
	}
	var (
		out  []Server
		errs []error
		seen = map[string]bool{}
	)
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		s, ok := inv.Server(n)
		if !ok {
			errs = append(errs, &UnknownServerError{Name: n, File: inv.Path, Suggestion: suggest(n, known), Known: known,
				IsTag: slices.Contains(inv.Tags(), n)})
			continue
		}
		out = append(out, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Tags returns every tag of the inventory's servers, sorted.
func (inv *Inventory) Tags() []string {
	var tags []string
	for _, s := range inv.Servers {
		for _, t := range s.Tags {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
	}
	slices.Sort(tags)
	return tags
}

// Tagged returns the servers that have any of tags, in file order. A tag no
// server has is an error that lists the tags there are.
func (inv *Inventory) Tagged(tags []string) ([]Server, error) {
	known := inv.Tags()
	for _, t := range tags {
		if !slices.Contains(known, t) {
			msg := fmt.Sprintf("no server in %s has the tag '%s'", inv.Path, t)
			if s := suggest(t, known); s != "" {
				return nil, fmt.Errorf("%s; did you mean '%s'?", msg, s)
			}
			if len(known) == 0 {
				return nil, errors.New(msg + "; no server has tags")
			}
			return nil, fmt.Errorf("%s; tags: %s", msg, strings.Join(known, ", "))
		}
	}
	var out []Server
	for _, s := range inv.Servers {
		if slices.ContainsFunc(s.Tags, func(t string) bool { return slices.Contains(tags, t) }) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Route returns the hops that reach s: its jump hosts, outermost first, then
// s itself. A jump may be a chain "a,b" (as ProxyJump): b is reached through
// a, and only a's own jump, if any, is followed. A hop that names an
// inventory entry uses that entry; any other is an alias of the SSH client
// config or a [user@]host[:port], whose settings come from [defaults], then
// the SSH client config, as for a server.
func (inv *Inventory) Route(s Server) ([]Server, error) {
	hops, err := inv.route(s, map[string]bool{s.Name: true})
	if err != nil {
		return nil, fmt.Errorf("route to server '%s': %w", s.Name, err)
	}
	return hops, nil
}

func (inv *Inventory) route(cur Server, seen map[string]bool) ([]Server, error) {
	if cur.Jump == "" {
		return []Server{cur}, nil
	}
	if cur.IsLocal() {
		return nil, fmt.Errorf("'%s' is the master itself and cannot have a jump host", cur.Name)
	}
	var hops []Server
	for i, el := range splitJump(cur.Jump) {
		next, err := inv.jumpHost(cur, el)
		if err != nil {
			return nil, err
		}
		if seen[next.Name] {
			return nil, fmt.Errorf("jump hosts form a cycle at '%s'", next.Name)
		}
		seen[next.Name] = true
		if i > 0 {
			next.Jump = "" // reached through the hop before it
			hops = append(hops, next)
			continue
		}
		outer, err := inv.route(next, seen)
		if err != nil {
			return nil, err
		}
		hops = append(hops, outer...)
	}
	return append(hops, cur), nil
}

// jumpHost returns the server el (one hop of from's jump) names.
func (inv *Inventory) jumpHost(from Server, el string) (Server, error) {
	if t, ok := inv.Server(el); ok {
		if t.IsLocal() {
			return Server{}, fmt.Errorf("jump host '%s' of '%s' is the master itself", t.Name, from.Name)
		}
		return t, nil
	}
	if el == LocalAddress {
		return Server{}, fmt.Errorf("jump host of '%s' is the master itself", from.Name)
	}
	u, host, port, err := parseJump(el)
	if err != nil {
		return Server{}, fmt.Errorf("jump host of '%s': %w", from.Name, err)
	}
	d := inv.Defaults
	h := Server{
		Name:                  el,
		Address:               host,
		Port:                  d.Port,
		User:                  d.User,
		IdentityFiles:         d.IdentityFiles,
		IdentityPassphraseEnv: d.IdentityPassphraseEnv,
		KnownHosts:            d.KnownHosts,
		Timeout:               d.Timeout,
		ConnectTimeout:        d.ConnectTimeout,
		Line:                  from.Line,
	}
	set := map[string]string{"address": "jump of '" + from.Name + "'"}
	for k, o := range inv.defaultsSet {
		if k != "jump" { // [defaults] jump is not the jump host's own
			set[k] = o
		}
	}
	if u != "" {
		h.User, set["user"] = u, set["address"]
	}
	if port != 0 {
		h.Port, set["port"] = port, set["address"]
	}
	if err := inv.ssh.applySSH(&h, host, set, inv.env); err != nil {
		return Server{}, fmt.Errorf("jump host '%s' of '%s': %w", el, from.Name, err)
	}
	return h, nil
}

// environment is what parsing needs from the machine it runs on.
type environment struct {
	home func() (string, error) // the user's home directory, for ~
	user func() (string, error) // the current OS user, the default SSH user
}

func osEnvironment() environment {
	return environment{home: os.UserHomeDir, user: currentUser}
}

func currentUser() (string, error) {
	u, err := user.Current()
	if err == nil && u.Username != "" {
		return u.Username, nil
	}
	for _, v := range []string{"USER", "LOGNAME"} {
		if name := os.Getenv(v); name != "" {
			return name, nil
		}
	}
	if err == nil {
		err = errors.New("no user name")
	}
	return "", fmt.Errorf("look up current user: %w", err)
}

// expand replaces a leading "~" or "~/" in path with the home directory.
func (env environment) expand(path string) (string, error) {
	if path != "~" && !strings.HasPrefix(path, "~/") {
		if strings.HasPrefix(path, "~") {
			return "", fmt.Errorf("%q: only ~ and ~/... are expanded, not ~user", path)
		}
		return path, nil
	}
	home, err := env.home()
	if err != nil {
		return "", fmt.Errorf("expand ~ in %q: %w", path, err)
	}
	if home == "" {
		return "", fmt.Errorf("expand ~ in %q: home directory unknown", path)
	}
	return filepath.Join(home, path[1:]), nil
}
