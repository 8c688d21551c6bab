package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/inventory"
)

// TestImportAnsible imports both testdata inventories through the command
// and checks the result is a servers.toml the collector loads.
func TestImportAnsible(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir()}
	for _, src := range []string{"../inventory/ansible/testdata/hosts.ini", "../inventory/ansible/testdata/inventory.json"} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			code, stdout, stderr := h.run("import", "ansible", src)
			if code != exitOK {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			if !strings.Contains(stderr, "collector: import: not carried over: ") || !strings.Contains(stderr, "servers from "+src) {
				t.Errorf("stderr:\n%s", stderr)
			}
			if _, err := inventory.Parse(strings.NewReader("[defaults]\nssh_config = \"\"\nuser = \"u\"\n"+stdout), "imported.toml"); err != nil {
				t.Errorf("the output does not load: %v\n%s", err, stdout)
			}
		})
	}
	out := filepath.Join(h.dir, "imported.toml")
	if code, stdout, stderr := h.run("import", "ansible", "--out", out, "../inventory/ansible/testdata/inventory.json"); code != exitOK || stdout != "" {
		t.Fatalf("--out: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if data, err := os.ReadFile(out); err != nil || !strings.Contains(string(data), `name = "crawler-01"`) {
		t.Errorf("--out wrote %q, %v", data, err)
	}
	if code, _, stderr := h.run("import", "ansible", "--out", out, "../inventory/ansible/testdata/inventory.json"); code != exitFailure || !strings.Contains(stderr, "not overwritten") {
		t.Errorf("--out over an existing file: exit %d, %s", code, stderr)
	}
	if code, _, stderr := h.run("import", "puppet", "x"); code != exitUsage || !strings.Contains(stderr, "only ansible") {
		t.Errorf("import puppet: exit %d, %s", code, stderr)
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir()}
	code, stdout, _ := h.run("help")
	if code != exitOK {
		t.Fatal(code)
	}
	for _, c := range commands {
		if !strings.Contains(stdout, "  "+strings.TrimSpace(c.name+" "+c.args)) {
			t.Errorf("help lacks %s %s:\n%s", c.name, c.args, stdout)
		}
	}
	for _, want := range []string{"run [--rounds N] [--listen ADDR]", "unsilence ID", "completion bash|zsh", "import ansible FILE", "check [NAME... | --tag T] [--explain]"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestCompletionBash loads the bash script in a real bash and completes
// commands, a command's flags, server names and tags.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	h := &harness{t: t, dir: t.TempDir()}
	h.config = filepath.Join(h.dir, "servers.toml")
	if err := os.WriteFile(h.config, []byte("[[server]]\nname = \"web1\"\naddress = \"local\"\ntags = [\"crawlers\"]\n[[server]]\nname = \"web2\"\naddress = \"local\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, script, _ := h.run("completion", "bash")
	if code != exitOK {
		t.Fatal(code)
	}
	// The script calls the command as typed for names and tags: a stub
	// that runs this test binary's run() would need a binary, so the stub
	// prints what __complete prints, checked apart below.
	_, names, _ := h.run(completeCommand, "servers")
	_, tags, _ := h.run(completeCommand, "tags")
	if names != "web1\nweb2\n" || tags != "crawlers\n" {
		t.Fatalf("__complete: servers %q, tags %q", names, tags)
	}
	stub := filepath.Join(h.dir, "collector")
	stubText := "#!/bin/sh\ncase \"$*\" in *'__complete servers') printf 'web1\\nweb2\\n';; *'__complete tags') printf 'crawlers\\n';; esac\n"
	if err := os.WriteFile(stub, []byte(stubText), 0o755); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script+`
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _collector; echo "${COMPREPLY[*]}"`, "bash", stub)
		cmd.Args = append(cmd.Args, words...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"uns"}, "unsilence"},
		{[]string{"once", "--t"}, "--tag"},
		{[]string{"check", "--ex"}, "--explain"},
		{[]string{"once", "w"}, "web1 web2"},
		{[]string{"--config", "x.toml", "trust", "--tag", "c"}, "crawlers"},
		{[]string{"completion", ""}, "bash zsh"},
	} {
		if got := complete(tc.words...); got != tc.want {
			t.Errorf("complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
	if code, zsh, _ := h.run("completion", "zsh"); code != exitOK || !strings.Contains(zsh, "#compdef collector") || !strings.Contains(zsh, "bashcompinit") {
		t.Errorf("completion zsh: exit %d\n%s", code, zsh)
	}
}
