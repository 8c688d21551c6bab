package remote

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

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
		k.addAgent(ctx, sock, log)
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
		f = expandHome(f)
		pem, err := os.ReadFile(f)
		if err != nil {
			if !explicit && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if explicit {
				k.close()
				return nil, fmt.Errorf("%s: read identity file: %w; check identity_file", ep, err)
			}
			log.Debug("identity file skipped", "file", f, "err", err)
			continue
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			if ep.Passphrase == nil {
				log.Debug("encrypted identity file skipped: no passphrase", "file", f)
				k.skipped = append(k.skipped, f+" (encrypted, no passphrase given)")
				continue
			}
			signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, ep.Passphrase)
		}
		if err != nil {
			if explicit {
				k.close()
				return nil, fmt.Errorf("%s: identity file %s: %w; check identity_file and its passphrase", ep, f, err)
			}
			log.Debug("identity file skipped", "file", f, "err", err)
			k.skipped = append(k.skipped, f+" ("+err.Error()+")")
			continue
		}
		k.add(signer, f)
	}
	return k, nil
}

// addAgent adds the keys of the ssh-agent at sock. An agent that cannot be
// used is logged and left out.
func (k *keySet) addAgent(ctx context.Context, sock string, log *slog.Logger) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		log.Debug("ssh-agent not available", "socket", sock, "err", err)
		return
	}
	// Signing happens during the handshake; do not wait for an agent longer.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
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

func expandHome(p string) string {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, rest)
}
