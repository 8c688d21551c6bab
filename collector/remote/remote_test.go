package remote_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/remote"
)

// endpoint returns an endpoint that reaches s with its client key, without
// the agent of the environment.
func endpoint(s *sshdtest.Server, name string) remote.Endpoint {
	return remote.Endpoint{
		Name:           name,
		Addr:           s.Addr,
		User:           s.User,
		IdentityFiles:  []string{s.ClientKeyFile},
		NoAgent:        true,
		KnownHosts:     s.KnownHostsFile,
		ConnectTimeout: 5 * time.Second,
	}
}

func dial(t *testing.T, route ...remote.Endpoint) *remote.Client {
	t.Helper()
	c, err := remote.Dial(context.Background(), route)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sleepHung is a command that Run must cut short, and prompt the time Run
// may take to do so: a Run that waited for the command would take three
// times as long. Both are far beyond any delay of a loaded machine, so that
// the checks guard against waiting for the command rather than time the
// machine.
const (
	sleepHung = "sleep 60"
	prompt    = 20 * time.Second
)

type runner interface {
	Run(ctx context.Context, cmd string, stdin io.Reader, maxStdout int64) (remote.Result, error)
}

// TestRunContract checks the contract of Run on a Client and on Local.
func TestRunContract(t *testing.T) {
	srv := sshdtest.Start(t)
	runners := map[string]runner{
		"ssh":   dial(t, endpoint(srv, "web1")),
		"local": remote.Local{},
	}
	for name, r := range runners {
		t.Run(name, func(t *testing.T) { testRunContract(t, r) })
	}
}

func testRunContract(t *testing.T, r runner) {
	ctx := context.Background()

	t.Run("echo", func(t *testing.T) {
		res, err := r.Run(ctx, "echo hi", nil, 100)
		if err != nil || string(res.Stdout) != "hi\n" || res.ExitStatus != 0 || res.Signal != "" {
			t.Fatalf("got %+v, %v", res, err)
		}
	})

	t.Run("exit status", func(t *testing.T) {
		res, err := r.Run(ctx, "echo out; echo oops >&2; exit 3", nil, 100)
		if err != nil {
			t.Fatalf("a non-zero exit is not an error: %v", err)
		}
		if res.ExitStatus != 3 || string(res.Stdout) != "out\n" || string(res.Stderr) != "oops\n" {
			t.Fatalf("got %+v", res)
		}
	})

	t.Run("signal", func(t *testing.T) {
		res, err := r.Run(ctx, "kill -KILL $$", nil, 100)
		if err != nil || res.ExitStatus != -1 || res.Signal != "KILL" {
			t.Fatalf("got %+v, %v; want exit -1, signal KILL", res, err)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		data := make([]byte, 5<<20)
		rand.Read(data)
		sum := sha256.Sum256(data)
		res, err := r.Run(ctx, "sha256sum", bytes.NewReader(data), 1000)
		if err != nil || res.ExitStatus != 0 {
			t.Fatalf("got %+v, %v", res, err)
		}
		if got, want := strings.Fields(string(res.Stdout)), hex.EncodeToString(sum[:]); len(got) == 0 || got[0] != want {
			t.Fatalf("sha256sum printed %q, want %s", res.Stdout, want)
		}
	})

	t.Run("stdin large output", func(t *testing.T) {
		data := make([]byte, 3<<20)
		rand.Read(data)
		res, err := r.Run(ctx, "cat", bytes.NewReader(data), 4<<20)
		if err != nil || !bytes.Equal(res.Stdout, data) {
			t.Fatalf("cat returned %d bytes (want %d), %v", len(res.Stdout), len(data), err)
		}
	})

	t.Run("stderr keeps the tail", func(t *testing.T) {
		res, err := r.Run(ctx, "head -c 200000 /dev/zero >&2; echo last >&2", nil, 100)
		if err != nil || len(res.Stderr) != remote.MaxStderr || !bytes.HasSuffix(res.Stderr, []byte("\x00last\n")) {
			t.Fatalf("stderr of %d bytes ending %q, %v", len(res.Stderr), res.Stderr[max(0, len(res.Stderr)-8):], err)
		}
	})

	for _, cmd := range []string{"head -c 10000000 /dev/zero", "yes", "head -c 2000000 /dev/zero; " + sleepHung} {
		t.Run("stdout cap/"+cmd, func(t *testing.T) {
			start := time.Now()
			res, err := r.Run(ctx, cmd, nil, 1<<20)
			if !errors.Is(err, remote.ErrOutputTooLarge) {
				t.Fatalf("err = %v, want ErrOutputTooLarge", err)
			}
			if len(res.Stdout) != 1<<20 {
				t.Errorf("kept %d bytes of stdout, want the first %d", len(res.Stdout), 1<<20)
			}
			if d := time.Since(start); d > prompt {
				t.Errorf("returned after %v: it waited for the command", d)
			}
		})
	}

	t.Run("exact cap is fine", func(t *testing.T) {
		res, err := r.Run(ctx, "head -c 1000 /dev/zero", nil, 1000)
		if err != nil || len(res.Stdout) != 1000 {
			t.Fatalf("got %d bytes, %v", len(res.Stdout), err)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := r.Run(ctx, sleepHung, nil, 100)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > prompt {
			t.Errorf("returned after %v: it waited for the command", d)
		}
	})

	t.Run("cancel with stdin pending", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := r.Run(ctx, sleepHung, bytes.NewReader(make([]byte, 10<<20)), 100)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
		if d := time.Since(start); d > prompt {
			t.Errorf("returned after %v: it waited for the command", d)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				res, err := r.Run(ctx, fmt.Sprintf("echo %d", i), nil, 100)
				if err != nil || string(res.Stdout) != fmt.Sprintf("%d\n", i) {
					t.Errorf("run %d: %+v, %v", i, res, err)
				}
			})
		}
		wg.Wait()
	})
}

func TestRunAfterClose(t *testing.T) {
	srv := sshdtest.Start(t)
	c, err := remote.Dial(context.Background(), []remote.Endpoint{endpoint(srv, "web1")})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = c.Run(context.Background(), "true", nil, 100)
	if err == nil || !strings.Contains(err.Error(), "web1 ("+srv.Addr+")") {
		t.Fatalf("err = %v, want an error naming web1", err)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"abc", "'abc'"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{"$(id)", "'$(id)'"},
	}
	for _, tt := range tests {
		if got := remote.Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestQuoteInShell(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	for _, s := range []string{
		"", "plain", "a b", "*", "?", "~", "$HOME", "$(id)", "`id`", `\n`, "\n", "a\tb",
		`x'; touch ` + pwned + `; '`, `"; touch ` + pwned + `; "`, "; touch " + pwned,
		"''", `\'`, "-n", "%s %d", "ünïcödé", "a\\", "!", "{a,b}", "#",
	} {
		t.Run(fmt.Sprintf("%q", s), func(t *testing.T) {
			res, err := remote.Local{}.Run(context.Background(), "cd "+remote.Quote(dir)+" && printf %s "+remote.Quote(s), nil, 1000)
			if err != nil || res.ExitStatus != 0 {
				t.Fatalf("got %+v, %v", res, err)
			}
			if string(res.Stdout) != s {
				t.Errorf("printf echoed %q", res.Stdout)
			}
			if _, err := os.Stat(pwned); err == nil {
				t.Fatalf("the quoted string ran a command")
			}
		})
	}
}

func TestDialUnknownHost(t *testing.T) {
	srv := sshdtest.Start(t)
	for name, content := range map[string]*string{
		"missing file": nil,
		"other host":   ptr(knownhosts.Line([]string{"192.0.2.1:22"}, srv.HostKey) + "\n"),
	} {
		t.Run(name, func(t *testing.T) {
			ep := endpoint(srv, "web1")
			ep.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
			if content != nil {
				writeFile(t, ep.KnownHosts, *content)
			}
			_, err := remote.Dial(context.Background(), []remote.Endpoint{ep})
			var ue *remote.UnknownHostError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want *UnknownHostError", err)
			}
			if ue.Name != "web1" || ue.Addr != srv.Addr || ue.KnownHosts != ep.KnownHosts ||
				ue.Fingerprint != remote.Fingerprint(srv.HostKey) {
				t.Errorf("got %+v", ue)
			}
			want := fmt.Sprintf("web1 (%s): host key is not known (ED25519 %s not in %s); check the fingerprint and run: collector trust web1",
				srv.Addr, ssh.FingerprintSHA256(srv.HostKey), ep.KnownHosts)
			if err.Error() != want {
				t.Errorf("message:\n%s\nwant:\n%s", err, want)
			}
		})
	}
}

func TestDialHostKeyChanged(t *testing.T) {
	srv := sshdtest.Start(t)
	ep := endpoint(srv, "web1")
	ep.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, ep.KnownHosts, "# a comment\n"+knownhosts.Line([]string{srv.Addr}, newKey(t))+"\n")

	_, err := remote.Dial(context.Background(), []remote.Endpoint{ep})
	var ce *remote.HostKeyChangedError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *HostKeyChangedError", err)
	}
	if ce.Name != "web1" || ce.Addr != srv.Addr || len(ce.Lines) != 1 || ce.Lines[0] != 2 ||
		ce.Fingerprint != remote.Fingerprint(srv.HostKey) {
		t.Errorf("got %+v", ce)
	}
	for _, want := range []string{
		"web1 (" + srv.Addr + "): host key CHANGED", "attack", "reinstalled",
		ep.KnownHosts + ":2", "ssh-keygen -R '[127.0.0.1]:" + fmt.Sprint(srv.Port) + "'", "collector trust web1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

// TestDialHostKeyAlgorithms checks that a server with several host keys is
// asked for the type recorded, not reported as changed.
func TestDialHostKeyAlgorithms(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.WithECDSAHostKey())
	for _, key := range srv.HostKeys {
		t.Run(key.Type(), func(t *testing.T) {
			ep := endpoint(srv, "web1")
			ep.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
			writeFile(t, ep.KnownHosts, knownhosts.Line([]string{srv.Addr}, key)+"\n")
			c := dial(t, ep)
			if _, err := c.Run(context.Background(), "true", nil, 10); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDialBadKnownHosts(t *testing.T) {
	srv := sshdtest.Start(t)
	ep := endpoint(srv, "web1")
	ep.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, ep.KnownHosts, "this is not a known_hosts file\n")
	_, err := remote.Dial(context.Background(), []remote.Endpoint{ep})
	var ue *remote.UnknownHostError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), ep.KnownHosts) || !strings.Contains(err.Error(), "web1") {
		t.Fatalf("err = %v, want an error naming web1 and %s", err, ep.KnownHosts)
	}

	ep.KnownHosts = ""
	if _, err := remote.Dial(context.Background(), []remote.Endpoint{ep}); err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Fatalf("empty KnownHosts: err = %v", err)
	}
}

func TestDialAuthError(t *testing.T) {
	srv := sshdtest.Start(t)
	ep := endpoint(srv, "web1")
	ep.IdentityFiles = []string{writeKey(t, nil)}
	_, err := remote.Dial(context.Background(), []remote.Endpoint{ep})
	var ae *remote.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *AuthError", err)
	}
	if ae.Name != "web1" || ae.User != srv.User || len(ae.Keys) != 1 || !strings.HasPrefix(ae.Keys[0], ep.IdentityFiles[0]+" ED25519 SHA256:") ||
		len(ae.Methods) != 1 || ae.Methods[0] != "publickey" {
		t.Errorf("got %+v", ae)
	}
	for _, want := range []string{"web1 (" + srv.Addr + "): unable to authenticate as " + srv.User, "authorized_keys", "identity_file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

func TestDialEncryptedKey(t *testing.T) {
	srv := sshdtest.Start(t)
	key, err := os.ReadFile(srv.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint(srv, "web1")
	ep.IdentityFiles = []string{writeKey(t, raw, "secret")}

	ep.Passphrase = []byte("secret")
	dial(t, ep)

	ep.Passphrase = nil
	_, err = remote.Dial(context.Background(), []remote.Endpoint{ep})
	var ae *remote.AuthError
	if !errors.As(err, &ae) || len(ae.Skipped) != 1 || !strings.Contains(err.Error(), "no passphrase") {
		t.Fatalf("without passphrase: err = %v, want *AuthError naming the skipped file", err)
	}

	ep.Passphrase = []byte("wrong")
	if _, err := remote.Dial(context.Background(), []remote.Endpoint{ep}); err == nil || !strings.Contains(err.Error(), ep.IdentityFiles[0]) {
		t.Fatalf("wrong passphrase: err = %v, want an error naming the file", err)
	}
}

func TestDialMissingIdentityFile(t *testing.T) {
	srv := sshdtest.Start(t)
	ep := endpoint(srv, "web1")
	ep.IdentityFiles = []string{filepath.Join(t.TempDir(), "nope")}
	_, err := remote.Dial(context.Background(), []remote.Endpoint{ep})
	if err == nil || !strings.Contains(err.Error(), ep.IdentityFiles[0]) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want one naming the missing file", err)
	}
}

func TestDialAgent(t *testing.T) {
	srv := sshdtest.Start(t)
	t.Setenv("HOME", t.TempDir()) // no default identity files
	key, err := os.ReadFile(srv.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				agent.ServeAgent(keyring, c)
			}()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)

	ep := endpoint(srv, "web1")
	ep.IdentityFiles = nil
	ep.NoAgent = false
	c := dial(t, ep)
	if res, err := c.Run(context.Background(), "echo agent", nil, 100); err != nil || string(res.Stdout) != "agent\n" {
		t.Fatalf("got %+v, %v", res, err)
	}

	ep.NoAgent = true
	_, err = remote.Dial(context.Background(), []remote.Endpoint{ep})
	var ae *remote.AuthError
	if !errors.As(err, &ae) || len(ae.Keys) != 0 {
		t.Fatalf("without agent: err = %v, want *AuthError with no keys", err)
	}
}

func TestDialRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ep := remote.Endpoint{Name: "web1", Addr: addr, User: "u", KnownHosts: filepath.Join(t.TempDir(), "kh"), NoAgent: true}
	_, err = remote.Dial(context.Background(), []remote.Endpoint{ep})
	var de *remote.DialError
	if !errors.As(err, &de) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v, want *DialError for a refused connection", err)
	}
	if de.Name != "web1" || de.Addr != addr || !strings.HasPrefix(err.Error(), "web1 ("+addr+"): unreachable: ") {
		t.Errorf("got %+v: %v", de, err)
	}
}

func TestDialHandshakeTimeout(t *testing.T) {
	addr := sshdtest.HungListener(t)
	ep := remote.Endpoint{Name: "web1", Addr: addr, User: "u", KnownHosts: filepath.Join(t.TempDir(), "kh"), NoAgent: true,
		ConnectTimeout: 500 * time.Millisecond}
	start := time.Now()
	_, err := remote.Dial(context.Background(), []remote.Endpoint{ep})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	// A timeout cannot end the handshake early; the upper bound only
	// guards against a hang.
	if d := time.Since(start); d < 400*time.Millisecond || d > prompt {
		t.Errorf("returned after %v, want about 500ms", d)
	}
	if want := "handshake with web1 (" + addr + ") timed out after 500ms"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want it to start with %q", err, want)
	}

	// The caller's context counts too.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	ep.ConnectTimeout = time.Minute
	if _, err := remote.Dial(ctx, []remote.Endpoint{ep}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: err = %v", err)
	}
}

// forwarder accepts connections and forwards them to target. It counts the
// connections and can cut them all, or freeze them: drop everything sent
// either way while keeping the TCP connections open, as a powered-off host
// or a firewall that forgot the connection does.
type forwarder struct {
	addr     string
	accepted atomic.Int32
	frozen   atomic.Bool
	mu       sync.Mutex
	conns    []net.Conn
}

func newForwarder(t *testing.T, target string) *forwarder {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{addr: l.Addr().String()}
	t.Cleanup(func() { l.Close(); f.cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, u)
			f.mu.Unlock()
			go func() { f.copy(u, c); u.Close() }()
			go func() { f.copy(c, u); c.Close() }()
		}
	}()
	return f
}

// copy copies from src to dst, dropping what arrives while frozen.
func (f *forwarder) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !f.frozen.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *forwarder) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

// forwarded returns the endpoint name of srv reached through a new
// forwarder, whose address is trusted for srv's host key, so that a test
// sees and cuts the connections to it.
func forwarded(t *testing.T, srv *sshdtest.Server, name string) (remote.Endpoint, *forwarder) {
	t.Helper()
	fwd := newForwarder(t, srv.Addr)
	if err := remote.AddKnownHost(srv.KnownHostsFile, fwd.addr, srv.HostKey); err != nil {
		t.Fatal(err)
	}
	ep := endpoint(srv, name)
	ep.Addr = fwd.addr
	return ep, fwd
}

func TestDialJumpHost(t *testing.T) {
	srv := sshdtest.Start(t)
	// The bastion is reached through a forwarder, so that the test sees
	// that the target connection rides on the bastion's.
	bastion, fwd := forwarded(t, srv, "bastion")
	target := endpoint(srv, "web1")

	c := dial(t, bastion, target)
	res, err := c.Run(context.Background(), "echo via", nil, 100)
	if err != nil || string(res.Stdout) != "via\n" {
		t.Fatalf("got %+v, %v", res, err)
	}
	if n := fwd.accepted.Load(); n != 1 {
		t.Fatalf("the bastion got %d connections, want 1", n)
	}
	// Cutting the bastion's connection cuts the target's.
	fwd.cut()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Run(ctx, "echo direct", nil, 100); err == nil {
		t.Fatal("the target connection survived its jump host")
	}

	t.Run("target fails", func(t *testing.T) {
		target := target
		target.KnownHosts = filepath.Join(t.TempDir(), "empty")
		_, err := remote.Dial(context.Background(), []remote.Endpoint{bastion, target})
		var ue *remote.UnknownHostError
		if !errors.As(err, &ue) || ue.Name != "web1" || !strings.HasPrefix(err.Error(), "via bastion: web1 (") {
			t.Fatalf("err = %v, want *UnknownHostError for web1 via bastion", err)
		}
	})

	t.Run("target refused", func(t *testing.T) {
		target := target
		target.Addr = closedPort(t)
		_, err := remote.Dial(context.Background(), []remote.Endpoint{bastion, target})
		var de *remote.DialError
		if !errors.As(err, &de) || de.Name != "web1" || !strings.HasPrefix(err.Error(), "via bastion: web1 (") {
			t.Fatalf("err = %v, want *DialError for web1 via bastion", err)
		}
	})

	t.Run("bastion fails", func(t *testing.T) {
		bastion := bastion
		bastion.Addr = closedPort(t)
		_, err := remote.Dial(context.Background(), []remote.Endpoint{bastion, target})
		var de *remote.DialError
		if !errors.As(err, &de) || de.Name != "bastion" || !strings.HasPrefix(err.Error(), "jump host for web1: bastion (") {
			t.Fatalf("err = %v, want *DialError for the bastion", err)
		}
	})
}

func TestFetchHostKeyAndTrust(t *testing.T) {
	srv := sshdtest.Start(t)
	ep := endpoint(srv, "web1")
	ep.KnownHosts = filepath.Join(t.TempDir(), "sub", "known_hosts")

	if _, err := remote.Dial(context.Background(), []remote.Endpoint{ep}); !errors.As(err, new(*remote.UnknownHostError)) {
		t.Fatalf("before trust: err = %v, want *UnknownHostError", err)
	}
	key, err := remote.FetchHostKey(context.Background(), []remote.Endpoint{ep})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key.Marshal(), srv.HostKey.Marshal()) {
		t.Fatalf("fetched %s, want %s", remote.Fingerprint(key), remote.Fingerprint(srv.HostKey))
	}
	for range 2 {
		if err := remote.AddKnownHost(ep.KnownHosts, ep.Addr, key); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(ep.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	if want := knownhosts.Line([]string{srv.Addr}, key) + "\n"; string(data) != want {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", data, want)
	}
	for path, mode := range map[string]os.FileMode{ep.KnownHosts: 0o600, filepath.Dir(ep.KnownHosts): 0o700 | os.ModeDir} {
		if st, err := os.Stat(path); err != nil || st.Mode() != mode {
			t.Errorf("%s: mode %v, %v; want %v", path, st.Mode(), err, mode)
		}
	}
	dial(t, ep)
}

func TestFetchHostKeyThroughJump(t *testing.T) {
	srv := sshdtest.Start(t)
	target := endpoint(srv, "web1")
	target.KnownHosts = ""
	key, err := remote.FetchHostKey(context.Background(), []remote.Endpoint{endpoint(srv, "bastion"), target})
	if err != nil || !bytes.Equal(key.Marshal(), srv.HostKey.Marshal()) {
		t.Fatalf("got %v, %v", key, err)
	}

	bastion := endpoint(srv, "bastion")
	bastion.KnownHosts = filepath.Join(t.TempDir(), "empty")
	_, err = remote.FetchHostKey(context.Background(), []remote.Endpoint{bastion, target})
	var ue *remote.UnknownHostError
	if !errors.As(err, &ue) || ue.Name != "bastion" {
		t.Fatalf("unknown bastion: err = %v, want *UnknownHostError for bastion", err)
	}
}

func TestAddKnownHost(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := newKey(t), newKey(t)
	path := filepath.Join(dir, "known_hosts")
	writeFile(t, path, "# no newline at the end")
	steps := []struct {
		addr string
		key  ssh.PublicKey
	}{
		{"10.0.0.1:22", k1},
		{"10.0.0.1", k1}, // the same host: port 22 is the default
		{"10.0.0.1:2222", k1},
		{"10.0.0.1:22", k2},
		{"10.0.0.1:22", k2},
	}
	for _, s := range steps {
		if err := remote.AddKnownHost(path, s.addr, s.key); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# no newline at the end\n" +
		knownhosts.Line([]string{"10.0.0.1:22"}, k1) + "\n" +
		knownhosts.Line([]string{"10.0.0.1:2222"}, k1) + "\n" +
		knownhosts.Line([]string{"10.0.0.1:22"}, k2) + "\n"
	if string(data) != want {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", data, want)
	}
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func newKey(t *testing.T) ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeKey writes key (a new one when nil) as an OpenSSH private key file,
// encrypted with the passphrase when one is given, and returns its path.
func writeKey(t *testing.T, key any, passphrase ...string) string {
	if key == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = priv
	}
	var (
		block *pem.Block
		err   error
	)
	if len(passphrase) > 0 {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(passphrase[0]))
	} else {
		block, err = ssh.MarshalPrivateKey(key, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id")
	writeFile(t, path, string(pem.EncodeToMemory(block)))
	return path
}

func writeFile(t *testing.T, path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestCheckKnownHost(t *testing.T) {
	srv := sshdtest.Start(t)
	ep := remote.Endpoint{Name: "web1", Addr: srv.Addr, KnownHosts: srv.KnownHostsFile}
	if err := remote.CheckKnownHost(ep, srv.HostKey); err != nil {
		t.Errorf("recorded key: %v", err)
	}
	other := sshdtest.Start(t)
	var changed *remote.HostKeyChangedError
	if err := remote.CheckKnownHost(ep, other.HostKey); !errors.As(err, &changed) {
		t.Errorf("another key: %v, want *HostKeyChangedError", err)
	}
	ep.KnownHosts = filepath.Join(t.TempDir(), "missing")
	var unknown *remote.UnknownHostError
	if err := remote.CheckKnownHost(ep, srv.HostKey); !errors.As(err, &unknown) {
		t.Errorf("missing file: %v, want *UnknownHostError", err)
	}
}

// TestFetchHostKeyRecordedType checks that trust (FetchHostKey, then
// CheckKnownHost) agrees with Dial about a server with several host keys:
// with only the ECDSA key recorded, the key fetched is that one, not the
// ed25519 key the server would offer first.
func TestFetchHostKeyRecordedType(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.WithECDSAHostKey())
	for _, recorded := range srv.HostKeys {
		t.Run(recorded.Type(), func(t *testing.T) {
			ep := endpoint(srv, "web1")
			ep.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
			writeFile(t, ep.KnownHosts, knownhosts.Line([]string{srv.Addr}, recorded)+"\n")
			dial(t, ep)

			key, err := remote.FetchHostKey(context.Background(), []remote.Endpoint{ep})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(key.Marshal(), recorded.Marshal()) {
				t.Fatalf("fetched %s %s, want the recorded %s %s", key.Type(), remote.Fingerprint(key), recorded.Type(), remote.Fingerprint(recorded))
			}
			if err := remote.CheckKnownHost(ep, key); err != nil {
				t.Fatalf("CheckKnownHost: %v", err)
			}
		})
	}

	t.Run("nothing recorded", func(t *testing.T) {
		ep := endpoint(srv, "web1")
		ep.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
		key, err := remote.FetchHostKey(context.Background(), []remote.Endpoint{ep})
		if err != nil || !bytes.Equal(key.Marshal(), srv.HostKey.Marshal()) {
			t.Fatalf("got %v, %v; want the ed25519 key, the first preference", key, err)
		}
	})

	// A server that no longer holds a key of the recorded type (reinstalled,
	// or someone else) is fetched all the same, and reported as changed.
	t.Run("recorded type gone", func(t *testing.T) {
		other := sshdtest.Start(t) // ed25519 only
		ep := endpoint(other, "web1")
		ep.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
		writeFile(t, ep.KnownHosts, knownhosts.Line([]string{other.Addr}, srv.HostKeys[1])+"\n")
		key, err := remote.FetchHostKey(context.Background(), []remote.Endpoint{ep})
		if err != nil || !bytes.Equal(key.Marshal(), other.HostKey.Marshal()) {
			t.Fatalf("got %v, %v; want the server's ed25519 key", key, err)
		}
		var changed *remote.HostKeyChangedError
		if err := remote.CheckKnownHost(ep, key); !errors.As(err, &changed) {
			t.Fatalf("CheckKnownHost: %v, want *HostKeyChangedError", err)
		}
	})
}

// TestDialConnectTimeoutExcludesKeys checks that a hop's connect timeout
// bounds the network, not the decryption of an identity file, and that the
// decrypted key is kept for the next dial.
func TestDialConnectTimeoutExcludesKeys(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed")
	}
	srv := sshdtest.Start(t)
	// A key whose passphrase takes a while to derive (bcrypt, 96 rounds):
	// several times a loopback handshake, even on a loaded machine, where
	// both take longer.
	keyFile := filepath.Join(t.TempDir(), "id_slow")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-a", "96", "-N", "secret", "-C", "", "-f", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	signer, err := ssh.ParsePrivateKeyWithPassphrase(pem, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	decrypt := time.Since(start)
	if decrypt < 150*time.Millisecond {
		t.Skipf("decrypting the key took only %v", decrypt)
	}
	authorized := filepath.Join(srv.Dir, "authorized_keys")
	f, err := os.OpenFile(authorized, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(ssh.MarshalAuthorizedKey(signer.PublicKey())); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Old enough to be kept once parsed.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(keyFile, old, old); err != nil {
		t.Fatal(err)
	}

	ep := endpoint(srv, "web1")
	ep.IdentityFiles = []string{keyFile}
	ep.Passphrase = []byte("secret")
	ep.ConnectTimeout = decrypt * 2 / 3 // enough for a loopback handshake
	for i := range 2 {
		start := time.Now()
		c, err := remote.Dial(context.Background(), []remote.Endpoint{ep})
		if err != nil {
			t.Fatalf("dial %d (connect timeout %v, decryption %v): %v", i+1, ep.ConnectTimeout, decrypt, err)
		}
		c.Close()
		t.Logf("dial %d took %v", i+1, time.Since(start))
	}
}
