package inventory

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// checker collects the problems of one file.
type checker struct {
	file string
	env  environment
	pos  *positions
	md   toml.MetaData
	errs []*Error
	// failed holds atKey(table, elem) of tables that did not decode fully.
	failed map[string]bool
	// names holds the name written in each [[server]] entry, for messages.
	names []string
}

// place is where in the file a check happens.
type place struct {
	table  string // "defaults", "server", ...
	elem   int    // index of the [[server]] entry; -1 for a plain table
	server string // for messages: the name, or "#3"
}

func (p place) path(key string) toml.Key {
	if key == "" {
		return toml.Key{p.table}
	}
	return toml.Key{p.table, key}
}

// report records a problem with key (may be "") at p.
func (c *checker) report(p place, key, msg, fix string) {
	line := 0
	if key != "" {
		line = c.pos.line(p.path(key), p.elem)
	}
	if line == 0 {
		line = c.headerLine(p)
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Table: p.table, Server: p.server, Key: key, Msg: msg, Fix: fix})
}

// reportAt records a problem at line, or where report would when line is 0.
// It is for entries of an array of tables written inside another table, such
// as [[alerts.webhook]], whose problems are reported against the key that
// holds them (webhook) but at the entry's own header.
func (c *checker) reportAt(line int, p place, key, msg, fix string) {
	if line == 0 {
		c.report(p, key, msg, fix)
		return
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Table: p.table, Server: p.server, Key: key, Msg: msg, Fix: fix})
}

// entryLines returns the header lines of the entries of the array of tables
// under key at p, in order: [[alerts.webhook]] for key webhook of [alerts],
// [[server.alerts.processes]] for key alerts.processes of a server. It is
// empty when the array is written inline (processes = [{...}]).
func (c *checker) entryLines(p place, key string) []int {
	path := p.table + "." + key
	if p.elem >= 0 {
		return c.pos.headersWithin(path, p.table, p.elem)
	}
	return c.pos.headers[path]
}

func (c *checker) headerLine(p place) int {
	if p.elem >= 0 {
		return c.pos.header(p.table, p.elem)
	}
	return c.pos.line(toml.Key{p.table}, -1)
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	sortErrors(c.errs)
	errs := make([]error, len(c.errs))
	for i, e := range c.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func parse(r io.Reader, name string, env environment) (*Inventory, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read inventory %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(name, -1)
	}
	if line := countServers(data); line > 0 {
		return nil, tooManyServers(name, line)
	}
	src := string(data)
	c := &checker{file: name, env: env, failed: map[string]bool{}}

	var top map[string]toml.Primitive
	md, err := toml.Decode(src, &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: name, Line: pe.Position.Line, Col: max(pe.Position.Col, 1), Msg: pe.Message}
		}
		return nil, &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	c.md = md
	c.pos = scanPositions(src)

	var f file
	c.decode(top, &f)
	c.unknownKeys(top)
	inv := c.build(&f)
	if err := c.err(); err != nil {
		return nil, err
	}
	inv.Path = name
	inv.Store.resolveDataDir(name)
	return inv, nil
}

// decode decodes each top-level table of top into the matching field of f,
// and each entry of an array of tables on its own, so that one bad value
// neither hides the others nor gets the line of another entry.
func (c *checker) decode(top map[string]toml.Primitive, f *file) {
	rv := reflect.ValueOf(f).Elem()
	for i := range rv.NumField() {
		key, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("toml"), ",")
		prim, ok := top[key]
		if !ok {
			continue
		}
		fv := rv.Field(i)
		if fv.Kind() != reflect.Slice || fv.Type().Elem().Kind() != reflect.Struct {
			if err := c.md.PrimitiveDecode(prim, fv.Addr().Interface()); err != nil {
				c.decodeError(key, -1, err)
			}
			continue
		}
		var elems []toml.Primitive
		if err := c.md.PrimitiveDecode(prim, &elems); err != nil {
			c.decodeError(key, -1, err)
			continue
		}
		if key == "server" && len(elems) > MaxServers { // written inline: server = [{...}, ...]
			c.errs = append(c.errs, tooManyServers(c.file, c.pos.first(toml.Key{key})))
			c.failed[atKey(key, -1)] = true
			continue
		}
		if key == "server" {
			// Names first, so that messages about any entry can use them.
			c.names = make([]string, len(elems))
			for j, e := range elems {
				var n struct {
					Name string `toml:"name"`
				}
				if c.md.PrimitiveDecode(e, &n) == nil {
					c.names[j] = n.Name
				}
			}
		}
		slice := reflect.MakeSlice(fv.Type(), len(elems), len(elems))
		for j, e := range elems {
			if err := c.md.PrimitiveDecode(e, slice.Index(j).Addr().Interface()); err != nil {
				c.decodeError(key, j, err)
			}
		}
		fv.Set(slice)
	}
}

var (
	lastKeyRE  = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)
	mismatchRE = regexp.MustCompile(`(?:TOML value has type|but found) ([^;]+?)(?:;|$)`)
)

// decodeError records err from decoding table (entry elem of it).
func (c *checker) decodeError(table string, elem int, err error) {
	c.failed[atKey(table, elem)] = true
	var (
		lastKey, msg string
		pe           toml.ParseError
		badValue     bool
	)
	if errors.As(err, &pe) {
		lastKey, msg, badValue = pe.LastKey, pe.Message, true
	} else if m := lastKeyRE.FindStringSubmatch(err.Error()); m != nil {
		lastKey, msg = m[1], m[2]
	} else {
		msg = strings.TrimPrefix(err.Error(), "toml: ")
	}
	path := toml.Key(strings.Split(lastKey, "."))
	if lastKey == "" {
		path = toml.Key{table}
	}
	key := path[len(path)-1]
	p := place{table: table, elem: elem, server: c.serverLabel(table, elem)}
	e := &Error{File: c.file, Table: table, Server: p.server, Key: key, Fix: typeHint(key, fieldType(path))}
	if len(path) == 1 {
		e.Table, e.Server = "", ""
	}
	switch {
	case badValue:
		e.Msg = fmt.Sprintf("bad value for '%s': %s", key, msg)
	case mismatchRE.MatchString(msg):
		e.Msg = fmt.Sprintf("wrong type for '%s': found %s", key, tomlTypeName(mismatchRE.FindStringSubmatch(msg)[1]))
	default:
		e.Msg = fmt.Sprintf("%s for '%s'", msg, key)
	}
	e.Line = c.pos.line(path, elem)
	if e.Line == 0 {
		e.Line = c.headerLine(p)
	}
	if e.Line == 0 && elem < 0 {
		e.Line = c.pos.first(path)
	}
	c.errs = append(c.errs, e)
}

// tomlTypeName turns the Go type of a decoded TOML value into its TOML name.
func tomlTypeName(goType string) string {
	switch strings.TrimSpace(goType) {
	case "string":
		return "a string"
	case "int64":
		return "an integer"
	case "float64":
		return "a float"
	case "bool":
		return "a boolean"
	case "[]any", "[]interface {}":
		return "an array"
	case "map[string]any", "map[string]interface {}":
		return "a table"
	case "[]map[string]any", "[]map[string]interface {}":
		return "an array of tables"
	case "time.Time", "toml.LocalDate", "toml.LocalTime", "toml.LocalDatetime":
		return "a date or time"
	}
	return goType
}

// serverLabel names entry elem of table for messages: its name, or "#3"
// for the third entry when it has none or one with control characters.
func (c *checker) serverLabel(table string, elem int) string {
	if table != "server" || elem < 0 {
		return ""
	}
	if elem < len(c.names) && c.names[elem] != "" {
		if _, bad := firstControl(c.names[elem]); !bad {
			return c.names[elem]
		}
	}
	return fmt.Sprintf("#%d", elem+1)
}

// unknownKeys reports every key the schema does not know, with the closest
// known key. Keys are found by scanning the file, so each occurrence gets its
// own line; keys the scan cannot see (inside inline tables) come from
// MetaData.Undecoded.
func (c *checker) unknownKeys(top map[string]toml.Primitive) {
	type seenKey struct {
		table, key string
		elem       int
	}
	seen := map[seenKey]bool{}    // each unknown key once per entry
	anyElem := map[seenKey]bool{} // the same, ignoring the entry
	check := func(path toml.Key, elem, line int) {
		table, unknown, known, ok := schemaLookup(path)
		if !ok {
			return
		}
		if len(table) == 0 || !fieldIsArray(table[0]) {
			elem = -1
		}
		k, k0 := seenKey{table.String(), unknown, elem}, seenKey{table.String(), unknown, 0}
		if seen[k] || (line == 0 && anyElem[k0]) {
			return
		}
		if line == 0 && len(table) > 0 {
			line = c.pos.first(table) // e.g. the key holding an inline table
		}
		seen[k], anyElem[k0] = true, true
		c.unknownKey(table, unknown, known, elem, line)
	}
	for _, e := range c.pos.entries {
		check(e.key, e.elem, e.line)
	}
	for _, k := range c.md.Undecoded() {
		check(k, -1, 0)
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		check(toml.Key{k}, -1, 0)
	}
}

// fieldIsArray reports whether the top-level key holds an array of tables.
func fieldIsArray(key string) bool {
	for _, f := range tableKeys(reflect.TypeFor[file]()) {
		if f.key == key {
			return f.typ.Kind() == reflect.Slice
		}
	}
	return false
}

func (c *checker) unknownKey(table toml.Key, key string, known []string, elem, line int) {
	e := &Error{File: c.file, Line: line, Table: table.String(), Key: key, Msg: fmt.Sprintf("unknown key '%s'", key)}
	if len(table) == 0 {
		switch c.md.Type(key) {
		case "Hash":
			e.Msg = fmt.Sprintf("unknown table [%s]", key)
		case "ArrayHash":
			e.Msg = fmt.Sprintf("unknown table [[%s]]", key)
		default:
			e.Msg = fmt.Sprintf("unknown top-level key '%s'", key)
		}
	}
	if len(table) > 0 {
		e.Server = c.serverLabel(table[0], elem)
	}
	switch {
	case isSecretKey(key):
		e.Fix = secretFix(key, known)
	case elsewhere(table, key) != "":
		e.Fix = elsewhere(table, key)
	default:
		if s := suggest(key, known); s != "" {
			if len(table) == 0 {
				e.Fix = fmt.Sprintf("did you mean %s?", tableLabel(s))
			} else {
				e.Fix = fmt.Sprintf("did you mean '%s'?", s)
			}
		} else if len(table) == 0 {
			labels := make([]string, len(known))
			for i, k := range known {
				labels[i] = tableLabel(k)
			}
			e.Fix = "the file has only " + strings.Join(labels, " and ")
		}
	}
	c.errs = append(c.errs, e)
}

// tableLabel writes a top-level table as it appears in the file.
func tableLabel(key string) string {
	if fieldIsArray(key) {
		return "[[" + key + "]]"
	}
	return "[" + key + "]"
}

// elsewhere says which other tables accept key, when table does not.
func elsewhere(table toml.Key, key string) string {
	var where []string
	for _, f := range tableKeys(reflect.TypeFor[file]()) {
		if len(table) == 1 && table[0] == f.key {
			continue
		}
		t, ok := tableType(f.typ)
		if !ok {
			continue
		}
		if slices.Contains(keyNames(tableKeys(t)), key) {
			where = append(where, tableLabel(f.key))
		}
	}
	if len(where) == 0 {
		return ""
	}
	return fmt.Sprintf("'%s' can only be set in %s", key, strings.Join(where, " or "))
}

// build validates f and turns it into an Inventory.
func (c *checker) build(f *file) *Inventory {
	dp := place{table: "defaults", elem: -1}
	merged := merge(f.Defaults.settings, builtin())
	if !c.failed[atKey("defaults", -1)] { // else values may be half decoded
		c.checkSettings(dp, f.Defaults.settings)
		c.checkTimes(dp, f.Defaults.settings, merged, false)
	}

	osUser, userErr := "", error(nil)
	if merged.User == nil {
		osUser, userErr = c.env.user()
	}
	defaults := c.resolveDefaults(dp, merged, osUser)

	inv := &Inventory{Defaults: defaults, byName: map[string]int{}, env: c.env}
	if !c.failed[atKey("defaults", -1)] {
		inv.ssh, inv.Defaults.SSHConfig = c.loadSSHConfig(dp, f.Defaults.SSHConfig)
	}
	inv.defaultsSet = c.setOrigins(dp, f.Defaults.settings, 0)
	// A table that did not decode fully has been reported; its half-decoded
	// values would only add confusing errors.
	if !c.failed[atKey("store", -1)] {
		inv.Store = c.buildStore(f.Store)
	}
	if !c.failed[atKey("schedule", -1)] {
		inv.Schedule = c.buildSchedule(f.Schedule)
	}
	inv.Alerts = Alerts{Rules: DefaultAlertRules(), Repeat: DefaultAlertRepeat}
	if !c.failed[atKey("alerts", -1)] {
		inv.Alerts = c.buildAlerts(f.Alerts)
	}
	if !c.failed[atKey("http", -1)] {
		inv.HTTP = c.buildHTTP(f.HTTP)
	}
	inv.Cluster = Cluster{Lease: DefaultLease}
	if !c.failed[atKey("cluster", -1)] {
		inv.Cluster = c.buildCluster(f.Cluster)
	}
	metas := make([]serverMeta, 0, len(f.Servers))
	anyFailed := len(c.failed) > 0
	var noUser []place // servers left without an SSH user
	for i, rs := range f.Servers {
		if c.failed[atKey("server", i)] {
			continue
		}
		s, m := c.buildServer(i, rs, merged, defaults, inv)
		if s.User == "" && !s.IsLocal() && userErr != nil {
			noUser = append(noUser, m.place)
		}
		if first, dup := inv.byName[s.Name]; dup && s.Name != "" {
			c.report(m.place, "name", "duplicate name",
				fmt.Sprintf("'%s' is already used at %s:%d; server names must be unique", s.Name, c.file, inv.Servers[first].Line))
			continue
		}
		if s.Name != "" {
			inv.byName[s.Name] = len(inv.Servers)
		}
		s.Alerts = inv.Alerts.Rules
		if rs.Alerts != nil {
			s.Alerts = c.applyRules(m.place, *rs.Alerts, inv.Alerts.Rules)
		}
		s.Schedule = inv.Schedule.Cron
		if rs.Schedule != nil {
			s.Schedule = *rs.Schedule
			c.checkCron(m.place, "schedule", s.Schedule)
		}
		c.buildResolution(&s, m.place, rs, inv.Schedule)
		inv.Servers = append(inv.Servers, s)
		metas = append(metas, m)
	}
	c.reportNoUser(noUser, userErr)
	if !anyFailed {
		c.checkJumps(inv, metas, f.Defaults.Jump)
	}
	return inv
}

// reportNoUser reports once, at the first of them, the servers left without
// an SSH user because the OS user could not be found (err).
func (c *checker) reportNoUser(servers []place, err error) {
	switch len(servers) {
	case 0:
		return
	case 1:
		c.report(servers[0], "", fmt.Sprintf("no SSH user (%s)", err), `set user = "..." in [defaults] or in this server`)
		return
	}
	const most = 5
	var names []string
	for _, p := range servers[:min(len(servers), most)] {
		if strings.HasPrefix(p.server, "#") {
			names = append(names, p.server)
		} else {
			names = append(names, "'"+p.server+"'")
		}
	}
	if len(servers) > most {
		names = append(names, "...")
	}
	c.report(servers[0], "", fmt.Sprintf("no SSH user (%s) for %d servers (%s)", err, len(servers), strings.Join(names, ", ")),
		`set user = "..." in [defaults], or in each of them`)
}

// serverMeta is what checks need to know about a server beyond Server.
type serverMeta struct {
	place
	jumpInherited bool // Jump came from [defaults]
}

// builtin returns the built-in defaults.
func builtin() settings {
	d := func(v time.Duration) *Duration { x := Duration(v); return &x }
	return settings{
		Port:           ptr(DefaultPort),
		KnownHosts:     ptr(DefaultKnownHosts),
		Keywords:       ptr(DefaultKeywords()),
		Timeout:        d(DefaultTimeout),
		ConnectTimeout: d(DefaultConnectTimeout),
		Sample:         d(DefaultSample),
		ProbeDir:       ptr(DefaultProbeDir),
	}
}

func ptr[T any](v T) *T { return &v }

// merge returns over with each unset (nil) field taken from under.
func merge(over, under settings) settings {
	out := over
	ov, uv := reflect.ValueOf(&out).Elem(), reflect.ValueOf(under)
	for i := range ov.NumField() {
		if ov.Field(i).IsNil() {
			ov.Field(i).Set(uv.Field(i))
		}
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// resolveDefaults turns merged settings into Defaults, expanding ~. Problems
// are reported at p.
func (c *checker) resolveDefaults(p place, s settings, osUser string) Defaults {
	d := Defaults{
		User:                  deref(s.User),
		Port:                  deref(s.Port),
		IdentityPassphraseEnv: deref(s.IdentityPassphraseEnv),
		Jump:                  deref(s.Jump),
		Keywords:              slices.Clone(deref(s.Keywords)),
		ProbeDir:              deref(s.ProbeDir),
		Timeout:               time.Duration(deref(s.Timeout)),
		ConnectTimeout:        time.Duration(deref(s.ConnectTimeout)),
		Sample:                time.Duration(deref(s.Sample)),
	}
	if d.User == "" {
		d.User = osUser
	}
	for _, f := range deref(s.IdentityFile) {
		if f == "" {
			continue // reported by checkSettings
		}
		x, err := c.env.expand(f)
		if err != nil {
			c.report(p, "identity_file", fmt.Sprintf("bad identity_file: %s", err), "write the full path")
			continue
		}
		d.IdentityFiles = append(d.IdentityFiles, x)
	}
	kh := deref(s.KnownHosts)
	if kh != "" {
		x, err := c.env.expand(kh)
		if err != nil {
			c.report(p, "known_hosts", fmt.Sprintf("bad known_hosts: %s", err), "write the full path")
		}
		d.KnownHosts = x
	}
	return d
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]*$`)
	envRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const nameFix = "use only letters, digits, '.', '-' and '_', and do not start with '-', so the name can be typed on the command line"

// checkSettings checks the keys written in s, at p.
func (c *checker) checkSettings(p place, s settings) {
	if s.User != nil {
		switch u := *s.User; {
		case u == "":
			c.report(p, "user", "empty user", "remove the key to use the default user")
		case c.checkControl(p, "user", "user", u, toSSH):
		case strings.ContainsAny(u, "@:") || strings.IndexFunc(u, isSpaceOrControl) >= 0:
			c.report(p, "user", fmt.Sprintf("user %q contains '@', ':', spaces or control characters", u), "write the user name only; the host goes in address")
		}
	}
	if s.Port != nil && (*s.Port < 1 || *s.Port > 65535) {
		c.report(p, "port", fmt.Sprintf("port %d is out of range", *s.Port), "use a port from 1 to 65535")
	}
	if s.IdentityFile != nil {
		for _, f := range *s.IdentityFile {
			if f == "" {
				c.report(p, "identity_file", "empty identity_file", `write the path of a private key, e.g. "~/.ssh/id_ed25519", or remove the key to use ssh-agent and the usual keys`)
			}
			c.checkControl(p, "identity_file", "identity_file", f, inFileNames)
		}
	}
	if s.IdentityPassphraseEnv != nil && !envRE.MatchString(*s.IdentityPassphraseEnv) {
		c.report(p, "identity_passphrase_env", "identity_passphrase_env is not an environment variable name",
			`set it to the name of the variable that holds the passphrase, e.g. "COLLECTOR_KEY_PASSPHRASE", never to the passphrase itself`)
	}
	if s.KnownHosts != nil {
		if *s.KnownHosts == "" {
			c.report(p, "known_hosts", "empty known_hosts", "write the path of a known_hosts file, or remove the key to use "+DefaultKnownHosts)
		}
		c.checkControl(p, "known_hosts", "known_hosts", *s.KnownHosts, inFileNames)
	}
	if s.Keywords != nil {
		for i, k := range *s.Keywords {
			switch {
			case c.checkControl(p, "keywords", "keyword", k, forProbe):
			case strings.TrimSpace(k) == "":
				c.report(p, "keywords", fmt.Sprintf("keyword %d is empty", i+1), "remove it: an empty keyword would match every process")
			}
		}
	}
	if s.Timeout != nil && *s.Timeout <= 0 {
		c.report(p, "timeout", fmt.Sprintf("timeout %s is not positive", time.Duration(*s.Timeout)), `use a positive duration, e.g. "30s"`)
	}
	if s.ConnectTimeout != nil && *s.ConnectTimeout <= 0 {
		c.report(p, "connect_timeout", fmt.Sprintf("connect_timeout %s is not positive", time.Duration(*s.ConnectTimeout)), `use a positive duration, e.g. "10s"`)
	}
	if s.Sample != nil && *s.Sample < 0 {
		c.report(p, "sample", fmt.Sprintf("sample %s is negative", time.Duration(*s.Sample)), `use a positive duration such as "1s", or "0s" for CPU averages since boot`)
	}
	if s.ProbeDir != nil {
		switch d := *s.ProbeDir; {
		case d == "":
			c.report(p, "probe_dir", "empty probe_dir", "remove the key to use "+DefaultProbeDir)
		case c.checkControl(p, "probe_dir", "probe_dir", d, onCommandLine):
		case !strings.HasPrefix(d, "/") && d != "~" && !strings.HasPrefix(d, "~/"):
			c.report(p, "probe_dir", fmt.Sprintf("probe_dir %q is relative", d), `write an absolute path, or one starting with ~/ for the target user's home, e.g. "~/.cache/collector"`)
		}
	}
	if s.Jump != nil {
		switch {
		case c.checkControl(p, "jump", "jump", *s.Jump, toDial):
		case *s.Jump == LocalAddress:
			c.report(p, "jump", "jump = \"local\" names the master itself", "remove jump: the master connects directly")
		}
	}
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// checkTimes checks that the durations fit together, when s (the keys written
// at p) sets one of them; m holds the values in effect. local is set for a
// server with address = "local", which never connects: connect_timeout does
// not apply to it.
func (c *checker) checkTimes(p place, s settings, m settings, local bool) {
	key := ""
	for _, k := range []struct {
		name string
		set  bool
	}{{"timeout", s.Timeout != nil}, {"connect_timeout", s.ConnectTimeout != nil && !local}, {"sample", s.Sample != nil}} {
		if k.set {
			key = k.name
			break
		}
	}
	if key == "" {
		return
	}
	timeout, connect, sample := time.Duration(*m.Timeout), time.Duration(*m.ConnectTimeout), time.Duration(*m.Sample)
	if timeout <= 0 || connect <= 0 || sample < 0 {
		return // reported by checkSettings
	}
	if connect > timeout && !local {
		c.report(p, key, fmt.Sprintf("connect_timeout %s is longer than timeout %s", connect, timeout),
			"timeout covers the whole run, connecting included; make it longer than connect_timeout")
	}
	// The probe gets the time left less ProbeReserve: its sample window must
	// end before that.
	if sample+ProbeReserve >= timeout {
		enough := sample + ProbeReserve + connect
		if local {
			enough = sample + 2*ProbeReserve
		}
		c.report(p, key, fmt.Sprintf("sample %s does not fit in timeout %s less the %s kept for the probe to report", sample, timeout, ProbeReserve),
			fmt.Sprintf("timeout covers the whole run, connecting and CPU sample included; make it longer than sample + %s, e.g. timeout = %q, or shorten sample", ProbeReserve, enough))
	}
}

// buildServer validates [[server]] entry i and applies the defaults.
func (c *checker) buildServer(i int, rs rawServer, merged settings, defaults Defaults, inv *Inventory) (Server, serverMeta) {
	p := place{table: "server", elem: i, server: c.serverLabel("server", i)}
	m := serverMeta{place: p}
	s := Server{Line: c.pos.header("server", i), Description: rs.Description}

	switch {
	case rs.Name == nil && c.misspelt(p, "name"):
		// The unknown key says it all: 'nmae', did you mean 'name'?
	case rs.Name == nil:
		c.report(p, "", "no name", `add name = "..."; `+nameFix)
	case *rs.Name == "":
		c.report(p, "name", "empty name", `set name = "..."; `+nameFix)
	case c.checkControl(p, "name", "server name", *rs.Name, inNames):
	case *rs.Name == "." || *rs.Name == "..":
		c.report(p, "name", fmt.Sprintf("server name %q is not usable", *rs.Name),
			"server names are used in file names and URLs, where . and .. name directories; choose another name")
	case !nameRE.MatchString(*rs.Name):
		c.report(p, "name", fmt.Sprintf("server name %q is not usable on the command line", *rs.Name), nameFix)
	}
	s.Name = deref(rs.Name)

	addrPort := 0
	switch {
	case rs.Address == nil && c.misspelt(p, "address"):
	case rs.Address == nil:
		c.report(p, "", "no address", `add address = "host", "host:port", "[IPv6]:port", or "local" for the master itself`)
	case *rs.Address == LocalAddress:
		s.Address = LocalAddress
	case c.checkControl(p, "address", "address", *rs.Address, toDial):
	default:
		host, port, err := splitHostPort(*rs.Address)
		if err != nil {
			c.report(p, "address", fmt.Sprintf("bad address %q: %s", *rs.Address, err),
				`write "host", "host:port", "IPv6", "[IPv6]:port", or "local" for the master itself`)
		}
		s.Address, addrPort = host, port
	}
	if addrPort != 0 && rs.Port != nil && *rs.Port != addrPort {
		c.report(p, "port", fmt.Sprintf("address %q has port %d but port = %d", *rs.Address, addrPort, *rs.Port),
			"remove one of them")
	}

	for _, t := range rs.Tags {
		if !nameRE.MatchString(t) {
			c.report(p, "tags", fmt.Sprintf("tag %q is not usable on the command line", t), strings.Replace(nameFix, "the name", "the tag", 1))
		}
	}
	s.Tags = slices.Clone(rs.Tags)

	c.checkSettings(p, rs.settings)
	eff := merge(rs.settings, merged)
	if s.IsLocal() && rs.Jump != nil && *rs.Jump != "" {
		c.report(p, "jump", "the master itself (address = \"local\") cannot be reached through a jump host", "remove jump")
	}
	if rs.Jump == nil && (s.IsLocal() || deref(merged.Jump) == s.Name) {
		eff.Jump = nil // the default jump does not apply to the master or to the jump host itself
	}
	m.jumpInherited = rs.Jump == nil && eff.Jump != nil
	c.checkTimes(p, rs.settings, eff, s.IsLocal())

	// Resolve only the keys this server sets; the rest is already resolved in defaults.
	own := c.resolveDefaults(p, rs.settings, "")
	s.User = defaults.User
	if rs.User != nil {
		s.User = own.User
	}
	s.Port = defaults.Port
	if rs.Port != nil {
		s.Port = *rs.Port
	}
	if addrPort != 0 {
		s.Port = addrPort
	}
	s.IdentityFiles = defaults.IdentityFiles
	if rs.IdentityFile != nil {
		s.IdentityFiles = own.IdentityFiles
	}
	s.KnownHosts = defaults.KnownHosts
	if rs.KnownHosts != nil {
		s.KnownHosts = own.KnownHosts
	}
	s.IdentityPassphraseEnv = deref(eff.IdentityPassphraseEnv)
	s.Jump = deref(eff.Jump)
	if s.IsLocal() {
		s.Jump = ""
	}
	s.Keywords = slices.Clone(deref(eff.Keywords))
	s.ProbeDir = deref(eff.ProbeDir)
	s.Timeout = time.Duration(deref(eff.Timeout))
	s.ConnectTimeout = time.Duration(deref(eff.ConnectTimeout))
	s.Sample = time.Duration(deref(eff.Sample))
	s.IdentityFiles = slices.Clone(s.IdentityFiles)
	if !s.IsLocal() && rs.Address != nil {
		set := c.setOrigins(p, rs.settings, addrPort)
		for k, o := range inv.defaultsSet {
			if _, ok := set[k]; !ok && (k != "jump" || eff.Jump != nil) {
				set[k] = o
			}
		}
		if err := inv.ssh.applySSH(&s, s.Address, set, c.env); err != nil {
			c.report(p, "address", fmt.Sprintf("SSH client config: %s", err), `fix that file, or set ssh_config = "" in [defaults] to not read it`)
		}
		if set["jump"] == "" && s.Jump != "" {
			m.jumpInherited = true // from the SSH client config: Route checks it
		}
	}
	return s, m
}

// misspelt reports whether an unknown key of the entry at p was reported
// as a misspelling of key: then a missing key is that one, and saying so
// too, before the real cause, would only confuse.
func (c *checker) misspelt(p place, key string) bool {
	line, next := c.pos.header(p.table, p.elem), c.pos.header(p.table, p.elem+1)
	for _, e := range c.errs {
		if e.Table == p.table && e.Fix == fmt.Sprintf("did you mean '%s'?", key) &&
			e.Line > line && (next == 0 || e.Line < next) {
			return true
		}
	}
	return false
}

// setOrigins returns the origin of each SSH setting s (the keys written at
// p) sets, by key; addrPort is the port written in the address, if any.
func (c *checker) setOrigins(p place, s settings, addrPort int) map[string]string {
	origin := func(key string) string {
		line := c.pos.line(p.path(key), p.elem)
		if p.elem < 0 {
			return fmt.Sprintf("[%s], %s:%d", p.table, c.file, line)
		}
		return fmt.Sprintf("server entry, %s:%d", c.file, line)
	}
	set := map[string]string{}
	if p.elem >= 0 {
		set["address"] = origin("address")
	}
	if s.User != nil {
		set["user"] = origin("user")
	}
	switch {
	case addrPort != 0:
		set["port"] = origin("address")
	case s.Port != nil:
		set["port"] = origin("port")
	}
	if s.IdentityFile != nil {
		set["identity_file"] = origin("identity_file")
	}
	if s.Jump != nil {
		set["jump"] = origin("jump")
	}
	if s.KnownHosts != nil {
		set["known_hosts"] = origin("known_hosts")
	}
	return set
}

// loadSSHConfig reads the SSH client config that [defaults] ssh_config
// names (written, nil when unset): DefaultSSHConfig, which may be missing,
// unless it is set; none when it is "". It returns the config and its path.
func (c *checker) loadSSHConfig(p place, written *string) (*sshConfig, string) {
	path, missingOK := DefaultSSHConfig, true
	if written != nil {
		path, missingOK = *written, false
	}
	if path == "" {
		return nil, ""
	}
	cfg, err := readSSHConfig(path, c.env, missingOK)
	if err != nil {
		key, fix := "ssh_config", `fix the file, or set ssh_config = "" in [defaults] to not read it`
		if written == nil {
			key = ""
		} else if errors.Is(err, fs.ErrNotExist) {
			fix = `write the path of an OpenSSH client config file, or set ssh_config = "" to read none`
		}
		c.report(p, key, fmt.Sprintf("SSH client config %s: %s", path, err), fix)
		return nil, ""
	}
	if cfg == nil {
		return nil, ""
	}
	x, _ := c.env.expand(path)
	return cfg, x
}

// checkJumps checks every jump and rejects cycles. defaultJump is the jump
// written in [defaults], if any.
func (c *checker) checkJumps(inv *Inventory, metas []serverMeta, defaultJump *string) {
	dp := place{table: "defaults", elem: -1}
	if dj := deref(defaultJump); dj != "" && dj != LocalAddress {
		if t, ok := inv.Server(dj); ok {
			if t.IsLocal() {
				c.report(dp, "jump", fmt.Sprintf("jump '%s' names the master itself (address = \"local\")", dj), "remove jump: the master connects directly")
			}
		} else if _, _, _, err := parseJump(dj); err != nil {
			c.report(dp, "jump", fmt.Sprintf("jump %q is neither a server name nor [user@]host[:port]: %s", dj, err), "")
		}
	}

	next := map[string]string{} // server name -> the server it jumps through
	for i, s := range inv.Servers {
		m := metas[i]
		if s.Jump == "" || m.jumpInherited {
			if s.Jump != "" {
				if _, ok := inv.Server(s.Jump); ok {
					next[s.Name] = s.Jump
				}
			}
			continue // problems of an inherited jump are reported at [defaults]
		}
		t, isName := inv.Server(s.Jump)
		switch {
		case s.Jump == s.Name:
			c.report(m.place, "jump", "jump names the server itself", "remove jump, or name the server to go through")
		case isName && t.IsLocal():
			c.report(m.place, "jump", fmt.Sprintf("jump '%s' names the master itself (address = \"local\")", s.Jump), "remove jump: the master connects directly")
		case isName:
			next[s.Name] = s.Jump
		case s.Jump == LocalAddress:
			// reported by checkSettings
		default:
			if _, _, _, err := parseJump(s.Jump); err != nil {
				c.report(m.place, "jump", fmt.Sprintf("jump %q is neither a server name nor [user@]host[:port]: %s", s.Jump, err), "")
			}
		}
	}

	// Report each cycle once, at the member that comes first in the file.
	reported := map[string]bool{}
	for i, s := range inv.Servers {
		chain := []string{s.Name}
		at := map[string]int{s.Name: 0}
		for cur := s.Name; ; {
			n, ok := next[cur]
			if !ok {
				break
			}
			if j, loop := at[n]; loop {
				if j != 0 || reported[s.Name] {
					break // s leads into a cycle it is not part of, or it is done
				}
				for _, name := range chain {
					reported[name] = true
				}
				fix := "a server cannot be reached through itself; remove one of these jump keys"
				for _, name := range chain {
					if metas[inv.byName[name]].jumpInherited {
						fix += fmt.Sprintf(" (the jump of '%s' comes from [defaults]; set jump = \"\" in it to connect directly)", name)
						break
					}
				}
				c.report(metas[i].place, "jump", "jump cycle: "+strings.Join(append(chain, n), " -> "), fix)
				break
			}
			at[n] = len(chain)
			chain = append(chain, n)
			cur = n
		}
	}
}
