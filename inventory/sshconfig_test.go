package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeSSHConfig writes an SSH client config, and a servers.toml whose
// [defaults] names it after extra (TOML lines), into a new directory; it
// returns the directory.
func writeSSHConfig(t *testing.T, sshConfig, servers string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(strings.ReplaceAll(sshConfig, "DIR", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "servers.toml"), []byte(strings.ReplaceAll(servers, "DIR", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

const sshConfigText = `# the operator's ~/.ssh/config
Host web1
    HostName 10.0.0.5
    Port 2201

Host web*
    User deploy
    IdentityFile ~/.ssh/web_%r@%h
    IdentityFile %d/.ssh/id_%u
    IdentitiesOnly yes
    CertificateFile ~/.ssh/web-cert.pub

Host private
    HostName 10.1.0.7
    ProxyJump jump1,ops@jump2:2200

Host jump1
    HostName bastion.example.com
    User jumper
    Port 2222

Host jump2
    HostName 10.1.0.1
    IdentityFile ~/.ssh/inner

Host *
    User everyone
    Include DIR/extra
`

func TestSSHConfigApplies(t *testing.T) {
	if strings.Contains(t.TempDir(), " ") {
		// kevinburke/ssh_config splits an Include on spaces and takes no
		// quotes: the test's Include cannot name a file there.
		t.Skip("the temporary directory holds a space")
	}
	dir := writeSSHConfig(t, sshConfigText, `
[defaults]
ssh_config = "DIR/config"
known_hosts = "/etc/collector/known_hosts"

[[server]]
name = "web1"
address = "web1"

[[server]]
name = "web2"
address = "web2.example.com"
user = "root"
port = 22

[[server]]
name = "private"
address = "private"

[[server]]
name = "plain"
address = "plain.example.com"
jump = ""
`)
	if err := os.WriteFile(filepath.Join(dir, "extra"), []byte("Port 2022\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := load(filepath.Join(dir, "servers.toml"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config")
	toml := filepath.Join(dir, "servers.toml")
	if inv.Defaults.SSHConfig != cfg {
		t.Errorf("Defaults.SSHConfig = %q, want %q", inv.Defaults.SSHConfig, cfg)
	}

	web1 := mustServer(t, inv, "web1")
	want := Server{
		Name: "web1", Address: "10.0.0.5", Alias: "web1", Port: 2201, User: "deploy",
		IdentityFiles:    []string{"/home/tester/.ssh/web_deploy@10.0.0.5", "/home/tester/.ssh/id_tester"},
		IdentitiesOnly:   true,
		CertificateFiles: []string{"/home/tester/.ssh/web-cert.pub"},
		KnownHosts:       "/etc/collector/known_hosts",
	}
	got := Server{Name: web1.Name, Address: web1.Address, Alias: web1.Alias, Port: web1.Port, User: web1.User,
		IdentityFiles: web1.IdentityFiles, IdentitiesOnly: web1.IdentitiesOnly, CertificateFiles: web1.CertificateFiles, KnownHosts: web1.KnownHosts}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("web1 = %+v\nwant %+v", got, want)
	}
	wantOrigins := map[string]string{
		"address":          cfg + " line 3 (Host web1)",
		"port":             cfg + " line 4 (Host web1)",
		"user":             cfg + " line 7 (Host web*)",
		"identity_file":    cfg + " line 8 (Host web*)",
		"identities_only":  cfg + " line 10 (Host web*)",
		"certificate_file": cfg + " line 11 (Host web*)",
		"jump":             BuiltinOrigin,
		"known_hosts":      "[defaults], " + toml + ":4",
	}
	if !reflect.DeepEqual(web1.Origins, wantOrigins) {
		t.Errorf("web1 origins:\n%v\nwant\n%v", web1.Origins, wantOrigins)
	}

	// servers.toml wins: the entry's user and port.
	web2 := mustServer(t, inv, "web2")
	if web2.User != "root" || web2.Port != 22 || web2.Address != "web2.example.com" || web2.Alias != "" || len(web2.IdentityFiles) != 2 {
		t.Errorf("web2 = %+v", web2)
	}
	if web2.Origins["user"] != "server entry, "+toml+":13" || web2.Origins["port"] != "server entry, "+toml+":14" {
		t.Errorf("web2 origins = %v", web2.Origins)
	}

	// Host * and a value found through Include.
	plain := mustServer(t, inv, "plain")
	if plain.User != "everyone" || plain.Port != 2022 || plain.Jump != "" {
		t.Errorf("plain = %+v", plain)
	}
	if o := plain.Origins["port"]; o != cfg+" line 28 (Host *, in Include "+filepath.Join(dir, "extra")+")" {
		t.Errorf("plain's port origin = %q", o)
	}
	if o := plain.Origins["jump"]; o != "server entry, "+toml+":23" {
		t.Errorf("plain's jump origin = %q", o)
	}

	// ProxyJump: a chain of an alias and user@host:port, each resolved.
	private := mustServer(t, inv, "private")
	if private.Jump != "jump1,ops@jump2:2200" || private.Origins["jump"] != cfg+" line 15 (Host private)" {
		t.Errorf("private: jump %q from %q", private.Jump, private.Origins["jump"])
	}
	hops, err := inv.Route(private)
	if err != nil {
		t.Fatal(err)
	}
	var route []string
	for _, h := range hops {
		route = append(route, h.Name+"="+h.User+"@"+h.HostPort())
	}
	if want := []string{"jump1=jumper@bastion.example.com:2222", "ops@jump2:2200=ops@10.1.0.1:2200", "private=everyone@10.1.0.7:2022"}; !reflect.DeepEqual(route, want) {
		t.Errorf("route = %v\nwant %v", route, want)
	}
	if got := hops[1].IdentityFiles; !reflect.DeepEqual(got, []string{"/home/tester/.ssh/inner"}) || hops[1].KnownHosts != "/etc/collector/known_hosts" {
		t.Errorf("jump2: identity files %v, known_hosts %q", got, hops[1].KnownHosts)
	}

	var explained []string
	for _, s := range web1.Explain() {
		explained = append(explained, s.Key+"="+s.Value+" <- "+s.Origin)
	}
	for _, want := range []string{"address=10.0.0.5 (HostName of web1) <- " + cfg + " line 3 (Host web1)", "jump=none <- " + BuiltinOrigin} {
		if !strings.Contains(strings.Join(explained, "\n"), want) {
			t.Errorf("Explain lacks %q:\n%s", want, strings.Join(explained, "\n"))
		}
	}
}

func TestSSHConfigDefaultsWin(t *testing.T) {
	dir := writeSSHConfig(t, "Host *\n    User fromssh\n    Port 2200\n", `
[defaults]
ssh_config = "DIR/config"
user = "monitor"

[[server]]
name = "web1"
address = "web1"
`)
	inv, err := load(filepath.Join(dir, "servers.toml"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, inv, "web1")
	if s.User != "monitor" || s.Port != 2200 {
		t.Errorf("user %q port %d: want [defaults]' user and the SSH config's port", s.User, s.Port)
	}
}

func TestSSHConfigOffAndErrors(t *testing.T) {
	tests := []struct {
		name, ssh, defaults string
		err                 string // "" for none
	}{
		{"off", "Host web1\n  HostName 10.9.9.9\n", `ssh_config = ""`, ""},
		{"missing named file", "", `ssh_config = "DIR/nope"`, "SSH client config DIR/nope: open DIR/nope: no such file or directory in [defaults] (DIR/servers.toml:3); write the path of an OpenSSH client config file"},
		{"unsupported Match", "Match exec true\n  User x\n", `ssh_config = "DIR/config"`, "Match Exec is not supported"},
		{"bad token", "Host web1\n  IdentityFile ~/.ssh/%C\n", `ssh_config = "DIR/config"`, "SSH client config: IdentityFile at DIR/config line 2 (Host web1): \"/home/tester/.ssh/%C\": the token %C is not supported"},
		{"bad port", "Host web1\n  Port http\n", `ssh_config = "DIR/config"`, "Port \"http\" at DIR/config line 2 (Host web1) is not a port"},
		// The parser would split the path at its space and skip both halves,
		// and the settings behind it would silently not apply.
		{"quoted Include", "Host web1\n  User x\nHost *\n  Include \"DIR/my configs/*\"\n", `ssh_config = "DIR/config"`,
			"SSH client config DIR/config: line 4: Include \"DIR/my configs/*\": a quoted path is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeSSHConfig(t, tt.ssh, "\n[defaults]\n"+tt.defaults+"\n\n[[server]]\nname = \"web1\"\naddress = \"web1\"\n")
			inv, err := load(filepath.Join(dir, "servers.toml"), testEnv)
			want := strings.ReplaceAll(tt.err, "DIR", dir)
			switch {
			case want == "" && err != nil:
				t.Fatal(err)
			case want == "":
				if s := mustServer(t, inv, "web1"); s.Address != "web1" || inv.Defaults.SSHConfig != "" {
					t.Errorf("ssh_config = \"\" applied a file: %+v", s)
				}
			case err == nil || !strings.Contains(err.Error(), want):
				t.Errorf("err = %v\nwant it to hold %q", err, want)
			}
		})
	}
}

func TestSSHTokens(t *testing.T) {
	tok := sshTokens{home: "/home/u", localUser: "u", host: "10.0.0.5", alias: "web1", remoteUser: "deploy", port: "22", localID: "1000"}
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"~/.ssh/id":           "/home/u/.ssh/id",
		"%d/.ssh/%r@%h:%p":    "/home/u/.ssh/deploy@10.0.0.5:22",
		"/keys/%u-%n-%l-%i%%": "/keys/u-web1-" + hostname + "-1000%",
		"plain":               "plain",
	}
	for in, want := range tests {
		if got, err := tok.expand(in); err != nil || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"%C", "trailing%"} {
		if _, err := tok.expand(bad); err == nil {
			t.Errorf("expand(%q): no error", bad)
		}
	}
}

func TestQuotedInclude(t *testing.T) {
	for text, want := range map[string]int{
		"Include ~/.ssh/conf.d/*\n":             0,
		"# Include \"a b\"\n":                   0,
		"Host x\n  IncludeFoo \"a\"\n":          0,
		"Host x\n\tinclude \"a b\"\n":           2,
		"Host x\n  User u\nInclude=\"~/x y\"\n": 3,
		"Include a \"b c\"\n":                   1,
		"Include\n":                             0,
		"  INCLUDE   ~/a\n  include ~/\"b\"\n":  2,
	} {
		if got, _ := quotedInclude([]byte(text)); got != want {
			t.Errorf("quotedInclude(%q) = line %d, want %d", text, got, want)
		}
	}
}
