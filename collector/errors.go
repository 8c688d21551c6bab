package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a server failed, or the command could not do its job
	exitUsage   = 2 // bad command line or configuration
)

// A usageError is a bad command line or configuration: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errFailuresShown ends a command whose output already said what failed
// (servers in once, check and collect; channels in alerts test): exit code
// 1 and nothing more on stderr.
var errFailuresShown = errors.New("failures shown")

// errUsagePrinted ends a command whose flag parsing printed the problem and
// the usage already: exit code 2 and nothing more on stderr.
var errUsagePrinted = errors.New("usage printed")

// exitCode is the one place that turns what a command returned into the
// process's exit code, and prints the error on stderr ("collector: " before
// each line: errors.Join puts each problem of a servers.toml on a line of
// its own).
func (e *env) exitCode(err error) int {
	var usage *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errFailuresShown):
		return exitFailure
	case errors.Is(err, errUsagePrinted):
		return exitUsage
	case errors.As(err, &usage):
		e.printErr(err)
		return exitUsage
	}
	e.printErr(err)
	return exitFailure
}

// printErr prints err on stderr, "collector: " before each of its lines.
func (e *env) printErr(err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(e.stderr, "collector: %s\n", line)
	}
}
