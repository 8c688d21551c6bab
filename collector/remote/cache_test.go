package remote

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// writeIdentity writes a new ed25519 private key to path (encrypted when a
// passphrase is given), dated mtime, and returns its public key. Every such
// file has the same size.
func writeIdentity(t *testing.T, path string, mtime time.Time, passphrase ...string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if len(passphrase) > 0 {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase[0]))
	} else {
		block, err = ssh.MarshalPrivateKey(priv, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	writeDated(t, path, pem.EncodeToMemory(block), mtime)
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// writeDated writes data to path in place and sets its modification time.
func writeDated(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func mustLoadIdentity(t *testing.T, path string, passphrase []byte) ssh.Signer {
	t.Helper()
	s, err := loadIdentity(path, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sameKey(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

func TestIdentityCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	pub := writeIdentity(t, path, old)

	first := mustLoadIdentity(t, path, nil)
	if !sameKey(first.PublicKey(), pub) {
		t.Fatal("loaded another key")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if s, err := loadIdentity(path, nil); err != nil || s != first {
				t.Errorf("cache hit: got %v, %v; want the signer parsed first", s, err)
			}
		})
	}
	wg.Wait()

	// A new key of the same size and another modification time.
	pub = writeIdentity(t, path, old.Add(time.Second))
	if s := mustLoadIdentity(t, path, nil); s == first || !sameKey(s.PublicKey(), pub) {
		t.Fatal("changed modification time: the file was not read again")
	}

	// The same size and modification time, but another file (replaced by a
	// rename, as editors and ssh-keygen do).
	cached := mustLoadIdentity(t, path, nil)
	tmp := path + ".new"
	pub = writeIdentity(t, tmp, old.Add(time.Second))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if s := mustLoadIdentity(t, path, nil); s == cached || !sameKey(s.PublicKey(), pub) {
		t.Fatal("file replaced: the file was not read again")
	}
}

// TestIdentityCacheRacy checks that a file written just before it was read
// is read again, even when rewritten in place with the same size and
// modification time (a coarse file system clock).
func TestIdentityCacheRacy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id")
	now := time.Now()
	writeIdentity(t, path, now)
	first := mustLoadIdentity(t, path, nil)
	pub := writeIdentity(t, path, now)
	if s := mustLoadIdentity(t, path, nil); s == first || !sameKey(s.PublicKey(), pub) {
		t.Fatal("a file modified as it was read was not read again")
	}
}

func TestIdentityCachePassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id")
	pub := writeIdentity(t, path, time.Now().Add(-time.Hour), "secret")

	first := mustLoadIdentity(t, path, []byte("secret"))
	if !sameKey(first.PublicKey(), pub) {
		t.Fatal("decrypted another key")
	}
	var missing *ssh.PassphraseMissingError
	if _, err := loadIdentity(path, nil); !errors.As(err, &missing) {
		t.Fatalf("no passphrase: err = %v, want *ssh.PassphraseMissingError", err)
	}
	if _, err := loadIdentity(path, []byte("wrong")); err == nil {
		t.Fatal("wrong passphrase: no error")
	}
	if _, err := loadIdentity(path, []byte{}); err == nil {
		t.Fatal("empty passphrase: no error")
	}
	if s := mustLoadIdentity(t, path, []byte("secret")); s != first {
		t.Fatal("the right passphrase again: the key was decrypted again")
	}
}

func TestIdentityCacheReadError(t *testing.T) {
	dir := t.TempDir()
	var pe *os.PathError
	if _, err := loadIdentity(filepath.Join(dir, "missing"), nil); !errors.As(err, &pe) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v", err)
	}
	// A directory opens and stats, but cannot be read: not kept.
	if _, err := loadIdentity(dir, nil); !errors.As(err, &pe) {
		t.Fatalf("directory: err = %v, want *fs.PathError", err)
	}
	identityCache.mu.Lock()
	_, kept := identityCache.m[identityKey{path: dir, passphrase: sha256.Sum256(nil)}]
	identityCache.mu.Unlock()
	if kept {
		t.Error("a read error was kept")
	}
}

func TestKnownHostsCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	k1, k2 := newTestKey(t), newTestKey(t)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	writeDated(t, path, []byte(knownhosts.Line([]string{"10.0.0.1:22"}, k1)+"\n"), old)

	first, err := readKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := readKnownHosts(path); err != nil || again != first {
		t.Fatalf("cache hit: got %p, %v; want %p", again, err, first)
	}

	// trust records a key: the next read sees it.
	if err := AddKnownHost(path, "10.0.0.2:22", k2); err != nil {
		t.Fatal(err)
	}
	h, err := readKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.check("10.0.0.2:22", &net.TCPAddr{}, k2); err != nil {
		t.Fatalf("the key just recorded: %v", err)
	}

	// The same size and modification time, another key: replaced by a
	// rename, the file is read again.
	tmp := path + ".new"
	writeDated(t, tmp, []byte(knownhosts.Line([]string{"10.0.0.1:22"}, k2)+"\n"), old)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	h, err = readKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.check("10.0.0.1:22", &net.TCPAddr{}, k2); err != nil {
		t.Fatalf("replaced file: %v", err)
	}

	// A missing file records no host.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if h, err := readKnownHosts(path); err != nil || len(h.recorded("10.0.0.1:22")) != 0 {
		t.Fatalf("removed file: %v, %v", h, err)
	}
}

func newTestKey(t *testing.T) ssh.PublicKey {
	t.Helper()
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
