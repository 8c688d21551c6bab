// Command collector is an agentless server monitor: it pulls one snapshot
// from each server over SSH by running a small probe there.
//
// Run `collector help` for the commands. The command line lives here; the
// work is done by the packages under collector/ (round, daemon, fleet,
// report, httpapi...) and store/, alerts/, inventory/.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], newEnv())
	stop()
	os.Exit(code)
}
