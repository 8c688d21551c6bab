package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/remote"
)

func TestSelection(t *testing.T) {
	h := newHarness(t)
	h.writeConfig(h.srv.KnownHostsFile,
		h.server("web1", `tags = ["web"]`)+h.server("web2", `tags = ["web", "eu"]`)+h.server("db1", `tags = ["db"]`))
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--tag", "web"}, []string{"web1", "web2"}},
		{[]string{"--tag", "db", "--tag", "eu"}, []string{"web2", "db1"}},
		{[]string{"db1", "--tag", "eu"}, []string{"db1", "web2"}},
		{[]string{"--all"}, []string{"web1", "web2", "db1"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := h.run(append([]string{"once", "--json"}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				name, _, _ := strings.Cut(strings.TrimPrefix(line, `{"server":"`), `"`)
				got = append(got, name)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("once %v probed %v, want %v", tt.args, got, tt.want)
			}
		})
	}
}

// TestTrustSeveral trusts two servers at once: every fingerprint is shown
// first, then one question per server; with --yes, what was recorded.
func TestTrustSeveral(t *testing.T) {
	h := newHarness(t)
	other := sshdtest.Start(t)
	known := filepath.Join(h.dir, "known_hosts")
	h.writeConfig(known, h.server("web1", `tags = ["web"]`)+
		"\n[[server]]\nname = \"web2\"\naddress = \""+other.Addr+"\"\ntags = [\"web\"]\nidentity_file = \""+other.ClientKeyFile+"\"\n")
	h.terminal = true
	h.stdin = "y\nn\n"
	code, stdout, stderr := h.run("trust", "web1", "web2")
	if code != exitFailure {
		t.Fatalf("one yes, one no: exit %d\n%s\n%s", code, stdout, stderr)
	}
	fp1, fp2 := remote.Fingerprint(h.srv.HostKey), remote.Fingerprint(other.HostKey)
	i1, i2, q1, q2 := strings.Index(stdout, fp1), strings.Index(stdout, fp2), strings.Index(stdout, "Record web1's key"), strings.Index(stdout, "Record web2's key")
	if i1 < 0 || i2 < 0 || q1 < 0 || q2 < 0 || q1 < i2 || q2 < q1 || strings.Count(stdout, "[y/N]") != 2 {
		t.Errorf("want both fingerprints, then a question per server:\n%s", stdout)
	}
	if !strings.Contains(stdout, "recorded web1 ssh-ed25519 "+fp1+" in "+known) || !strings.Contains(stdout, "Not recorded web2's key.") {
		t.Errorf("output:\n%s", stdout)
	}

	code, stdout, stderr = h.run("trust", "--yes", "--tag", "web")
	if code != exitOK {
		t.Fatalf("trust --yes --tag web: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "already recorded in "+known) || !strings.Contains(stdout, "recorded web2 ssh-ed25519 "+fp2+" in "+known) {
		t.Errorf("trust --yes --tag web:\n%s", stdout)
	}
	data, err := os.ReadFile(known)
	if err != nil || strings.Count(string(data), "\n") != 2 {
		t.Errorf("known_hosts: %v\n%s", err, data)
	}
	if code, results := h.onceJSON("web1", "web2"); code != exitOK {
		t.Errorf("once after trust: %+v", results)
	}
}
