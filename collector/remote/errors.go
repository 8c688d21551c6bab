package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrOutputTooLarge is returned by Run when a command prints more than the
// allowed number of bytes on stdout.
var ErrOutputTooLarge = errors.New("output too large")

// An UnknownHostError reports that no key is recorded for the server in its
// known_hosts file.
type UnknownHostError struct {
	Name        string
	Addr        string
	KnownHosts  string
	Key         ssh.PublicKey // the key the server offered
	Fingerprint string        // of Key, as by Fingerprint
}

func (e *UnknownHostError) Error() string {
	return fmt.Sprintf("%s: host key is not known (%s %s not in %s); %s",
		where(e.Name, e.Addr), keyType(e.Key), e.Fingerprint, e.KnownHosts, e.Fix())
}

// Fix says how to resolve the error; Error ends with "; " and Fix.
func (e *UnknownHostError) Fix() string {
	return "check the fingerprint and run: collector trust " + e.Name
}

// A HostKeyChangedError reports that the server offered a key other than the
// one(s) recorded for it: a man-in-the-middle attack or a reinstalled server.
type HostKeyChangedError struct {
	Name        string
	Addr        string
	KnownHosts  string
	Key         ssh.PublicKey // the key the server offered
	Fingerprint string        // of Key, as by Fingerprint
	Lines       []int         // the lines of KnownHosts that record other keys for Addr
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("%s: host key CHANGED: the server offers %s %s, but %s:%s records another key; "+
		"this could be an attack (man-in-the-middle) or a reinstalled server; %s",
		where(e.Name, e.Addr), keyType(e.Key), e.Fingerprint, e.KnownHosts, strings.Join(e.lines(), ","), e.Fix())
}

// Fix says how to resolve the error; Error ends with "; " and Fix.
func (e *HostKeyChangedError) Fix() string {
	lines := e.lines()
	remove := "line " + strings.Join(lines, ", ")
	if len(lines) > 1 {
		remove = "lines " + strings.Join(lines, ", ")
	}
	return fmt.Sprintf("if you know the change is legitimate, remove %s of %s (or run: ssh-keygen -R %s -f %s), then run: collector trust %s",
		remove, e.KnownHosts, Quote(knownhosts.Normalize(e.Addr)), Quote(e.KnownHosts), e.Name)
}

func (e *HostKeyChangedError) lines() []string {
	lines := make([]string, len(e.Lines))
	for i, l := range e.Lines {
		lines[i] = strconv.Itoa(l)
	}
	return lines
}

// A HostCertError reports that the server offered a host certificate that
// the known_hosts file does not accept (no @cert-authority line trusts its
// CA for this host, it expired, it does not name the host, or it is
// revoked), and that no key is recorded for the host either.
type HostCertError struct {
	Name       string
	Addr       string
	KnownHosts string
	Cert       *ssh.Certificate
	Err        error // why the certificate was refused, from ssh.CertChecker
}

func (e *HostCertError) Error() string {
	why := e.Err.Error()
	if strings.Contains(why, "no authorities for hostname") {
		why = fmt.Sprintf("no @cert-authority line of %s trusts its CA for %s", e.KnownHosts, knownhosts.Normalize(e.Addr))
	}
	return fmt.Sprintf("%s: host certificate not accepted (%s %s, signed by CA %s %s, principals %s): %s; %s",
		where(e.Name, e.Addr), keyType(e.Cert.Key), Fingerprint(e.Cert.Key), keyType(e.Cert.SignatureKey), Fingerprint(e.Cert.SignatureKey),
		strings.Join(e.Cert.ValidPrincipals, ","), strings.TrimPrefix(why, "ssh: "), e.Fix())
}

// Fix says how to resolve the error; Error ends with "; " and Fix.
func (e *HostCertError) Fix() string {
	return fmt.Sprintf("if that CA is yours, add '@cert-authority %s <CA public key>' to %s; if the certificate expired or does not name the host, "+
		"sign a new one (ssh-keygen -s CA_KEY -h -n HOST); or check the host key's fingerprint and run: collector trust %s",
		knownhosts.Normalize(e.Addr), e.KnownHosts, e.Name)
}

func (e *HostCertError) Unwrap() error { return e.Err }

// An AuthError reports that the server accepted none of the keys offered.
type AuthError struct {
	Name    string
	Addr    string
	User    string
	Methods []string // authentication methods tried, such as "publickey"
	Allowed []string // methods the server accepts, as it said
	Keys    []string // the keys offered, as "SOURCE TYPE FINGERPRINT"
	Skipped []string // identity files that could not be used, with the reason
	Err     error    // the error of the SSH library
}

func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: unable to authenticate as %s", where(e.Name, e.Addr), e.User)
	if len(e.Keys) == 0 {
		b.WriteString(" (no keys to offer: no identity file found and no ssh-agent")
	} else {
		fmt.Fprintf(&b, " (offered %s", strings.Join(e.Keys, ", "))
	}
	if len(e.Skipped) > 0 {
		fmt.Fprintf(&b, "; skipped %s", strings.Join(e.Skipped, ", "))
	}
	if len(e.Allowed) > 0 {
		fmt.Fprintf(&b, "; server accepts %s", strings.Join(e.Allowed, ", "))
	}
	b.WriteString("); ")
	b.WriteString(e.Fix())
	return b.String()
}

// Fix says how to resolve the error; Error ends with "; " and Fix.
func (e *AuthError) Fix() string {
	if len(e.Keys) == 0 {
		return fmt.Sprintf("create a key with: ssh-keygen -t ed25519, add its .pub to ~%s/.ssh/authorized_keys on %s, "+
			"or set identity_file (or IdentityFile in your SSH config) for %s, or load a key into ssh-agent", e.User, e.Name, e.Name)
	}
	return fmt.Sprintf("add the public key to ~%s/.ssh/authorized_keys on %s, or check identity_file and user for %s",
		e.User, e.Name, e.Name)
}

func (e *AuthError) Unwrap() error { return e.Err }

// A KeyFileError reports that an identity file named for the server (by
// identity_file, or IdentityFile in the SSH client config) cannot be used:
// it is missing or unreadable, it is not a private key, or its passphrase is
// wrong. Nothing was sent to the server: it is a configuration problem.
type KeyFileError struct {
	Name string
	Addr string
	File string
	Err  error
	Cert bool // File is a certificate (CertificateFile), not a key
}

func (e *KeyFileError) Error() string {
	what := "identity file"
	if e.Cert {
		what = "certificate file"
	}
	return fmt.Sprintf("%s: %s %s: %v; %s", where(e.Name, e.Addr), what, e.File, e.Err, e.Fix())
}

// Fix says how to resolve the error; Error ends with "; " and Fix.
func (e *KeyFileError) Fix() string {
	var pm *ssh.PassphraseMissingError
	switch {
	case e.Cert:
		return "point CertificateFile in your SSH config at the OpenSSH user certificate of one of the keys offered (KEY-cert.pub, made by ssh-keygen -s), or remove it"
	case errors.Is(e.Err, fs.ErrNotExist):
		return fmt.Sprintf("create the key with: ssh-keygen -t ed25519 -f %s (then add %s.pub to ~/.ssh/authorized_keys on the server), "+
			"or point identity_file in servers.toml (or IdentityFile in your SSH config) at an existing private key", Quote(e.File), Quote(e.File))
	case errors.Is(e.Err, fs.ErrPermission):
		return "make the key readable by the user running the collector (chmod 600, owned by that user), or point identity_file at another key"
	case errors.As(e.Err, &pm), strings.Contains(e.Err.Error(), "decryption password incorrect"):
		return "set identity_passphrase_env to the name of the environment variable holding the key's passphrase, and check the passphrase"
	}
	return "point identity_file (or IdentityFile in your SSH config) at a private key in OpenSSH or PEM format, not the .pub file, or create one with: ssh-keygen -t ed25519"
}

func (e *KeyFileError) Unwrap() error { return e.Err }

// A DialError reports that the TCP connection to the server could not be
// opened: refused, no route, a name that does not resolve, or a connect
// timeout (then it wraps context.DeadlineExceeded).
type DialError struct {
	Name string
	Addr string
	Err  error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("%s: unreachable: %v; %s", where(e.Name, e.Addr), e.Err, e.Fix())
}

// Fix says how to resolve the error; Error ends with "; " and Fix.
func (e *DialError) Fix() string {
	return "check the address and port, and that the host is up and sshd listens there"
}

func (e *DialError) Unwrap() error { return e.Err }

// A fixError is an error whose message ends with how to fix it.
type fixError struct {
	err error
	fix string
}

// withFix returns err with "; " and fix added to its message.
func withFix(err error, fix string) error { return &fixError{err: err, fix: fix} }

func (e *fixError) Error() string { return e.err.Error() + "; " + e.fix }
func (e *fixError) Unwrap() error { return e.err }

// Fix says how to resolve the error; Error ends with "; " and Fix.
func (e *fixError) Fix() string { return e.fix }

// where names a server in messages: "web1 (10.0.0.1:22)".
func where(name, addr string) string {
	if name == "" || name == addr {
		return addr
	}
	return name + " (" + addr + ")"
}

// keyType names a key type the way ssh-keygen -l does: "ED25519", "RSA".
func keyType(k ssh.PublicKey) string {
	if k == nil {
		return "?"
	}
	t := k.Type()
	if c, ok := k.(*ssh.Certificate); ok {
		return keyType(c.Key) + "-CERT"
	}
	switch {
	case t == ssh.KeyAlgoRSA:
		return "RSA"
	case t == ssh.KeyAlgoED25519:
		return "ED25519"
	case strings.HasPrefix(t, "ecdsa-"):
		return "ECDSA"
	case t == ssh.KeyAlgoDSA:
		return "DSA"
	case strings.HasPrefix(t, "sk-ecdsa"):
		return "ECDSA-SK"
	case strings.HasPrefix(t, "sk-ssh-ed25519"):
		return "ED25519-SK"
	}
	return t
}
