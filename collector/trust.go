package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/crawlerfleet/collector/collector/fleet"
	"github.com/crawlerfleet/collector/collector/remote"
)

// trustOptions are the flags of `collector trust`.
type trustOptions struct {
	yes bool // record without asking
}

func cmdTrust(ctx context.Context, e *env, args []string) error {
	var o trustOptions
	fs := e.newFlagSet("trust", "Usage: collector trust [--yes] NAME\n\n"+
		"Fetch NAME's SSH host key, print its SHA256 fingerprint and, once confirmed,\n"+
		"record it in the server's known_hosts file. Jump hosts must be trusted first.\n\n")
	fs.BoolVar(&o.yes, "yes", false, "record the key without asking (check the fingerprint another way first)")
	names, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return runTrust(ctx, e, o, names[0])
}

// runTrust fetches a server's host key, shows its fingerprint and records
// it once confirmed.
func runTrust(ctx context.Context, e *env, o trustOptions, name string) error {
	inv, servers, err := e.selectServers([]string{name})
	if err != nil {
		return err
	}
	s := servers[0]
	if s.IsLocal() {
		return usagef("%s runs on this machine (address = \"local\"): there is no host key to trust", s.Name)
	}
	route, err := fleet.Route(inv, s)
	if err != nil {
		return usagef("%s: %v", s.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	key, err := remote.FetchHostKey(ctx, route)
	if err != nil {
		return fmt.Errorf("trust %s: %w", s.Name, err)
	}
	target := route[len(route)-1]
	fmt.Fprintf(e.stdout, "%s (%s) offers this host key:\n  %s %s\n", s.Name, target.Addr, key.Type(), remote.Fingerprint(key))

	// Trust never overwrites: a different recorded key must be removed by
	// hand, after the operator has found out why it changed.
	var unknown *remote.UnknownHostError
	switch err := remote.CheckKnownHost(target, key); {
	case err == nil:
		fmt.Fprintf(e.stdout, "This key is already recorded in %s.\n", target.KnownHosts)
		return nil
	case !errors.As(err, &unknown):
		return fmt.Errorf("trust %s: not recording the key: %w", s.Name, err)
	}

	if !o.yes {
		if !e.isTerminal(e.stdin) {
			return fmt.Errorf("not recording the key: standard input is not a terminal to confirm on; "+
				"check the fingerprint (on the server: ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub) and run again with --yes", keyFileType(key.Type()))
		}
		fmt.Fprintf(e.stdout, "Check it against the server (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub there).\nRecord it in %s? [y/N] ", keyFileType(key.Type()), target.KnownHosts)
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintf(e.stdout, "Not recorded.\n")
			return errFailuresShown
		}
	}
	if err := remote.AddKnownHost(target.KnownHosts, target.Addr, key); err != nil {
		return fmt.Errorf("trust %s: %w", s.Name, err)
	}
	fmt.Fprintf(e.stdout, "Recorded %s's key in %s.\n", s.Name, target.KnownHosts)
	return nil
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
