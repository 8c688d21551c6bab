package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
)

// copyFile copies a key file to dst (mode 0600).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeInventory writes servers.toml with only what every test needs in
// [defaults] (known_hosts, probe_dir, sample, timeout): SSH settings come
// from the SSH client config.
func (h *harness) writeInventory(knownHosts, extraDefaults, servers string) {
	h.t.Helper()
	text := fmt.Sprintf("[defaults]\nknown_hosts = %q\nprobe_dir = %q\nsample = \"200ms\"\ntimeout = \"20s\"\n%s\n%s",
		knownHosts, h.probeDir, extraDefaults, servers)
	h.config = filepath.Join(h.dir, "servers.toml")
	if err := os.WriteFile(h.config, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// TestSSHConfigAliasJump reaches a server by a Host alias of ~/.ssh/config
// (the default file) whose HostName, Port, User, IdentityFile (with ~, %d,
// %r and %h) and ProxyJump apply, through a second sshd as the jump host.
func TestSSHConfigAliasJump(t *testing.T) {
	h := newHarness(t)
	jump := sshdtest.Start(t, sshdtest.WithConfig("LogLevel DEBUG1"))
	home := t.TempDir()
	if strings.Contains(home, "%") {
		// OpenSSH expands tokens after ~, and so does the collector: a
		// home with a '%' cannot be named by ~ in an SSH config.
		t.Skipf("the temporary home %q holds a '%%'", home)
	}
	t.Setenv("HOME", home)
	copyFile(t, jump.ClientKeyFile, filepath.Join(home, ".ssh", "jump_key"))
	copyFile(t, h.srv.ClientKeyFile, filepath.Join(home, ".ssh", h.srv.User+"@127.0.0.1"))
	sshConfig := fmt.Sprintf(`Host bastion
    HostName 127.0.0.1
    Port %d
    IdentityFile ~/.ssh/jump_key
    IdentitiesOnly yes

Host crawler-*
    HostName 127.0.0.1
    Port %d
    User %s
    IdentityFile %%d/.ssh/%%r@%%h
    ProxyJump bastion
`, jump.Port, h.srv.Port, h.srv.User)
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(sshConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(h.dir, "known_hosts")
	lines := knownhosts.Line([]string{jump.Addr}, jump.HostKey) + "\n" + knownhosts.Line([]string{h.srv.Addr}, h.srv.HostKey) + "\n"
	if err := os.WriteFile(kh, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	h.writeInventory(kh, "", "\n[[server]]\nname = \"c1\"\naddress = \"crawler-1\"\n")

	code, results := h.onceJSON("c1")
	if r := results["c1"]; code != exitOK || !r.OK {
		t.Fatalf("once c1 through the SSH config: exit %d, %+v", code, r)
	}
	if log := jump.Log(); !strings.Contains(log, fmt.Sprintf("port %d", h.srv.Port)) || !strings.Contains(log, "direct-tcpip") {
		t.Errorf("the jump host's sshd forwarded no connection to port %d:\n%s", h.srv.Port, log)
	}

	code, stdout, stderr := h.run("check", "--explain", "c1")
	if code != exitOK {
		t.Fatalf("check --explain: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Columns are aligned with spaces: compare words.
	words := strings.Join(strings.Fields(stdout), " ")
	for _, want := range []string{
		"c1 address 127.0.0.1 (HostName of crawler-1) ~/.ssh/config line 8 (Host crawler-*)",
		fmt.Sprintf("port %d ~/.ssh/config line 9 (Host crawler-*)", h.srv.Port),
		fmt.Sprintf("user %s ~/.ssh/config line 10 (Host crawler-*)", h.srv.User),
		"identity_file " + filepath.Join(home, ".ssh", h.srv.User+"@127.0.0.1") + " ~/.ssh/config line 11 (Host crawler-*)",
		"identities_only no built-in default",
		"jump bastion ~/.ssh/config line 12 (Host crawler-*)",
		"known_hosts " + kh + " [defaults], " + h.config + ":2",
		"jump host bastion address 127.0.0.1 (HostName of bastion) ~/.ssh/config line 2 (Host bastion)",
		"identities_only yes ~/.ssh/config line 5 (Host bastion)",
		"OK c1",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("check --explain lacks %q:\n%s", want, stdout)
		}
	}

	// ssh_config = "" turns it off: crawler-1 is then just a name.
	h.writeInventory(kh, `ssh_config = ""`, "\n[[server]]\nname = \"c1\"\naddress = \"crawler-1\"\n")
	code, results = h.onceJSON("c1")
	if r := results["c1"]; code != exitFailure || r.Kind != "unreachable" {
		t.Errorf("without the SSH config: exit %d, %+v", code, r)
	}
}

// TestCertificates logs in with a user certificate (next to the key, and
// named by CertificateFile) and accepts a host certificate through an
// @cert-authority line; a CA known_hosts does not trust is a clear hostkey
// failure.
func TestCertificates(t *testing.T) {
	h := newHarness(t)
	srv := sshdtest.Start(t, sshdtest.WithHostCertificate(), sshdtest.WithUserCA())
	kh := filepath.Join(h.dir, "known_hosts")
	ca := fmt.Sprintf("@cert-authority [127.0.0.1]:%d %s", srv.Port, ssh.MarshalAuthorizedKey(srv.HostCA))
	if err := os.WriteFile(kh, []byte(ca), 0o600); err != nil {
		t.Fatal(err)
	}
	// The same key elsewhere without its certificate beside it: only
	// CertificateFile brings the certificate.
	bare := filepath.Join(h.dir, "keys", "bare")
	copyFile(t, srv.CertKeyFile, bare)
	cert := filepath.Join(h.dir, "certs", "user-cert.pub")
	copyFile(t, srv.CertKeyFile+"-cert.pub", cert)
	sshConfig := filepath.Join(h.dir, "ssh_config")
	text := fmt.Sprintf("Host certhost nocert\n    HostName 127.0.0.1\n    Port %d\n    User %s\n    IdentityFile %s\n"+
		"Host certhost\n    CertificateFile %s\nHost nocert\n    CertificateFile %s\n", srv.Port, srv.User, sshConfigPath(bare), sshConfigPath(cert), sshConfigPath(cert+".missing"))
	if err := os.WriteFile(sshConfig, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	h.writeInventory(kh, fmt.Sprintf("ssh_config = %q", sshConfig), fmt.Sprintf(`
[[server]]
name = "next-to-key"
address = %q
user = %q
identity_file = %q

[[server]]
name = "certificate-file"
address = "certhost"

[[server]]
name = "missing-certificate-file"
address = "nocert"

[[server]]
name = "no-cert"
address = %q
user = %q
identity_file = %q
`, srv.Addr, srv.User, srv.CertKeyFile, srv.Addr, srv.User, bare))

	code, results, stderr := h.checkJSON()
	if code != exitFailure {
		t.Fatalf("check: exit %d\n%s", code, stderr)
	}
	for _, name := range []string{"next-to-key", "certificate-file"} {
		if r := results[name]; !r.OK {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if r := results["no-cert"]; r.OK || r.Kind != "auth" || !strings.Contains(r.Error, "unable to authenticate") {
		t.Errorf("a key without its certificate: %+v", r)
	}
	if r := results["missing-certificate-file"]; r.Kind != "config" || !strings.Contains(r.Error, "certificate file "+cert+".missing: no such file") ||
		!strings.Contains(r.Fix, "CertificateFile") {
		t.Errorf("a missing CertificateFile: %+v", r)
	}

	// Another CA: the host certificate is refused, and the error says why.
	other := sshdtest.Start(t, sshdtest.WithHostCertificate())
	ca = fmt.Sprintf("@cert-authority [127.0.0.1]:%d %s", srv.Port, ssh.MarshalAuthorizedKey(other.HostCA))
	if err := os.WriteFile(kh, []byte(ca), 0o600); err != nil {
		t.Fatal(err)
	}
	code, results, _ = h.checkJSON("next-to-key")
	r := results["next-to-key"]
	if code != exitFailure || r.Kind != "hostkey" {
		t.Fatalf("host certificate of an untrusted CA: exit %d, %+v", code, r)
	}
	for _, want := range []string{"host certificate not accepted", "signed by CA ED25519 " + ssh.FingerprintSHA256(srv.HostCA),
		"no @cert-authority line of " + kh + " trusts its CA for [127.0.0.1]:"} {
		if !strings.Contains(r.Error, want) {
			t.Errorf("error %q lacks %q", r.Error, want)
		}
	}
	if !strings.Contains(r.Fix, "@cert-authority [127.0.0.1]:") || !strings.Contains(r.Fix, "collector trust next-to-key") {
		t.Errorf("fix %q", r.Fix)
	}

	// trust records the plain host key inside the certificate; then it works.
	code, stdout, stderr := h.run("trust", "--yes", "next-to-key")
	if code != exitOK || !strings.Contains(stdout, ssh.FingerprintSHA256(srv.HostKey)) {
		t.Fatalf("trust: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, results, _ = h.checkJSON("next-to-key"); code != exitOK {
		t.Errorf("after trust: %+v", results)
	}
}

// sshConfigPath writes path as an SSH config argument: quoted (it may hold
// spaces), '%' doubled (OpenSSH expands tokens in file names).
func sshConfigPath(path string) string {
	return `"` + strings.ReplaceAll(path, "%", "%%") + `"`
}
