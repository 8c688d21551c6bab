package remote

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// defaultIdentityFiles are offered, when they exist, if an endpoint names none.
var defaultIdentityFiles = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// A keySet is the keys offered to one server.
type keySet struct {
	signers []ssh.Signer
	offered []string // descriptions of signers, for AuthError
	skipped []string // identity files not used, with the reason
	agent   net.Conn // nil without agent
}

// setDeadline bounds the agent's answers by the deadline of ctx, if any:
// the agent signs during the handshake, which must not wait for it longer.
func (k *keySet) setDeadline(ctx context.Context) {
	if dl, ok := ctx.Deadline(); ok && k.agent != nil {
		_ = k.agent.SetDeadline(dl)
	}
}

func (k *keySet) close() {
	if k.agent != nil {
		k.agent.Close()
	}
}

func (k *keySet) add(s ssh.Signer, source string) {
	pub := s.PublicKey().Marshal()
	for _, have := range k.signers {
		if string(have.PublicKey().Marshal()) == string(pub) {
			return // offered already (the agent holds the file's key)
		}
	}
	k.signers = append(k.signers, s)
	k.offered = append(k.offered, source+" "+keyType(s.PublicKey())+" "+Fingerprint(s.PublicKey()))
}

// loadKeys collects the signers for ep: the agent's first, then the identity
// files. An identity file that ep names but that cannot be read is an error;
// a default one is skipped.
func loadKeys(ctx context.Context, ep Endpoint, log *slog.Logger) (*keySet, error) {
	k := &keySet{}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && !ep.NoAgent {
		k.addAgent(ctx, sock, ep.timeout(), log)
	}

	files, explicit := ep.IdentityFiles, true
	if len(files) == 0 {
		explicit = false
		home, err := os.UserHomeDir()
		if err != nil {
			log.Debug("no home directory, so no default identity files", "err", err)
		}
		for _, f := range defaultIdentityFiles {
			if home != "" {
				files = append(files, filepath.Join(home, ".ssh", f))
			}
		}
	}
	for _, f := range files {
		signer, err := loadIdentity(f, ep.Passphrase)
		var (
			unread  *fs.PathError
			missing *ssh.PassphraseMissingError
		)
		switch {
		case err == nil:
			k.add(signer, f)
			k.addCertificate(f+"-cert.pub", false, log)
		case errors.As(err, &unread):
			if explicit {
				k.close()
				return nil, &KeyFileError{Name: ep.name(), Addr: ep.Addr, File: f, Err: unread.Err}
			}
			if !errors.Is(err, fs.ErrNotExist) {
				log.Debug("identity file skipped", "file", f, "err", err)
			}
		case errors.As(err, &missing):
			log.Debug("encrypted identity file skipped: no passphrase", "file", f)
			k.skipped = append(k.skipped, f+" (encrypted, no passphrase given)")
		case explicit:
			k.close()
			return nil, &KeyFileError{Name: ep.name(), Addr: ep.Addr, File: f, Err: err}
		default:
			log.Debug("identity file skipped", "file", f, "err", err)
			k.skipped = append(k.skipped, f+" ("+err.Error()+")")
		}
	}
	for _, f := range ep.CertificateFiles {
		if err := k.addCertificate(f, true, log); err != nil {
			k.close()
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the file is named once
			}
			return nil, &KeyFileError{Name: ep.name(), Addr: ep.Addr, File: f, Err: err, Cert: true}
		}
	}
	return k, nil
}

// addCertificate offers the OpenSSH user certificate in file with the key it
// certifies, just before that key. A certificate that cannot be used is an
// error when explicit (CertificateFile), else logged and skipped, as is one
// for a key not offered.
func (k *keySet) addCertificate(file string, explicit bool, log *slog.Logger) error {
	data, err := os.ReadFile(file)
	if err != nil {
		if explicit || !errors.Is(err, fs.ErrNotExist) {
			log.Debug("certificate skipped", "file", file, "err", err)
		}
		if explicit {
			return err
		}
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	cert, ok := pub.(*ssh.Certificate)
	if err == nil && !ok {
		err = errors.New("not an OpenSSH certificate")
	}
	if err == nil && cert.CertType != ssh.UserCert {
		err = errors.New("a host certificate, not a user certificate")
	}
	if err != nil {
		log.Debug("certificate skipped", "file", file, "err", err)
		if explicit {
			return err
		}
		k.skipped = append(k.skipped, file+" ("+err.Error()+")")
		return nil
	}
	want := string(cert.Key.Marshal())
	for i, s := range k.signers {
		if string(s.PublicKey().Marshal()) != want {
			continue
		}
		cs, err := ssh.NewCertSigner(cert, s)
		if err != nil {
			k.skipped = append(k.skipped, file+" ("+err.Error()+")")
			return nil
		}
		k.signers = slices.Insert(k.signers, i, cs)
		k.offered = slices.Insert(k.offered, i, file+" "+keyType(cs.PublicKey())+" "+Fingerprint(cert.Key))
		return nil
	}
	log.Debug("certificate skipped: it certifies no key offered", "file", file)
	k.skipped = append(k.skipped, file+" (certifies no key offered)")
	return nil
}

// identityKey names a parsed identity file in identityCache: its path and
// the passphrase it was decrypted with (by its hash, so that the cache keeps
// no passphrase).
type identityKey struct {
	path       string
	passphrase [sha256.Size]byte
	given      bool // a passphrase was given (nil and empty differ)
}

// identityCache holds the identity files parsed so far, by identityKey.
var identityCache fileCache[identityKey, ssh.Signer]

// loadIdentity returns the signer of the private key file at path, parsed
// once per process while the file is unchanged. An encrypted key is
// decrypted with passphrase; when passphrase is nil, the error is an
// *ssh.PassphraseMissingError. A file that cannot be read is an
// *fs.PathError; other errors are the file's contents'.
func loadIdentity(path string, passphrase []byte) (ssh.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	key := identityKey{path: path, passphrase: sha256.Sum256(passphrase), given: passphrase != nil}
	return identityCache.get(key, info, func() (ssh.Signer, bool, error) {
		pem, err := io.ReadAll(f)
		if err != nil {
			return nil, false, err
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) && passphrase != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, passphrase)
		}
		return signer, true, err
	})
}

// addAgent adds the keys of the ssh-agent at sock. An agent that cannot be
// used is logged and left out; one that does not answer within timeout
// cannot be used.
func (k *keySet) addAgent(ctx context.Context, sock string, timeout time.Duration, log *slog.Logger) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		log.Debug("ssh-agent not available", "socket", sock, "err", err)
		return
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		log.Debug("ssh-agent not available", "socket", sock, "err", err)
		return
	}
	k.agent = conn
	for _, s := range signers {
		k.add(s, "agent")
	}
}
