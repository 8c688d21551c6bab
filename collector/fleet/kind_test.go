package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/crawlerfleet/collector/collector/pull"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("web1: run: %w", err) }
	tests := []struct {
		name string
		err  error
		want monitor.Kind
	}{
		{"ok", nil, monitor.KindOK},
		{"unknown host", wrap(&remote.UnknownHostError{Name: "web1"}), monitor.KindHostKey},
		{"changed host key", wrap(&remote.HostKeyChangedError{Name: "web1"}), monitor.KindHostKey},
		{"auth", wrap(&remote.AuthError{Name: "web1"}), monitor.KindAuth},
		{"refused", wrap(&remote.DialError{Name: "web1", Err: errors.New("connection refused")}), monitor.KindUnreachable},
		{"connect timeout", wrap(&remote.DialError{Name: "web1", Err: context.DeadlineExceeded}), monitor.KindTimeout},
		{"run timeout", wrap(context.DeadlineExceeded), monitor.KindTimeout},
		{"probe", wrap(&pull.ProbeError{Step: "decode", Err: errors.New("garbage")}), monitor.KindProbe},
		{"config", &ConfigError{Err: errors.New("no such variable")}, monitor.KindConfig},
		{"connection lost", wrap(errors.New("EOF")), monitor.KindUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestEndpointPassphraseFromEnvironment(t *testing.T) {
	s := inventory.Server{Name: "web1", Address: "10.0.0.1", Port: 2222, User: "crawl", IdentityPassphraseEnv: "TEST_COLLECTOR_PASSPHRASE"}
	_, err := Endpoint(s)
	if err == nil {
		t.Fatal("Endpoint with an unset passphrase variable: no error")
	}
	var fixer interface{ Fix() string }
	const fix = "export TEST_COLLECTOR_PASSPHRASE in the collector's environment"
	if !errors.As(err, &fixer) || fixer.Fix() != fix ||
		err.Error() != "identity_passphrase_env: environment variable TEST_COLLECTOR_PASSPHRASE is not set; "+fix {
		t.Errorf("err = %v, want one that says to export the variable", err)
	}
	t.Setenv("TEST_COLLECTOR_PASSPHRASE", "sesame")
	ep, err := Endpoint(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(ep.Passphrase) != "sesame" || ep.Addr != "10.0.0.1:2222" || ep.User != "crawl" || ep.Name != "web1" {
		t.Errorf("endpoint = %+v", ep)
	}
}

func TestNamed(t *testing.T) {
	web1 := inventory.Server{Name: "web1", Address: "10.0.0.1", Port: 22}
	db := inventory.Server{Name: "db", Address: inventory.LocalAddress}
	lost := fmt.Errorf("web1 (10.0.0.1:22): run command: %w", io.EOF)
	tests := []struct {
		name string
		s    inventory.Server
		err  error
		want string
	}{
		{"dial", web1, &remote.DialError{Name: "web1", Addr: "10.0.0.1:22", Err: errors.New("connection refused")},
			"web1 (10.0.0.1:22): unreachable: connection refused; check the address and port, and that the host is up and sshd listens there"},
		{"run", web1, fmt.Errorf("run: %w", lost), "run: web1 (10.0.0.1:22): run command: EOF"},
		{"jump host", web1, errors.New("jump host for web1: bastion (10.0.0.9:22): unreachable: x"), "jump host for web1: bastion (10.0.0.9:22): unreachable: x"},
		{"behind a jump host", web1, errors.New("via bastion: web1 (10.0.0.1:22): unreachable: x"), "via bastion: web1 (10.0.0.1:22): unreachable: x"},
		{"connect", web1, fmt.Errorf("connect to web1 (10.0.0.1:22): %w", context.Canceled), "connect to web1 (10.0.0.1:22): context canceled"},
		{"probe", web1, &pull.ProbeError{Step: "run", Err: errors.New("probe exited 1: boom")}, "web1: run: probe exited 1: boom"},
		{"config", web1, &ConfigError{Err: errors.New("no such variable")}, "web1: config: no such variable"},
		{"another server's name", web1, errors.New("jump host for web10: x"), "web1: jump host for web10: x"},
		{"local", db, fmt.Errorf("run: %w", errors.New("run command locally: EOF")), "db: run: run command locally: EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := named(tt.s, tt.err)
			if got.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if !errors.Is(got, tt.err) {
				t.Error("the error is no longer wrapped")
			}
		})
	}
}
