// Command sshdserve runs a loopback OpenSSH server (package sshdtest) until
// its standard input closes or it is interrupted. It prints the server as one
// JSON line on stdout. It exists for programs outside collector/, which may
// not import an internal package, such as bench/fleetbench.
//
//	sshdserve [-config 'MaxStartups 1000\nLogLevel ERROR']
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Server is what sshdserve prints: enough to connect with ssh or the collector.
type Server struct {
	Addr           string `json:"addr"` // 127.0.0.1:PORT
	Port           int    `json:"port"`
	User           string `json:"user"`
	ClientKeyFile  string `json:"client_key_file"`
	KnownHostsFile string `json:"known_hosts_file"`
	Dir            string `json:"dir"`
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	fs := flag.NewFlagSet("sshdserve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "sshd_config lines to add; a keyword set here replaces sshdtest's own setting")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	t := &tb{log: stderr}
	defer t.cleanup()
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
			code = 1
		}
	}()
	var opts []sshdtest.Option
	if *config != "" {
		opts = append(opts, sshdtest.WithConfig(*config))
	}
	s := sshdtest.Start(t, opts...)
	line, err := json.Marshal(Server{Addr: s.Addr, Port: s.Port, User: s.User, ClientKeyFile: s.ClientKeyFile, KnownHostsFile: s.KnownHostsFile, Dir: s.Dir})
	if err != nil {
		t.Fatalf("sshdserve: encode server: %v", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		t.Fatalf("sshdserve: write server: %v", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	<-ctx.Done()
	return 0
}

// tb implements sshdtest.TB for a program: Fatalf and Skipf panic with
// stopped, which run recovers; cleanup runs what Cleanup registered.
type tb struct {
	log      io.Writer
	cleanups []func()
	failed   bool
}

var _ sshdtest.TB = (*tb)(nil)

// stopped is the panic value of Fatalf and Skipf.
type stopped struct{}

func (t *tb) Helper() {}

func (t *tb) TempDir() string {
	dir, err := os.MkdirTemp("", "sshdserve-")
	if err != nil {
		t.Fatalf("sshdserve: temporary directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (t *tb) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

func (t *tb) Fatalf(format string, args ...any) {
	t.failed = true
	t.Logf(format, args...)
	panic(stopped{})
}

func (t *tb) Skipf(format string, args ...any) {
	t.Fatalf(format, args...)
}

func (t *tb) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, format+"\n", args...)
}

func (t *tb) Failed() bool { return t.failed }

// cleanup runs the registered functions, last first.
func (t *tb) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}
