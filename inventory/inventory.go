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

	byName map[string]int
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
}

// A Server is one [[server]] of the inventory with defaults applied.
type Server struct {
	Name, Description string
	// Address is the host name or IP address as written, without port and
	// brackets; LocalAddress for the master itself.
	Address string
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
	// Jump is the jump host as written: another server's name, or
	// [user@]host[:port]. Route resolves it.
	Jump string
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
}

func (e *UnknownServerError) Error() string {
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
			errs = append(errs, &UnknownServerError{Name: n, File: inv.Path, Suggestion: suggest(n, known), Known: known})
			continue
		}
		out = append(out, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Route returns the hops that reach s: its jump hosts, outermost first, then
// s itself. A jump that names an inventory entry uses that entry (which may
// have a jump of its own); any other jump is a [user@]host[:port] whose
// missing parts, and SSH settings, come from [defaults].
func (inv *Inventory) Route(s Server) ([]Server, error) {
	hops := []Server{s}
	seen := map[string]bool{s.Name: true}
	for cur := s; cur.Jump != ""; {
		if cur.IsLocal() {
			return nil, fmt.Errorf("route to server '%s': '%s' is the master itself and cannot have a jump host", s.Name, cur.Name)
		}
		next, err := inv.jumpHost(cur)
		if err != nil {
			return nil, fmt.Errorf("route to server '%s': %w", s.Name, err)
		}
		if seen[next.Name] {
			return nil, fmt.Errorf("route to server '%s': jump hosts form a cycle at '%s'", s.Name, next.Name)
		}
		seen[next.Name] = true
		hops = append([]Server{next}, hops...)
		cur = next
	}
	return hops, nil
}

// jumpHost returns the server to go through to reach from.
func (inv *Inventory) jumpHost(from Server) (Server, error) {
	if t, ok := inv.Server(from.Jump); ok {
		if t.IsLocal() {
			return Server{}, fmt.Errorf("jump host '%s' of '%s' is the master itself", t.Name, from.Name)
		}
		return t, nil
	}
	if from.Jump == LocalAddress {
		return Server{}, fmt.Errorf("jump host of '%s' is the master itself", from.Name)
	}
	u, host, port, err := parseJump(from.Jump)
	if err != nil {
		return Server{}, fmt.Errorf("jump host of '%s': %w", from.Name, err)
	}
	d := inv.Defaults
	if u == "" {
		u = d.User
	}
	if port == 0 {
		port = d.Port
	}
	return Server{
		Name:                  from.Jump,
		Address:               host,
		Port:                  port,
		User:                  u,
		IdentityFiles:         d.IdentityFiles,
		IdentityPassphraseEnv: d.IdentityPassphraseEnv,
		KnownHosts:            d.KnownHosts,
		Timeout:               d.Timeout,
		ConnectTimeout:        d.ConnectTimeout,
		Line:                  from.Line,
	}, nil
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
