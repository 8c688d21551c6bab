package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/monitor"
)

// TestKindsAndFixes makes each kind of failure happen for real (a real sshd,
// a closed port, a host that never answers, a missing key...) and checks
// that check prints only the kinds the README lists, and a fix that fits the
// error: never advice about the network for a key file, nor a generic fix
// where the error has its own.
func TestKindsAndFixes(t *testing.T) {
	h := newHarness(t)
	empty := filepath.Join(h.dir, "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	other := sshdtest.Start(t) // its known_hosts records another key for its own address
	changed := filepath.Join(h.dir, "changed_known_hosts")
	data, err := os.ReadFile(other.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	// known_hosts writes "[127.0.0.1]:PORT": the other server's key, recorded for this one's port.
	if err := os.WriteFile(changed, []byte(strings.Replace(string(data), fmt.Sprintf("]:%d ", other.Port), fmt.Sprintf("]:%d ", h.srv.Port), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	notKey := filepath.Join(h.dir, "notes.txt")
	if err := os.WriteFile(notKey, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hung := sshdtest.HungListener(t)
	h.writeConfig(h.srv.KnownHostsFile,
		h.server("ok", "")+
			h.server("missing-key", fmt.Sprintf("identity_file = %q", filepath.Join(h.dir, "no_such_key")))+
			h.server("not-a-key", fmt.Sprintf("identity_file = %q", notKey))+
			h.server("no-passphrase-var", `identity_passphrase_env = "COLLECTOR_TEST_UNSET"`)+
			h.server("newhost", fmt.Sprintf("known_hosts = %q", empty))+
			h.server("changed", fmt.Sprintf("known_hosts = %q", changed))+
			h.server("stranger", fmt.Sprintf("identity_file = %q", unauthorizedKey(t)))+
			h.server("noexec", `probe_dir = "/proc/collector-test/cache"`)+
			fmt.Sprintf("\n[[server]]\nname = \"down\"\naddress = %q\n", closedAddr(t))+
			fmt.Sprintf("\n[[server]]\nname = \"hung\"\naddress = %q\nconnect_timeout = \"1s\"\n", hung))

	code, results, stderr := h.checkJSON()
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, stderr)
	}
	listed := readmeKinds(t)
	tests := []struct {
		server   string
		kind     monitor.Kind
		err      string   // in the error
		fix      []string // in the fix
		notInFix []string // advice that would contradict the error
	}{
		{"missing-key", monitor.KindConfig, "identity file " + filepath.Join(h.dir, "no_such_key") + ": no such file or directory",
			[]string{"ssh-keygen -t ed25519 -f", "identity_file"}, []string{"sshd", "again", "authorized_keys on missing-key,"}},
		{"not-a-key", monitor.KindConfig, "identity file " + notKey, []string{"private key", "identity_file"}, []string{"sshd", "again", "passphrase"}},
		{"no-passphrase-var", monitor.KindConfig, "COLLECTOR_TEST_UNSET is not set", []string{"export COLLECTOR_TEST_UNSET"}, []string{"sshd"}},
		{"newhost", monitor.KindHostKey, "host key is not known", []string{"collector trust newhost"}, []string{"remove"}},
		{"changed", monitor.KindHostKey, "host key CHANGED", []string{"remove line 1 of " + changed, "collector trust changed"}, nil},
		{"stranger", monitor.KindAuth, "unable to authenticate", []string{"authorized_keys"}, []string{"ssh-keygen -t ed25519 -f"}},
		{"noexec", monitor.KindProbe, "/proc/collector-test/cache", []string{"probe_dir"}, []string{"authorized_keys", "trust"}},
		{"down", monitor.KindUnreachable, "connection refused", []string{"address and port"}, []string{"identity_file", "timeout"}},
		{"hung", monitor.KindTimeout, "timed out", []string{"connect timeout"}, []string{"identity_file", "authorized_keys"}},
	}
	seen := map[monitor.Kind]bool{}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			r, ok := results[tt.server]
			if !ok {
				t.Fatal("no result")
			}
			if r.OK || r.Kind != tt.kind {
				t.Fatalf("kind %q, want %q: %+v", r.Kind, tt.kind, r)
			}
			seen[r.Kind] = true
			if !strings.Contains(r.Error, tt.err) {
				t.Errorf("error %q lacks %q", r.Error, tt.err)
			}
			for _, want := range tt.fix {
				if !strings.Contains(r.Fix, want) {
					t.Errorf("fix %q lacks %q", r.Fix, want)
				}
			}
			for _, bad := range tt.notInFix {
				if strings.Contains(r.Fix, bad) {
					t.Errorf("fix %q contradicts the error %q: it says %q", r.Fix, r.Error, bad)
				}
			}
			if r.Fix == "" || strings.Contains(r.Error, r.Fix) {
				t.Errorf("fix %q missing or repeated in the error %q", r.Fix, r.Error)
			}
		})
	}
	if !results["ok"].OK {
		t.Errorf("ok: %+v", results["ok"])
	}
	for _, r := range results {
		if !r.OK && !slices.Contains(listed, string(r.Kind)) {
			t.Errorf("%s: kind %q is not one the README lists (%v)", r.Server, r.Kind, listed)
		}
	}
	for _, k := range monitor.Kinds {
		if !slices.Contains(listed, string(k)) {
			t.Errorf("kind %q is not listed in the README", k)
		}
		if !seen[k] {
			t.Errorf("no test made a failure of kind %q", k)
		}
		if kindFixes[k] == "" {
			t.Errorf("kind %q has no fix of its own", k)
		}
	}
}

// readmeKinds returns the kinds the README lists for failed servers.
func readmeKinds(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	m := regexp.MustCompile("has a kind: ((?:`[a-z]+`(?:, | or )?)+)").FindStringSubmatch(text)
	if m == nil {
		t.Fatal("README does not list the kinds of failure (\"has a kind: `unreachable`, ...\")")
	}
	var kinds []string
	for _, k := range regexp.MustCompile("`([a-z]+)`").FindAllStringSubmatch(m[1], -1) {
		kinds = append(kinds, k[1])
	}
	return kinds
}
