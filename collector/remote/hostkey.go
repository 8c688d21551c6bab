package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Fingerprint returns the SHA256 fingerprint of key as ssh-keygen -l prints
// it: "SHA256:...".
func Fingerprint(key ssh.PublicKey) string {
	return ssh.FingerprintSHA256(key)
}

// hostKeys is the known_hosts database of one file. It does not change once
// read and is safe for concurrent use (readKnownHosts shares it).
type hostKeys struct {
	file  string
	check ssh.HostKeyCallback
	// caLines are the lines of @cert-authority entries. When there are any,
	// servers are asked for a host certificate first (knownhosts checks
	// it). knownhosts also counts these lines among the keys "recorded" for
	// every host they match (KeyError.Want), which they are not: see want.
	caLines map[int]bool
}

// want returns the keys a KeyError says are recorded for the address, less
// the @cert-authority lines.
func (h *hostKeys) want(ke *knownhosts.KeyError) []knownhosts.KnownKey {
	var out []knownhosts.KnownKey
	for _, k := range ke.Want {
		if !h.caLines[k.Line] {
			out = append(out, k)
		}
	}
	return out
}

// knownHostsCache holds the known_hosts files parsed so far, by path.
var knownHostsCache fileCache[string, *hostKeys]

// readKnownHosts reads the known_hosts file at path, parsed once per
// process while the file is unchanged. A missing file is an empty database;
// a file without a single valid line is an error.
func readKnownHosts(path string) (*hostKeys, error) {
	if path == "" {
		return nil, errors.New("no known_hosts file given")
	}
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		check, err := knownhosts.New()
		if err != nil {
			return nil, fmt.Errorf("read known_hosts file %s: %w", path, err)
		}
		return &hostKeys{file: path, check: check}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known_hosts file %s: %w", path, err)
	}
	return knownHostsCache.get(path, info, func() (*hostKeys, bool, error) {
		check, err := knownhosts.New(path)
		var data []byte
		if err == nil {
			data, err = os.ReadFile(path)
		}
		if err != nil {
			// Not kept: an error of reading cannot be told from one of
			// parsing, and reading again is cheap.
			return nil, false, fmt.Errorf("read known_hosts file %s: %w", path, err)
		}
		return &hostKeys{file: path, check: check, caLines: certAuthorityLines(data)}, true, nil
	})
}

// probeKey is a key that no known_hosts file records: checking it for an
// address returns every key recorded for that address in a KeyError.
var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
})

// recorded returns the keys recorded for addr.
func (h *hostKeys) recorded(addr string) []knownhosts.KnownKey {
	var ke *knownhosts.KeyError
	if errors.As(h.check(addr, &net.TCPAddr{}, probeKey()), &ke) {
		return h.want(ke)
	}
	return nil
}

// certAuthorityLines returns the numbers of the @cert-authority lines of a
// known_hosts file. Which hosts they cover is left to knownhosts.
func certAuthorityLines(data []byte) map[int]bool {
	var lines map[int]bool
	for i, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "@cert-authority" {
			if lines == nil {
				lines = map[int]bool{}
			}
			lines[i+1] = true
		}
	}
	return lines
}

// certAlgorithms are the host certificate algorithms asked for first when
// the known_hosts file trusts a certificate authority.
var certAlgorithms = []string{
	ssh.CertAlgoED25519v01,
	ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
}

// algorithms returns the host key algorithms that match the key types
// recorded for addr, or nil when none are recorded. Without it, a server with
// several host keys may offer one of a type not recorded here, and the check
// would report a changed key although the recorded one is still valid. When
// the file has an @cert-authority line, host certificates come first (a
// server without one offers a plain key): of every type, since the CA's key
// type says nothing of the host key's, then the recorded types, or every
// plain type when none is recorded.
func (h *hostKeys) algorithms(addr string) []string {
	algos := h.recordedAlgorithms(addr)
	if len(h.caLines) == 0 {
		return algos
	}
	if len(algos) == 0 {
		algos = fetchAlgorithms
	}
	return slices.Concat(certAlgorithms, algos)
}

func (h *hostKeys) recordedAlgorithms(addr string) []string {
	var algos []string
	for _, k := range h.recorded(addr) {
		for _, a := range algorithmsForKeyType(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsForKeyType(t string) []string {
	switch t {
	case ssh.KeyAlgoRSA:
		// RSA keys sign with SHA-2; the SHA-1 "ssh-rsa" signature is off by
		// default in OpenSSH and here.
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return []string{t}
	}
	return nil
}

// fetchAlgorithms is the host key preference of FetchHostKey when the
// known_hosts file records no key for the address: plain keys, strongest and
// most common first, like OpenSSH.
var fetchAlgorithms = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// verify checks key, offered by the server of ep, against the database.
func (h *hostKeys) verify(ep Endpoint, key ssh.PublicKey) error {
	err := h.check(ep.Addr, &net.TCPAddr{}, key)
	if err == nil {
		return nil
	}
	var (
		ke *knownhosts.KeyError
		re *knownhosts.RevokedError
	)
	if cert, ok := key.(*ssh.Certificate); ok {
		// Not accepted as a certificate: like OpenSSH, check the plain key
		// it certifies, and say why the certificate was not enough.
		plainErr := h.check(ep.Addr, &net.TCPAddr{}, cert.Key)
		if plainErr == nil {
			return nil
		}
		if errors.As(plainErr, &ke) && len(h.want(ke)) > 0 {
			return h.verify(ep, cert.Key) // a changed key, certificate or not
		}
		return &HostCertError{Name: ep.name(), Addr: ep.Addr, KnownHosts: h.file, Cert: cert, Err: err}
	}
	switch {
	case errors.As(err, &ke) && len(h.want(ke)) == 0:
		return &UnknownHostError{Name: ep.name(), Addr: ep.Addr, KnownHosts: h.file, Key: key, Fingerprint: Fingerprint(key)}
	case errors.As(err, &ke):
		e := &HostKeyChangedError{Name: ep.name(), Addr: ep.Addr, KnownHosts: h.file, Key: key, Fingerprint: Fingerprint(key)}
		for _, w := range h.want(ke) {
			e.Lines = append(e.Lines, w.Line)
		}
		return e
	case errors.As(err, &re):
		return withFix(fmt.Errorf("%s: host key %s %s is marked @revoked in %s:%d",
			ep, keyType(key), Fingerprint(key), re.Revoked.Filename, re.Revoked.Line), "the server must get a new host key")
	}
	return fmt.Errorf("%s: check host key against %s: %w", ep, h.file, err)
}

// AddKnownHost appends a line for addr (host:port; port 22 when missing) and
// key to the known_hosts file at path, creating the file (mode 0600) and its
// directory (0700) when missing. It does nothing when key is already recorded
// for addr, and refuses a key that the file marks @revoked. Other keys
// recorded for addr stay; removing a changed key is left to the user.
func AddKnownHost(path, addr string, key ssh.PublicKey) error {
	if cert, ok := key.(*ssh.Certificate); ok {
		key = cert.Key // known_hosts records keys; certificates are trusted through their CA
	}
	addr = withPort(addr)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("add %s to known_hosts: %w", addr, err)
	}
	h, err := readKnownHosts(path)
	if err != nil {
		return err
	}
	var re *knownhosts.RevokedError
	switch err := h.check(addr, &net.TCPAddr{}, key); {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return fmt.Errorf("add %s to known_hosts: key %s is marked @revoked in %s:%d",
			addr, Fingerprint(key), re.Revoked.Filename, re.Revoked.Line)
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("add %s to known_hosts: %w", addr, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("add %s to known_hosts: %w", addr, err)
	}
	line := knownhosts.Line([]string{addr}, key) + "\n"
	// Start on a line of our own when the file does not end with a newline.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err != nil && err != io.EOF {
			f.Close()
			return fmt.Errorf("add %s to known_hosts: read %s: %w", addr, path, err)
		}
		if last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("add %s to known_hosts: write %s: %w", addr, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("add %s to known_hosts: write %s: %w", addr, path, err)
	}
	return nil
}

// withPort adds the SSH port to an address without one.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) && ae.Err == "missing port in address" {
			return net.JoinHostPort(addr, "22")
		}
	}
	return addr
}

// CheckKnownHost checks key against what ep's known_hosts file records for
// ep.Addr, as Dial would: nil when it is recorded, an *UnknownHostError when
// nothing is, and a *HostKeyChangedError when another key is.
func CheckKnownHost(ep Endpoint, key ssh.PublicKey) error {
	h, err := readKnownHosts(ep.KnownHosts)
	if err != nil {
		return fmt.Errorf("%s: %w", ep, err)
	}
	return h.verify(ep, key)
}
