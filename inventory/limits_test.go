package inventory

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// bigInventory returns a valid inventory of at least size bytes.
func bigInventory(size int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		b.WriteString("[[server]]\nname = \"crawler-")
		b.WriteString(strings.Repeat("x", 8))
		b.WriteString("\"\naddress = \"10.0.0.1\"\nkeywords = [\"python\", \"scrapy\"]\n\n")
	}
	return b.Bytes()
}

func TestFileSizeCap(t *testing.T) {
	big := bigInventory(MaxFileSize + 1)

	// From a stream: only MaxFileSize+1 bytes are read.
	r := &countingReader{r: bytes.NewReader(append(big, make([]byte, 8<<20)...))}
	_, err := parse(r, "servers.toml", testEnv)
	want := "file is over the 4 MiB limit of servers.toml (servers.toml); is this the right file?"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("parse of a %d-byte stream = %v\nwant an error starting %q", r.n, err, want)
	}
	if r.n > MaxFileSize+1+64<<10 { // io.ReadAll reads in chunks
		t.Errorf("read %d bytes of the stream, want about %d", r.n, MaxFileSize+1)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "servers.toml" {
		t.Errorf("error %T is not an *Error naming the file", err)
	}

	// From a file: refused by its size, before it is read.
	path := filepath.Join(t.TempDir(), "servers.toml")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = load(path, testEnv)
	if err == nil || !strings.Contains(err.Error(), "file of "+strconv.Itoa(len(big))+" bytes is over the 4 MiB limit of servers.toml ("+path+")") {
		t.Errorf("load of a %d-byte file = %v", len(big), err)
	}

	// At the cap exactly, the file is read and parsed.
	exact := []byte("[[server]]\nname = \"web1\"\naddress = \"web1\"\n#")
	exact = append(exact, bytes.Repeat([]byte("x"), MaxFileSize-len(exact)-1)...)
	exact = append(exact, '\n')
	if err := os.WriteFile(path, exact, 0o600); err != nil {
		t.Fatal(err)
	}
	if inv, err := load(path, testEnv); err != nil || len(inv.Servers) != 1 {
		t.Errorf("load of a file of exactly MaxFileSize bytes = %v", err)
	}
	if inv, err := parse(bytes.NewReader(exact), "servers.toml", testEnv); err != nil || len(inv.Servers) != 1 {
		t.Errorf("parse of a stream of exactly MaxFileSize bytes = %v", err)
	}
}

type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestServerCountCap(t *testing.T) {
	tests := []struct {
		name, src string
		want      string
	}{
		{
			name: "headers",
			src:  "[defaults]\nuser = \"u\"\n" + strings.Repeat("[[server]]\n", MaxServers+1),
			want: "more than 100000 [[server]] entries (servers.toml:100003); split the fleet over several collectors",
		},
		{
			name: "inline",
			src:  "server = [" + strings.Repeat("{},", MaxServers+1) + "]\n",
			want: "more than 100000 [[server]] entries (servers.toml:1)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.src) > MaxFileSize {
				t.Fatalf("test input of %d bytes is over the size cap", len(tt.src))
			}
			_, err := parse(strings.NewReader(tt.src), "servers.toml", testEnv)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %.300v\nwant one starting %q", err, tt.want)
			}
		})
	}
}

func TestIsServerHeader(t *testing.T) {
	for line, want := range map[string]bool{
		"[[server]]":                  true,
		"  [[ server ]]  # the next":  true,
		`[["server"]]`:                true,
		`[[ 'server' ]]`:              true,
		"[[servers]]":                 false,
		"[[server.alerts.processes]]": false,
		"[server]":                    false,
		"# [[server]]":                false,
		"name = \"[[server]]\"":       false,
	} {
		if got := isServerHeader([]byte(line)); got != want {
			t.Errorf("isServerHeader(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestControlName(t *testing.T) {
	for r, want := range map[rune]string{0: "NUL", '\t': "HT (tab)", '\n': "LF (newline)", '\r': "CR (carriage return)", 0x1b: "ESC", 0x1f: "US", 0x7f: "DEL"} {
		if got := controlName(r); got != want {
			t.Errorf("controlName(%U) = %q, want %q", r, got, want)
		}
	}
	if _, ok := firstControl("python3 -m scrapy é ü"); ok {
		t.Error("firstControl finds a control character in printable text")
	}
}

// TestWebhookNames checks that every channel gets a unique name from the
// file alone.
func TestWebhookNames(t *testing.T) {
	src := `[alerts.email]
server = "smtp.example.com:587"
from = "c@example.com"
to = ["ops@example.com"]

[[alerts.webhook]]
kind = "wecom"
url_env = "WECOM_A"

[[alerts.webhook]]
kind = "wecom"
url_env = "WECOM_B"

[[alerts.webhook]]
url = "https://hooks.example.com/a"

[[alerts.webhook]]
url = "https://hooks.example.com/b"

[[alerts.webhook]]
name = "email"
url = "https://hooks.example.com/c"

[[alerts.webhook]]
name = "team"
url = "https://hooks.example.com/d"
`
	inv, err := parse(strings.NewReader(src), "servers.toml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range inv.Alerts.Webhooks {
		got = append(got, w.Name)
	}
	want := []string{"wecom", "wecom #2", "generic hooks.example.com", "generic hooks.example.com #4", "email #5", "team"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("names = %q\nwant    %q", got, want)
	}
}

func TestEmailHostPort(t *testing.T) {
	tests := []struct {
		server, host string
		port         int
		err          string
	}{
		{"smtp.example.com:587", "smtp.example.com", 587, ""},
		{"[2001:db8::25]:25", "2001:db8::25", 25, ""},
		{"smtp.example.com", "", 0, `"smtp.example.com" is not host:port`},
		{":465", "", 0, `":465" has no host name before the port`},
		{"smtp.example.com:smtp", "", 0, `"smtp.example.com:smtp" has port "smtp", not a number from 1 to 65535`},
		{"smtp.example.com:0", "", 0, `has port "0"`},
		{"smtp.example.com:65536", "", 0, `has port "65536"`},
	}
	for _, tt := range tests {
		host, port, err := Email{Server: tt.server}.HostPort()
		switch {
		case tt.err == "" && (err != nil || host != tt.host || port != tt.port):
			t.Errorf("HostPort(%q) = %q, %d, %v; want %q, %d", tt.server, host, port, err, tt.host, tt.port)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("HostPort(%q) error = %v, want one containing %q", tt.server, err, tt.err)
		}
	}
}

func TestCheckWebhookURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://hooks.example.com/x?token=SECRET": true,
		"http://127.0.0.1:9000/hook":               true,
		"ftp://example.com/SECRET":                 false,
		"hooks.example.com/SECRET":                 false,
		"https:///SECRET":                          false,
		"":                                         false,
		"https://example.com/\x00SECRET":           false,
	} {
		err := CheckWebhookURL(raw)
		if (err == nil) != ok {
			t.Errorf("CheckWebhookURL(%q) = %v, want ok %v", raw, err, ok)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("CheckWebhookURL(%q) error %q holds the URL", raw, err)
		}
	}
}
