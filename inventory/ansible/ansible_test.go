package ansible

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/inventory"
)

func parseTestdata(t *testing.T, path string) ([]Entry, []Skipped) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inv, err := Parse(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return inv.Entries()
}

func TestINI(t *testing.T) {
	entries, skipped := parseTestdata(t, "testdata/hosts.ini")
	want := []Entry{
		{Name: "mail.example.com", Address: "mail.example.com"},
		{Name: "web01.example.com", Address: "web01.example.com", User: "deploy", Tags: []string{"prod", "web"}},
		{Name: "web02.example.com", Address: "web02.example.com", User: "deploy", Tags: []string{"prod", "web"}},
		{Name: "web3", Address: "10.0.0.13", Port: 2222, User: "ops", Tags: []string{"prod", "web"}},
		{Name: "db1", Address: "10.0.1.5", User: "postgres", IdentityFile: "~/.ssh/db_ed25519", Jump: "ops@bastion.example.com:2200", Tags: []string{"db", "prod"}},
		{Name: "db2", Address: "10.0.1.6", User: "postgres", IdentityFile: "~/.ssh/db_ed25519", Jump: "ops@bastion.example.com", Tags: []string{"db", "prod"}},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("entries:\n%+v\nwant\n%+v", entries, want)
	}
	var got []string
	for _, s := range skipped {
		got = append(got, s.String())
	}
	for _, w := range []string{
		`web3: ansible_python_interpreter: no servers.toml key for it`,
		`db1: ansible_ssh_common_args: options other than a jump host are not used: -o StrictHostKeyChecking=no`,
		`db1: ansible_become: no servers.toml key for it`,
		`win1: ansible_connection: "winrm" is not SSH: host left out`,
		`web01.example.com: ansible_ssh_pass: passwords are not used`,
	} {
		if !strings.Contains(strings.Join(got, "\n"), w) {
			t.Errorf("skipped lacks %q:\n%s", w, strings.Join(got, "\n"))
		}
	}
	if strings.Contains(strings.Join(got, "\n"), "secret") {
		t.Error("a password's value was printed")
	}
}

func TestJSON(t *testing.T) {
	entries, skipped := parseTestdata(t, "testdata/inventory.json")
	want := []Entry{
		{Name: "crawler-01", Address: "203.0.113.10", User: "crawl", IdentityFile: "~/.ssh/crawl", Jump: "jump@bastion.example.com", Tags: []string{"crawlers", "eu"}},
		{Name: "crawler-02", Address: "203.0.113.11", Port: 2200, User: "crawl", Tags: []string{"crawlers"}},
		{Name: "localhost", Address: "local"},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("entries:\n%+v\nwant\n%+v", entries, want)
	}
	if len(skipped) != 1 || skipped[0].String() != "crawler-02: ansible_become: no servers.toml key for it" {
		t.Errorf("skipped %v", skipped)
	}
}

// TestRoundTrip: what WriteTOML prints is a servers.toml that
// inventory.Parse accepts, with the same servers.
func TestRoundTrip(t *testing.T) {
	for _, path := range []string{"testdata/hosts.ini", "testdata/inventory.json"} {
		t.Run(path, func(t *testing.T) {
			entries, _ := parseTestdata(t, path)
			var b bytes.Buffer
			if err := WriteTOML(&b, path, entries); err != nil {
				t.Fatal(err)
			}
			inv, err := inventory.Parse(strings.NewReader("[defaults]\nssh_config = \"\"\nuser = \"monitor\"\n"+b.String()), "imported.toml")
			if err != nil {
				t.Fatalf("%v\n%s", err, b.String())
			}
			if len(inv.Servers) != len(entries) {
				t.Fatalf("%d servers, want %d", len(inv.Servers), len(entries))
			}
			for i, e := range entries {
				s := inv.Servers[i]
				port := e.Port
				if port == 0 {
					port = 22
				}
				user := e.User
				if user == "" {
					user = "monitor"
				}
				if s.Name != e.Name || s.Address != e.Address || s.User != user && !s.IsLocal() || s.Port != port && !s.IsLocal() ||
					s.Jump != e.Jump || !reflect.DeepEqual(s.Tags, e.Tags) && len(e.Tags) > 0 {
					t.Errorf("server %d: %+v\nfrom %+v", i, s, e)
				}
			}
		})
	}
}

func TestSplitShell(t *testing.T) {
	tests := map[string][]string{
		`web1 a=1 b='two words' c="x \"y\""`: {"web1", "a=1", "b=two words", `c=x "y"`},
		`h k=v # comment`:                    {"h", "k=v"},
		`h k=a\ b`:                           {"h", "k=a b"},
		`-o ProxyCommand='ssh -W %h:%p b'`:   {"-o", "ProxyCommand=ssh -W %h:%p b"},
		``:                                   nil,
	}
	for in, want := range tests {
		if got := splitShell(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitShell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpandRange(t *testing.T) {
	tests := map[string][]string{
		"web[01:03]":    {"web01", "web02", "web03"},
		"db-[a:c].x":    {"db-a.x", "db-b.x", "db-c.x"},
		"n[1:9:4]":      {"n1", "n5", "n9"},
		"r[1:2]-[a:b]":  {"r1-a", "r1-b", "r2-a", "r2-b"},
		"plain.example": {"plain.example"},
	}
	for in, want := range tests {
		if got, err := expandRange(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("expandRange(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"w[3:1]", "w[1:x]", "w[1:2", "w[1:2:0]"} {
		if _, err := expandRange(bad); err == nil {
			t.Errorf("expandRange(%q): no error", bad)
		}
	}
}

func TestProxyJump(t *testing.T) {
	tests := []struct{ in, jump, rest string }{
		{"-J a@b:22", "a@b:22", ""},
		{"-Ja@b", "a@b", ""},
		{"-o ProxyJump=b1,b2 -C", "b1,b2", "-C"},
		{"-o 'ProxyCommand=ssh -W %h:%p -p 2200 -l ops bastion'", "ops@bastion:2200", ""},
		{"-o 'ProxyCommand=nc -X 5 -x proxy:1080 %h %p'", "", "-o ProxyCommand=nc -X 5 -x proxy:1080 %h %p"},
	}
	for _, tt := range tests {
		if j, r := proxyJump(tt.in); j != tt.jump || r != tt.rest {
			t.Errorf("proxyJump(%q) = %q, %q; want %q, %q", tt.in, j, r, tt.jump, tt.rest)
		}
	}
}

func TestINIErrors(t *testing.T) {
	for src, want := range map[string]string{
		"[web\nh1":              "hosts.ini:1: section header \"[web\" has no ']'",
		"[web:bogus]\n":         "hosts.ini:1: [web:bogus]: want",
		"[web:vars]\nnovalue\n": "hosts.ini:2: [web:vars] line \"novalue\" is not key=value",
		"h1 notkv\n":            "hosts.ini:1: \"notkv\" after host h1 is not key=value",
	} {
		if _, err := Parse(strings.NewReader(src), "hosts.ini"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", src, err, want)
		}
	}
}
