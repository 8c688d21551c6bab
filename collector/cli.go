package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/inventory"
)

// env is what a command may touch of the outside world, and the global
// flags. Tests fill it with buffers, test probe builds and their own
// hangup channel.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	isTerminal     func(f any) bool // whether f (stdin, stderr) is a terminal
	probes         probebin.Set
	getenv         func(string) string
	// hangups returns a channel that receives when the daemon is asked to
	// reload (SIGHUP), and a function that stops the delivery.
	hangups func() (<-chan struct{}, func())

	configPath  string     // set from --config by run
	logLevel    slog.Level // set from --log-level by run; commands may lower their default
	logLevelSet bool

	// flagSets, when not nil, receives each flag set a command makes, for
	// the completion script to list the flags.
	flagSets func(*flag.FlagSet)
}

func newEnv() *env {
	return &env{
		stdin:      os.Stdin,
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		isTerminal: isTerminal,
		probes:     probebin.Embedded,
		getenv:     os.Getenv,
		hangups:    sighups,
	}
}

// sighups delivers SIGHUP as a reload request.
func sighups() (<-chan struct{}, func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	out := make(chan struct{})
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				select {
				case out <- struct{}{}:
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	return out, func() { signal.Stop(sig); close(done) }
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// stderrIsTerminal reports whether stderr is a terminal, where progress can
// be redrawn in place.
func (e *env) stderrIsTerminal() bool { return e.isTerminal(e.stderr) }

// logger returns the logger for a command whose default level is def.
func (e *env) logger(def slog.Level) *slog.Logger {
	level := def
	if e.logLevelSet {
		level = e.logLevel
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

// inventory loads the inventory named by --config; its errors are usage
// errors (exit 2).
func (e *env) inventory() (*inventory.Inventory, error) {
	inv, err := inventory.Load(e.configPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &usageError{fmt.Errorf("%w (set --config or COLLECTOR_CONFIG; the repository's servers.toml is a documented example)", err)}
		}
		return nil, &usageError{err}
	}
	return inv, nil
}

// A command is one subcommand: run parses its flags into its options and
// calls the command's runX(ctx, e, opts, args).
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, e *env, args []string) error
}

var commands []command

func init() {
	// Assigned here, not in the declaration: help refers to commands.
	commands = []command{
		{"once", "NAME... | --tag T | --all", "probe the servers now and print what they report", cmdOnce},
		{"collect", "[NAME... | --tag T]", "run one collection round and store the results (fits a crontab)", cmdCollect},
		{"run", "[--rounds N] [--listen ADDR]", "collect every server on its cron schedule, until stopped", cmdRun},
		{"status", "[NAME... | --tag T]", "show what the store holds: latest snapshot, peaks and failures per server", cmdStatus},
		{"alerts", "[test]", "list the alerts firing now; `alerts test` sends a test to every channel", cmdAlerts},
		{"cluster", "[--servers]", "list the collectors sharing the store: state, last heartbeat, servers owned", cmdCluster},
		{"silence", "NAME [--for 2h] [--rule R]", "hold a server's alert notifications for a while", cmdSilence},
		{"silences", "", "list the silences in force, with the time left and their IDs", cmdSilences},
		{"unsilence", "ID...", "lift silences before they end", cmdUnsilence},
		{"report", "[NAME... | --tag T] [--since 7d]", "write the HTML peak report (report.html): peaks, processes at the peaks, capacity", cmdReport},
		{"delete", "NAME --from T [--to T]", "delete a server's data over a time range (stored by mistake); rollups rebuilt", cmdDelete},
		{"check", "[NAME... | --tag T] [--explain]", "check servers.toml, try each server and say how to fix what fails", cmdCheck},
		{"trust", "NAME... | --tag T | --all", "fetch servers' host keys, show their fingerprints and record them in known_hosts", cmdTrust},
		{"import", "ansible FILE [--out FILE]", "turn an Ansible inventory into servers.toml [[server]] entries", cmdImport},
		{"completion", "bash|zsh", "print a shell completion script", cmdCompletion},
		{"version", "", "print the collector's version and its probe builds", cmdVersion},
		{"help", "", "print this help", cmdHelp},
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
			return e.exitCode(usagef("--log-level: %v", err))
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
			return e.exitCode(c.run(ctx, e, rest))
		}
	}
	if name == completeCommand {
		return e.exitCode(runComplete(e, rest))
	}
	return e.exitCode(usagef("unknown command %q; run 'collector help'", name))
}

func cmdHelp(_ context.Context, e *env, _ []string) error {
	usage(e.stdout)
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "collector: an agentless server monitor that pulls snapshots over SSH.\n\n")
	fmt.Fprintf(w, "Usage: collector [--config FILE] [--log-level LEVEL] COMMAND [ARGS]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nGlobal flags:\n  --config FILE                  inventory file (default ./servers.toml, env COLLECTOR_CONFIG)\n")
	fmt.Fprintf(w, "  --log-level LEVEL              debug, info, warn or error (logs go to stderr)\n")
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
	if e.flagSets != nil {
		e.flagSets(fs)
	}
	return fs
}

// parseArgs parses a subcommand's flags and positional arguments (see
// parseInterspersed) and checks there are at least min and, unless max < 0,
// at most max positionals. Its error ends the command: flag.ErrHelp after
// -h (exit 0), errUsagePrinted otherwise, with usage printed once.
func parseArgs(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	positional, err := parseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, flag.ErrHelp
	case err != nil: // the flag package has printed the error and usage
		return nil, errUsagePrinted
	case len(positional) < min || max >= 0 && len(positional) > max:
		fs.Usage()
		return nil, errUsagePrinted
	}
	return positional, nil
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
