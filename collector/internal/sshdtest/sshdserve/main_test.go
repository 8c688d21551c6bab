package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/internal/testutil"
)

func TestRun(t *testing.T) {
	if _, err := os.Stat(sshdtest.SSHDPath); err != nil {
		if _, err := exec.LookPath("sshd"); err != nil && os.Getenv("CI") != "true" && os.Getenv("COLLECTOR_TEST_DISALLOW_SKIP") != "1" {
			t.Skip("OpenSSH server not installed")
		}
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"-config", "LogLevel ERROR"}, inR, outW, &stderr)
		outW.Close()
	}()

	line, err := bufio.NewReader(outR).ReadBytes('\n')
	if err != nil {
		t.Fatalf("read the server line: %v (stderr %q)", err, stderr.String())
	}
	var s Server
	if err := json.Unmarshal(line, &s); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.Port == 0 || s.User == "" {
		t.Errorf("server = %+v", s)
	}
	cfg, err := os.ReadFile(filepath.Join(s.Dir, "sshd_config"))
	if err != nil || !strings.Contains(string(cfg), "LogLevel ERROR") || strings.Contains(string(cfg), "LogLevel VERBOSE") {
		t.Errorf("sshd_config (%v):\n%s", err, cfg)
	}
	for _, f := range []string{s.ClientKeyFile, s.KnownHostsFile} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}

	// Closing stdin stops sshd and removes its directory.
	go io.Copy(io.Discard, outR)
	inW.Close()
	if code := testutil.Receive(t, done, "return of run after stdin closed"); code != 0 {
		t.Errorf("run = %d, want 0; stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v)", s.Dir, err)
	}
}
