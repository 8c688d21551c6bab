package fleet

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/crawlerfleet/collector/collector/pull"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/inventory"
)

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("web1: run: %w", err) }
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"ok", nil, KindOK},
		{"unknown host", wrap(&remote.UnknownHostError{Name: "web1"}), KindHostKey},
		{"changed host key", wrap(&remote.HostKeyChangedError{Name: "web1"}), KindHostKey},
		{"auth", wrap(&remote.AuthError{Name: "web1"}), KindAuth},
		{"refused", wrap(&remote.DialError{Name: "web1", Err: errors.New("connection refused")}), KindUnreachable},
		{"connect timeout", wrap(&remote.DialError{Name: "web1", Err: context.DeadlineExceeded}), KindTimeout},
		{"run timeout", wrap(context.DeadlineExceeded), KindTimeout},
		{"probe", wrap(&pull.ProbeError{Step: "decode", Err: errors.New("garbage")}), KindProbe},
		{"config", &ConfigError{Err: errors.New("no such variable")}, KindConfig},
		{"connection lost", wrap(errors.New("EOF")), KindError},
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
	if _, err := Endpoint(s); err == nil {
		t.Fatal("Endpoint with an unset passphrase variable: no error")
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
