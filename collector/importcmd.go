package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/crawlerfleet/collector/inventory/ansible"
)

// importOptions are the flags of `collector import`.
type importOptions struct {
	out string // file to write; "" for standard output
}

func cmdImport(_ context.Context, e *env, args []string) error {
	var o importOptions
	fs := e.newFlagSet("import", "Usage: collector import ansible FILE [--out FILE]\n\n"+
		"Turn an Ansible inventory (the JSON of `ansible-inventory --list`, or an INI file)\n"+
		"into servers.toml [[server]] entries: groups become tags; ansible_host, ansible_port,\n"+
		"ansible_user, ansible_ssh_private_key_file and a ProxyJump in ansible_ssh_common_args\n"+
		"become keys. What cannot be carried over is listed on stderr, per host and variable.\n\n")
	fs.StringVar(&o.out, "out", "", "write the entries to this file instead of standard output")
	rest, err := parseArgs(fs, args, 2, 2)
	if err != nil {
		return err
	}
	if rest[0] != "ansible" {
		return usagef("import: unknown format %q: only ansible is known", rest[0])
	}
	return runImport(e, o, rest[1])
}

// runImport reads the Ansible inventory at path and writes the entries.
func runImport(e *env, o importOptions, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return &usageError{fmt.Errorf("import: %w", err)}
	}
	defer f.Close()
	inv, err := ansible.Parse(f, path)
	if err != nil {
		return &usageError{fmt.Errorf("import: %w", err)}
	}
	entries, skipped := inv.Entries()
	for _, s := range skipped {
		fmt.Fprintf(e.stderr, "collector: import: not carried over: %s\n", s)
	}
	if o.out == "" {
		if err := ansible.WriteTOML(e.stdout, filepath.Base(path), entries); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	} else {
		out, err := os.OpenFile(o.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("import: %w (it is not overwritten)", err)
		}
		err = ansible.WriteTOML(out, filepath.Base(path), entries)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("import: write %s: %w", o.out, err)
		}
	}
	fmt.Fprintf(e.stderr, "collector: import: %d servers from %s, %d variables not carried over\n", len(entries), path, len(skipped))
	return nil
}
