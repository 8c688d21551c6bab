// Package sshdtest runs a real OpenSSH server on 127.0.0.1 for tests.
package sshdtest

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/crawlerfleet/collector/internal/testutil"
)

// SSHDPath is where Start looks for sshd first; when it is missing, sshd is looked up in PATH.
const SSHDPath = "/usr/sbin/sshd"

// A Server is a running sshd that accepts ClientSigner for User.
type Server struct {
	Addr string // "127.0.0.1:PORT"
	Host string
	Port int
	User string // the current OS user

	HostKey  ssh.PublicKey   // the ed25519 host key
	HostKeys []ssh.PublicKey // all host keys, HostKey first

	ClientKeyFile  string // private key (OpenSSH PEM, unencrypted) authorized on this server
	ClientSigner   ssh.Signer
	KnownHostsFile string // known_hosts holding exactly HostKey for Addr
	Dir            string // the temporary directory with config, keys and logs

	// With WithHostCertificate: the CA that signed the host certificate of
	// HostKey (principal 127.0.0.1), and its private key file.
	HostCA     ssh.PublicKey
	HostCAFile string
	// With WithUserCA: a private key that authorized_keys does not list,
	// with its user certificate (principal User) signed by UserCA next to it
	// as CertKeyFile-cert.pub; sshd trusts UserCA (TrustedUserCAKeys).
	CertKeyFile string
	UserCA      ssh.PublicKey
	UserCAFile  string

	proc *process
}

// Log returns what sshd has logged so far.
func (s *Server) Log() string { return s.proc.stderr.String() }

// TB is the part of testing.TB that Start and HungListener use, so that a
// program (such as a benchmark) can start a server too. As in testing.TB,
// Fatalf and Skipf must not return: they end the caller, and Cleanup
// functions run afterwards in last-added-first order.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
}

// An Option changes how Start configures sshd.
type Option func(*options)

type options struct {
	ecdsaHostKey bool
	hostCert     bool
	userCA       bool
	config       []string
}

// WithHostCertificate gives the server a host certificate for its ed25519
// host key, signed with ssh-keygen -s by a new CA (Server.HostCA) for the
// principal 127.0.0.1.
func WithHostCertificate() Option {
	return func(o *options) { o.hostCert = true }
}

// WithUserCA makes sshd trust a new user CA (TrustedUserCAKeys) and writes a
// client key that only its certificate, signed with ssh-keygen -s, gets in
// with (Server.CertKeyFile).
func WithUserCA() Option {
	return func(o *options) { o.userCA = true }
}

// WithECDSAHostKey gives the server an ECDSA P-256 host key in addition to
// its ed25519 one (Server.HostKeys[1]). Server.KnownHostsFile still records
// only the ed25519 key.
func WithECDSAHostKey() Option {
	return func(o *options) { o.ecdsaHostKey = true }
}

// WithConfig adds sshd_config lines, such as "MaxStartups 1000\nLogLevel
// ERROR", at the end of the configuration. A keyword they set replaces
// Start's own setting of it (MaxStartups 100, MaxSessions 100, LogLevel
// VERBOSE and the like); the port, listen address, keys and files stay.
func WithConfig(lines string) Option {
	return func(o *options) { o.config = append(o.config, lines) }
}

// Start starts sshd -D -e on 127.0.0.1 with a free port, everything in
// t.TempDir(), and waits until it sends its SSH banner. sshd is killed in
// t.Cleanup, and its stderr is logged when the test failed. When sshd is not
// installed, Start skips the test, or fails it when the environment has
// CI=true or COLLECTOR_TEST_DISALLOW_SKIP=1.
func Start(t TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	sshd := findSSHD(t)

	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshdtest: current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root needs its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshdtest: create privilege separation dir: %v", err)
		}
	}

	dir := t.TempDir()
	s := &Server{Host: "127.0.0.1", User: u.Username, Dir: dir}

	hostPriv := mustEd25519(t)
	hostKeyFiles := []string{filepath.Join(dir, "ssh_host_ed25519_key")}
	hostPrivs := []crypto.Signer{hostPriv}
	if o.ecdsaHostKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("sshdtest: generate ecdsa key: %v", err)
		}
		hostKeyFiles = append(hostKeyFiles, filepath.Join(dir, "ssh_host_ecdsa_key"))
		hostPrivs = append(hostPrivs, k)
	}
	for i, k := range hostPrivs {
		writePrivateKey(t, hostKeyFiles[i], k)
		pub, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			t.Fatalf("sshdtest: host public key: %v", err)
		}
		s.HostKeys = append(s.HostKeys, pub)
	}
	s.HostKey = s.HostKeys[0]

	clientPriv := mustEd25519(t)
	s.ClientKeyFile = filepath.Join(dir, "id_ed25519")
	writePrivateKey(t, s.ClientKeyFile, clientPriv)
	if s.ClientSigner, err = ssh.NewSignerFromKey(clientPriv); err != nil {
		t.Fatalf("sshdtest: client signer: %v", err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(s.ClientSigner.PublicKey()), 0o600); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}

	var extra []string
	if o.hostCert {
		s.HostCAFile, s.HostCA = writeCA(t, dir, "host_ca")
		writePublicKey(t, hostKeyFiles[0]+".pub", s.HostKey)
		signKey(t, s.HostCAFile, hostKeyFiles[0]+".pub", "-h", "-n", "127.0.0.1")
		extra = append(extra, fmt.Sprintf("HostCertificate %q", hostKeyFiles[0]+"-cert.pub"))
	}
	if o.userCA {
		s.UserCAFile, s.UserCA = writeCA(t, dir, "user_ca")
		s.CertKeyFile = filepath.Join(dir, "id_cert_ed25519")
		k := mustEd25519(t)
		writePrivateKey(t, s.CertKeyFile, k)
		pub, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			t.Fatalf("sshdtest: %v", err)
		}
		writePublicKey(t, s.CertKeyFile+".pub", pub)
		signKey(t, s.UserCAFile, s.CertKeyFile+".pub", "-n", u.Username)
		extra = append(extra, fmt.Sprintf("TrustedUserCAKeys %q", s.UserCAFile+".pub"))
	}
	o.config = append(extra, o.config...)

	// The port is free when we look; another process may take it before sshd
	// binds it, so retry a few times with a fresh port.
	var lastErr error
	for range 5 {
		port := freePort(t)
		var proc *process
		proc, lastErr = startSSHD(t, sshd, dir, port, hostKeyFiles, authorized, o.config)
		if lastErr == nil {
			s.Port = port
			s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
			s.proc = proc
			t.Cleanup(func() {
				proc.stop()
				if t.Failed() {
					t.Logf("sshdtest: sshd stderr:\n%s", proc.stderr.String())
				}
			})
			break
		}
		if !strings.Contains(lastErr.Error(), "Address already in use") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("sshdtest: %v", lastErr)
	}

	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{s.Addr}, s.HostKey) + "\n"
	if err := os.WriteFile(s.KnownHostsFile, []byte(line), 0o600); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	return s
}

func findSSHD(t TB) string {
	t.Helper()
	if _, err := os.Stat(SSHDPath); err == nil {
		return SSHDPath
	}
	path, err := exec.LookPath("sshd")
	if err == nil {
		if path, err = filepath.Abs(path); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("sshdtest: OpenSSH server not found at %s or in PATH (install openssh-server)", SSHDPath)
	if os.Getenv("CI") == "true" || os.Getenv("COLLECTOR_TEST_DISALLOW_SKIP") == "1" {
		t.Fatalf("%s", msg)
	}
	t.Skipf("%s", msg)
	return ""
}

// defaultConfig is what Start sets besides the port, keys and files;
// WithConfig replaces any of it.
var defaultConfig = []string{
	"StrictModes no",
	"UsePAM no",
	"PasswordAuthentication no",
	"KbdInteractiveAuthentication no",
	"PubkeyAuthentication yes",
	"PermitRootLogin prohibit-password",
	"AllowTcpForwarding yes",
	"UseDNS no",
	"MaxStartups 100",
	"MaxSessions 100",
	"LogLevel VERBOSE",
	// sshd runs each command with the user's login shell, and bash started
	// by sshd reads ~/.bashrc unless it is a nested shell (SHLVL 1 or more
	// inherited). A developer's ~/.bashrc (pyenv init, conda, nvm) would
	// otherwise run before every command of every test: on a loaded
	// machine, seconds each.
	"SetEnv SHLVL=1",
}

func startSSHD(t TB, sshd, dir string, port int, hostKeyFiles []string, authorized string, extra []string) (*process, error) {
	t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "Port %d\nListenAddress 127.0.0.1\n", port)
	// Paths are quoted (a temporary directory may hold spaces), and '%'
	// is doubled where sshd expands tokens in them.
	for _, f := range hostKeyFiles {
		fmt.Fprintf(&cfg, "HostKey %q\n", f)
	}
	fmt.Fprintf(&cfg, "AuthorizedKeysFile %q\n", strings.ReplaceAll(authorized, "%", "%%"))
	fmt.Fprintf(&cfg, "PidFile %q\n", filepath.Join(dir, "sshd.pid"))
	// A keyword that the extra lines set replaces the default: sshd keeps
	// the first value of some keywords and the last of others.
	set := map[string]bool{}
	for _, lines := range extra {
		for _, l := range strings.Split(lines, "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				set[strings.ToLower(f[0])] = true
			}
		}
	}
	for _, l := range defaultConfig {
		if !set[strings.ToLower(strings.Fields(l)[0])] {
			cfg.WriteString(l + "\n")
		}
	}
	for _, lines := range extra {
		cfg.WriteString(strings.TrimSpace(lines) + "\n")
	}
	config := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}

	p := &process{exited: make(chan struct{})}
	p.cmd = exec.Command(sshd, "-D", "-e", "-f", config)
	p.cmd.Stderr = &p.stderr
	p.cmd.Stdout = &p.stderr
	// A process that escaped the kill and still holds sshd's stderr must
	// not keep stop waiting.
	p.cmd.WaitDelay = 5 * time.Second
	setProcessGroup(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", sshd, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// A safety net: sshd answers within milliseconds, or seconds on a
	// loaded machine.
	deadline := time.Now().Add(testutil.Patience)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("sshd exited before accepting connections (%v): %s", p.waitErr, p.stderr.String())
		default:
		}
		if err := readBanner(addr); err == nil {
			return p, nil
		} else if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("sshd did not answer on %s within %v (%v): %s", addr, testutil.Patience, err, p.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readBanner connects to addr and reads the SSH identification line.
func readBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

type process struct {
	cmd     *exec.Cmd
	stderr  testutil.SyncBuffer // sshd's output, written by exec's copying goroutine
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

// stop kills sshd and the per-connection processes it forked, and waits for it.
func (p *process) stop() {
	p.once.Do(func() {
		killProcessGroup(p.cmd)
		<-p.exited
	})
}

func freePort(t TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshdtest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func mustEd25519(t TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshdtest: generate ed25519 key: %v", err)
	}
	return priv
}

func writePrivateKey(t TB, path string, key crypto.PrivateKey) {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatalf("sshdtest: marshal private key: %v", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
}

// writeCA writes a new ed25519 CA key pair as dir/name and dir/name.pub.
func writeCA(t TB, dir, name string) (string, ssh.PublicKey) {
	t.Helper()
	k := mustEd25519(t)
	file := filepath.Join(dir, name)
	writePrivateKey(t, file, k)
	pub, err := ssh.NewPublicKey(k.Public())
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	writePublicKey(t, file+".pub", pub)
	return file, pub
}

func writePublicKey(t TB, path string, pub ssh.PublicKey) {
	t.Helper()
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
}

// signKey signs the public key file pub with the CA key file ca, as
// ssh-keygen -s does, writing the certificate next to it (KEY-cert.pub);
// args are ssh-keygen's further flags (-h, -n principals).
func signKey(t TB, ca, pub string, args ...string) {
	t.Helper()
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		msg := "sshdtest: ssh-keygen not found (install openssh-client)"
		if os.Getenv("CI") == "true" || os.Getenv("COLLECTOR_TEST_DISALLOW_SKIP") == "1" {
			t.Fatalf("%s", msg)
		}
		t.Skipf("%s", msg)
	}
	cmd := exec.Command(keygen, append(append([]string{"-q", "-s", ca, "-I", "sshdtest"}, args...), pub)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sshdtest: ssh-keygen -s: %v\n%s", err, out)
	}
}

// HungListener listens on 127.0.0.1:0, accepts connections and never writes
// to them: a host that accepts TCP but never answers SSH. It returns the
// address; the listener and the connections are closed in t.Cleanup.
func HungListener(t TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshdtest: listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Logf("sshdtest: hung listener: accept: %v", err)
				}
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
