package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestCommandsRefuseBadInputs checks that what servers.toml must not hold
// is refused by every command when it loads the file, with the file and
// line, before anything connects: a NUL byte in a keyword used to pass
// `check` and fail each probe as "start command: EOF", and secret_env on a
// WeCom webhook passed `check` and left the channel out at start.
func TestCommandsRefuseBadInputs(t *testing.T) {
	h := newHarness(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", `keywords = ["py\u0000thon"]`)+`
[[alerts.webhook]]
kind = "wecom"
url_env = "WECOM_URL"
secret_env = "WECOM_SECRET"
`)
	h.environ = map[string]string{"WECOM_URL": "https://qyapi.weixin.qq.com/x", "WECOM_SECRET": "s"}
	data, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	lineOf := func(s string) int { return 1 + strings.Count(string(data[:strings.Index(string(data), s)]), "\n") }
	want := []string{
		fmt.Sprintf(`collector: keyword "py\x00thon" contains a control character (NUL) in server 'web1' (%s:%d)`, h.config, lineOf("keywords")),
		fmt.Sprintf(`collector: webhook 1 has secret_env, but wecom webhooks do not sign requests in [alerts] (%s:%d)`, h.config, lineOf("[[alerts.webhook]]")),
	}
	for _, args := range [][]string{{"check"}, {"once", "web1"}, {"collect"}, {"run", "--rounds", "1"}, {"alerts", "test"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := h.run(args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitUsage, stdout, stderr)
			}
			for _, w := range want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks\n\t%s\ngot:\n%s", w, stderr)
				}
			}
		})
	}
}
