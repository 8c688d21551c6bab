package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/inventory"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a server failed, or the command could not do its job
	exitUsage   = 2 // bad command line or configuration
)

// env is what a command may touch of the outside world. Tests fill it with
// buffers and test probe builds.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	isTerminal     func(f any) bool // whether f (stdin, stderr) is a terminal
	probes         probebin.Set
	getenv         func(string) string

	configPath  string     // set from --config by run
	logLevel    slog.Level // set from --log-level by run; commands may lower their default
	logLevelSet bool
}

func newEnv() *env {
	return &env{
		stdin:      os.Stdin,
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		isTerminal: isTerminal,
		probes:     probebin.Embedded,
		getenv:     os.Getenv,
	}
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// logger returns the logger for a command whose default level is def.
func (e *env) logger(def slog.Level) *slog.Logger {
	level := def
	if e.logLevelSet {
		level = e.logLevel
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

// loadInventory loads the inventory named by --config.
func (e *env) loadInventory() (*inventory.Inventory, error) {
	inv, err := inventory.Load(e.configPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w (set --config or COLLECTOR_CONFIG; the repository's servers.toml is a documented example)", err)
		}
		return nil, err
	}
	return inv, nil
}

// printErr prints err on stderr, "collector: " before each of its lines:
// errors.Join puts each problem of a servers.toml on a line of its own.
func (e *env) printErr(err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(e.stderr, "collector: %s\n", line)
	}
}

// inventory loads the inventory. On failure it prints why and returns the
// exit code to use; otherwise exitOK.
func (e *env) inventory() (*inventory.Inventory, int) {
	inv, err := e.loadInventory()
	if err != nil {
		e.printErr(err)
		return nil, exitUsage
	}
	return inv, exitOK
}

// selectServers loads the inventory and picks the named servers, printing
// why when it cannot, like inventory.
func (e *env) selectServers(names []string) (*inventory.Inventory, []inventory.Server, int) {
	inv, code := e.inventory()
	if code != exitOK {
		return nil, nil, code
	}
	servers, err := inv.Select(names)
	if err != nil {
		e.printErr(err)
		return nil, nil, exitUsage
	}
	return inv, servers, exitOK
}

// A command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, e *env, args []string) int
}

var commands []command

func init() {
	// Assigned here, not in the declaration: help refers to commands.
	commands = []command{
		{"once", "NAME...", "probe the named servers now and print what they report", runOnce},
		{"collect", "[NAME...]", "run one collection round and store the results (fits a crontab)", runCollect},
		{"run", "[--rounds N]", "collect every server on its cron schedule, until stopped", runRun},
		{"status", "[NAME...]", "show what the store holds: latest snapshot, peaks and failures per server", runStatus},
		{"alerts", "[test]", "list the alerts firing now; `alerts test` sends a test to every channel", runAlerts},
		{"silence", "NAME [--for 2h] [--rule R]", "hold a server's alert notifications for a while", runSilence},
		{"silences", "", "list the silences in force", runSilences},
		{"report", "[--since 7d] [--out FILE]", "write the HTML peak report: peaks, processes at the peaks, capacity", runReport},
		{"check", "[NAME...]", "check servers.toml, try each server and say how to fix what fails", runCheck},
		{"trust", "NAME", "fetch a server's host key, show its fingerprint and record it in known_hosts", runTrust},
		{"version", "", "print the collector's version and its probe builds", runVersion},
		{"help", "", "print this help", runHelp},
	}
}

// run parses the global flags and runs one command; it returns the exit code.
func run(ctx context.Context, args []string, e *env) int {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	defConfig := "servers.toml"
	if v := e.getenv("COLLECTOR_CONFIG"); v != "" {
		defConfig = v
	}
	fs.StringVar(&e.configPath, "config", defConfig, "inventory file (env COLLECTOR_CONFIG)")
	level := fs.String("log-level", "", "log level: debug, info, warn or error")
	fs.Usage = func() { usage(e.stderr) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *level != "" {
		if err := e.logLevel.UnmarshalText([]byte(*level)); err != nil {
			fmt.Fprintf(e.stderr, "collector: --log-level: %v\n", err)
			return exitUsage
		}
		e.logLevelSet = true
	}
	if fs.NArg() == 0 {
		usage(e.stderr)
		return exitUsage
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, e, rest)
		}
	}
	fmt.Fprintf(e.stderr, "collector: unknown command %q; run 'collector help'\n", name)
	return exitUsage
}

func runHelp(_ context.Context, e *env, _ []string) int {
	usage(e.stdout)
	return exitOK
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "collector: an agentless server monitor that pulls snapshots over SSH.\n\n")
	fmt.Fprintf(w, "Usage: collector [--config FILE] [--log-level LEVEL] COMMAND [ARGS]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-22s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n  --config FILE          inventory file (default ./servers.toml, env COLLECTOR_CONFIG)\n")
	fmt.Fprintf(w, "  --log-level LEVEL      debug, info, warn or error (logs go to stderr)\n")
	fmt.Fprintf(w, "\nRun 'collector COMMAND -h' for a command's flags.\n")
}

// newFlagSet returns a subcommand's flag set: errors go to stderr, and -h
// or a bad flag prints usage (the usage line and what the command does)
// followed by the flags.
func (e *env) newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(e.stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses a subcommand's flags and positional arguments (see
// parseInterspersed) and checks there are at least min and, unless max < 0,
// at most max positionals. When ok is false the command ends with code:
// exitOK after -h, exitUsage otherwise, with usage printed once.
func parseArgs(fs *flag.FlagSet, args []string, min, max int) (positional []string, code int, ok bool) {
	positional, err := parseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, exitOK, false
	case err != nil: // the flag package has printed the error and usage
		return nil, exitUsage, false
	case len(positional) < min || max >= 0 && len(positional) > max:
		fs.Usage()
		return nil, exitUsage, false
	}
	return positional, exitOK, true
}

// parseInterspersed parses flags that may stand before, between or after the
// positional arguments ("once web1 --json"), and returns the positionals.
// Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
