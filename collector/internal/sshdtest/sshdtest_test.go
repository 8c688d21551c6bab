package sshdtest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/crawlerfleet/collector/internal/testutil"
)

func TestStart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.Port == 0 {
		t.Fatalf("Addr = %q, Port = %d", s.Addr, s.Port)
	}
	kh, err := os.ReadFile(s.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := knownhosts.Line([]string{s.Addr}, s.HostKey) + "\n"; string(kh) != want {
		t.Errorf("known_hosts = %q, want %q", kh, want)
	}

	check, err := knownhosts.New(s.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.ClientSigner)},
		HostKeyCallback: check,
		Timeout:         5 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("echo ok")
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("echo ok: %q, %v", out, err)
	}

	key, err := os.ReadFile(s.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatalf("ClientKeyFile: %v", err)
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), s.ClientSigner.PublicKey().Marshal()) {
		t.Error("ClientKeyFile does not hold ClientSigner's key")
	}
}

func TestStartECDSAHostKey(t *testing.T) {
	s := Start(t, WithECDSAHostKey())
	if len(s.HostKeys) != 2 || !bytes.Equal(s.HostKeys[0].Marshal(), s.HostKey.Marshal()) || s.HostKeys[1].Type() != ssh.KeyAlgoECDSA256 {
		t.Fatalf("HostKeys = %v", s.HostKeys)
	}
	// The server offers the ECDSA key when asked for it.
	var got ssh.PublicKey
	_, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:              s.User,
		HostKeyAlgorithms: []string{ssh.KeyAlgoECDSA256},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			got = k
			return errors.New("stop")
		},
	})
	if err == nil || got == nil || !bytes.Equal(got.Marshal(), s.HostKeys[1].Marshal()) {
		t.Fatalf("offered %v (err %v), want the ECDSA host key", got, err)
	}
}

func TestHungListener(t *testing.T) {
	addr := HungListener(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read %d bytes, err %v; want a timeout", n, err)
	}
}

// testing.TB satisfies TB, so every test can call Start.
var _ TB = testing.TB(nil)

func TestStartWithConfig(t *testing.T) {
	s := Start(t, WithConfig("MaxStartups 1000\nMaxSessions 1000"), WithConfig("LogLevel ERROR"))
	// sshd -T prints the settings in effect: the added lines must win over
	// Start's own MaxStartups and MaxSessions.
	out, err := exec.Command(findSSHD(t), "-T", "-f", filepath.Join(s.Dir, "sshd_config")).CombinedOutput()
	if err != nil {
		t.Fatalf("sshd -T: %v\n%s", err, out)
	}
	for _, want := range []string{"maxstartups 1000:", "maxsessions 1000\n", "loglevel ERROR\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sshd -T does not show %q:\n%s", want, out)
		}
	}
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.ClientSigner)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
		Timeout:         5 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
}

// TestCleanupEndsConnections checks that the cleanup of Start returns while
// a client still holds a connection, and closes that connection: sshd's
// per-connection processes run in sessions of their own, outside sshd's
// process group.
func TestCleanupEndsConnections(t *testing.T) {
	tb := &cleanupTB{TB: t}
	s := Start(tb)
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.ClientSigner)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
		Timeout:         5 * time.Second,
	})
	if err != nil {
		tb.cleanup()
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if _, err := c.NewSession(); err != nil {
		t.Errorf("session: %v", err)
	}

	cleaned := make(chan struct{})
	go func() {
		tb.cleanup()
		close(cleaned)
	}()
	testutil.Receive(t, cleaned, "return of the cleanup while a connection was open")
	ended := make(chan error, 1)
	go func() { ended <- c.Wait() }()
	testutil.Receive(t, ended, "end of the connection once the server stopped")
}

// cleanupTB is a TB whose Cleanup functions run when the test calls cleanup.
type cleanupTB struct {
	TB
	fns []func()
}

func (tb *cleanupTB) Cleanup(f func()) { tb.fns = append(tb.fns, f) }

func (tb *cleanupTB) cleanup() {
	for i := len(tb.fns) - 1; i >= 0; i-- {
		tb.fns[i]()
	}
	tb.fns = nil
}
