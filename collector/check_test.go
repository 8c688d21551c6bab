package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// checkServers writes an inventory with one server per kind of outcome: web1
// works; newhost's key is not in its known_hosts; stranger offers a key
// the server does not accept; down is a closed port.
func checkServers(t *testing.T, h *harness) {
	t.Helper()
	empty := filepath.Join(h.dir, "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.writeConfig(h.srv.KnownHostsFile,
		h.server("web1", "")+
			h.server("newhost", fmt.Sprintf("known_hosts = %q", empty))+
			h.server("stranger", fmt.Sprintf("identity_file = %q", unauthorizedKey(t)))+
			fmt.Sprintf("\n[[server]]\nname = \"down\"\naddress = %q\n", closedAddr(t)))
}

// unauthorizedKey writes a new private key that no server accepts.
func unauthorizedKey(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_stranger")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedAddr returns an address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// checkJSON runs `check --json` and decodes its lines by server.
func (h *harness) checkJSON(names ...string) (int, map[string]checkResult, string) {
	h.t.Helper()
	code, stdout, stderr := h.run(append([]string{"check", "--json"}, names...)...)
	results := map[string]checkResult{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var r checkResult
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			h.t.Fatalf("check --json printed a line that is not a result: %v\n%s", err, sc.Text())
		}
		results[r.Server] = r
	}
	return code, results, stderr
}

func TestCheck(t *testing.T) {
	h := newHarness(t)
	checkServers(t, h)
	code, results, stderr := h.checkJSON()
	if code != exitFailure {
		t.Errorf("exit %d, want %d when a server failed", code, exitFailure)
	}
	if stderr != "" {
		t.Errorf("stderr without a terminal:\n%s", stderr)
	}
	tests := []struct {
		server string
		kind   string
		errs   []string // in the error
		fix    string   // in the fix
	}{
		{"web1", "", nil, ""},
		{"newhost", "hostkey", []string{"host key is not known", "ED25519 SHA256:"}, "check the fingerprint and run: collector trust newhost"},
		{"stranger", "auth", []string{"unable to authenticate as " + h.srv.User, "id_stranger"}, "authorized_keys on stranger, or check identity_file and user"},
		{"down", "unreachable", []string{"unreachable", "connection refused"}, "check the address and port"},
	}
	if len(results) != len(tests) {
		t.Fatalf("%d results, want %d: %+v", len(results), len(tests), results)
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			r, ok := results[tt.server]
			if !ok {
				t.Fatal("no result")
			}
			if r.OK != (tt.kind == "") || string(r.Kind) != tt.kind {
				t.Fatalf("ok %v, kind %q; want kind %q: %+v", r.OK, r.Kind, tt.kind, r)
			}
			if r.OK {
				if r.Platform != "linux/"+runtime.GOARCH || r.DurationMS <= 0 || r.Error != "" || r.Fix != "" {
					t.Errorf("%+v", r)
				}
				return
			}
			for _, want := range tt.errs {
				if !strings.Contains(r.Error, want) {
					t.Errorf("error %q lacks %q", r.Error, want)
				}
			}
			if !strings.Contains(r.Fix, tt.fix) {
				t.Errorf("fix %q lacks %q", r.Fix, tt.fix)
			}
			if strings.Contains(r.Error, r.Fix) || strings.HasPrefix(r.Error, tt.server+": ") {
				t.Errorf("error %q repeats the fix or the server's name", r.Error)
			}
		})
	}

	// Named servers only; all fine.
	code, results, _ = h.checkJSON("web1")
	if code != exitOK || len(results) != 1 || !results["web1"].OK {
		t.Errorf("check web1: exit %d, %+v", code, results)
	}
}

func TestCheckText(t *testing.T) {
	h := newHarness(t)
	checkServers(t, h)
	code, stdout, stderr := h.run("check", "web1", "newhost")
	if code != exitFailure {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	want := regexp.MustCompile(`^OK   web1     \d+(\.\d)?m?s  linux/` + runtime.GOARCH + `\n` +
		`FAIL newhost  hostkey  newhost \(127\.0\.0\.1:\d+\): host key is not known \(ED25519 SHA256:\S+ not in [^)]+\)\n` +
		`     fix: check the fingerprint and run: collector trust newhost\n$`)
	if !want.MatchString(stdout) {
		t.Errorf("output:\n%s\nwant it to match:\n%s", stdout, want)
	}
}

func TestCheckProgress(t *testing.T) {
	h := newHarness(t)
	checkServers(t, h)
	h.terminal = true
	code, _, stderr := h.run("check", "web1", "down")
	if code != exitFailure {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"\r[0/2]\x1b[K", "last: down (unreachable)", "\r[2/2] done, 1 failed\x1b[K\n"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%q", want, stderr)
		}
	}
}

func TestCheckBadConfig(t *testing.T) {
	h := newHarness(t)
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+h.server("web2", "timout = \"5s\"\nport = \"22\""))
	code, results, stderr := h.checkJSON()
	if code != exitUsage || len(results) != 0 {
		t.Fatalf("exit %d, %+v; want exit %d and no results", code, results, exitUsage)
	}
	// Each problem on a line of its own, with file and line.
	data, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	line := 1 + strings.Count(string(data[:strings.Index(string(data), "timout")]), "\n")
	want := fmt.Sprintf("collector: unknown key 'timout' in server 'web2' (%[1]s:%[2]d); did you mean 'timeout'?\n"+
		"collector: wrong type for 'port': found a string in server 'web2' (%[1]s:%[3]d); write a number without quotes, e.g. port = 2222\n",
		h.config, line, line+1)
	if stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want)
	}
}
