package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/inventory"
)

// trustOptions are the flags of `collector trust`.
type trustOptions struct {
	selection
	yes bool // record without asking
}

func cmdTrust(ctx context.Context, e *env, args []string) error {
	var o trustOptions
	fs := e.newFlagSet("trust", "Usage: collector trust [--yes] "+selectionUsage+"\n\n"+
		"Fetch each server's SSH host key and print its SHA256 fingerprint; then, for each\n"+
		"key not yet recorded, ask and record it in the server's known_hosts file.\n"+
		"Jump hosts must be trusted first.\n\n")
	o.addFlags(fs)
	fs.BoolVar(&o.yes, "yes", false, "record every key without asking, and print what was recorded (check the fingerprints another way first)")
	names, err := parseArgs(fs, args, 0, -1)
	if err != nil {
		return err
	}
	if o.empty(names) {
		fs.Usage()
		return errUsagePrinted
	}
	return runTrust(ctx, e, o, names)
}

// fetchedKey is one server's host key as trust fetched it.
type fetchedKey struct {
	server inventory.Server
	target remote.Endpoint
	key    ssh.PublicKey // the plain key, also when the server offered a certificate
	cert   *ssh.Certificate
	status error // nil when recorded already or trusted through its CA; an *remote.UnknownHostError to record
	err    error // the key could not be fetched, or must not be recorded
}

// runTrust fetches the selected servers' host keys, shows every
// fingerprint, then asks once per server whose key is not recorded (or
// records them all with --yes) and says what it recorded.
func runTrust(ctx context.Context, e *env, o trustOptions, names []string) error {
	inv, servers, err := e.selectServers(o.selection, names, false)
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.IsLocal() && len(servers) == 1 {
			return usagef("%s runs on this machine (address = \"local\"): there is no host key to trust", s.Name)
		}
	}
	var keys []fetchedKey
	for _, s := range servers {
		if s.IsLocal() {
			fmt.Fprintf(e.stdout, "%s: runs on this machine (address = \"local\"), no host key\n", s.Name)
			continue
		}
		k := fetchTrustKey(ctx, inv, s)
		keys = append(keys, k)
		switch {
		case k.err != nil:
			fmt.Fprintf(e.stderr, "collector: trust %s: %v\n", s.Name, k.err)
		case k.cert != nil && k.status == nil:
			fmt.Fprintf(e.stdout, "%s (%s) offers a host certificate for %s %s, signed by CA %s:\n  trusted through an @cert-authority line of %s; nothing to record\n",
				s.Name, k.target.Addr, k.key.Type(), remote.Fingerprint(k.key), remote.Fingerprint(k.cert.SignatureKey), k.target.KnownHosts)
		default:
			fmt.Fprintf(e.stdout, "%s (%s) offers this host key:\n  %s %s\n", s.Name, k.target.Addr, k.key.Type(), remote.Fingerprint(k.key))
			if k.status == nil {
				fmt.Fprintf(e.stdout, "  already recorded in %s\n", k.target.KnownHosts)
			}
		}
	}

	failed := false
	var answers *bufio.Reader
	for _, k := range keys {
		if k.err != nil {
			failed = true
			continue
		}
		if k.status == nil {
			continue
		}
		if !o.yes {
			if !e.isTerminal(e.stdin) {
				fmt.Fprintf(e.stderr, "collector: trust %s: not recording the key: standard input is not a terminal to confirm on; "+
					"check the fingerprint (on the server: ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub) and run again with --yes\n", k.server.Name, keyFileType(k.key.Type()))
				failed = true
				continue
			}
			if answers == nil {
				answers = bufio.NewReader(e.stdin)
			}
			fmt.Fprintf(e.stdout, "Record %s's key %s %s in %s? Check it against the server (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub there). [y/N] ",
				k.server.Name, k.key.Type(), remote.Fingerprint(k.key), k.target.KnownHosts, keyFileType(k.key.Type()))
			answer, _ := answers.ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
				fmt.Fprintf(e.stdout, "Not recorded %s's key.\n", k.server.Name)
				failed = true
				continue
			}
		}
		if err := remote.AddKnownHost(k.target.KnownHosts, k.target.Addr, k.key); err != nil {
			fmt.Fprintf(e.stderr, "collector: trust %s: %v\n", k.server.Name, err)
			failed = true
			continue
		}
		fmt.Fprintf(e.stdout, "recorded %s %s %s in %s\n", k.server.Name, k.key.Type(), remote.Fingerprint(k.key), k.target.KnownHosts)
	}
	if failed {
		return errFailuresShown
	}
	return nil
}

// fetchTrustKey fetches s's host key within s's timeout and checks it
// against s's known_hosts. Trust never overwrites: a different recorded key
// must be removed by hand, after the operator has found out why it changed.
func fetchTrustKey(ctx context.Context, inv *inventory.Inventory, s inventory.Server) fetchedKey {
	k := fetchedKey{server: s}
	route, err := fleet.Route(inv, s)
	if err != nil {
		k.err = fmt.Errorf("config: %w", err)
		return k
	}
	k.target = route[len(route)-1]
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	key, err := remote.FetchHostKey(ctx, route)
	if err != nil {
		k.err = err
		return k
	}
	k.key = key
	if c, ok := key.(*ssh.Certificate); ok {
		k.cert, k.key = c, c.Key
	}
	var (
		unknown *remote.UnknownHostError
		certErr *remote.HostCertError
	)
	switch err := remote.CheckKnownHost(k.target, key); {
	case err == nil:
	case errors.As(err, &unknown), errors.As(err, &certErr):
		k.status = err // the plain key is not recorded: record it
	default:
		k.err = fmt.Errorf("not recording the key: %w", err)
	}
	return k
}

// keyFileType maps an SSH key type to the name sshd gives its key file.
func keyFileType(t string) string {
	switch {
	case strings.Contains(t, "ed25519"):
		return "ed25519"
	case strings.Contains(t, "ecdsa"):
		return "ecdsa"
	case strings.Contains(t, "rsa"):
		return "rsa"
	}
	return "*"
}
