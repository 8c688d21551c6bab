package inventory

import (
	"strings"
	"testing"
)

func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		in      string
		host    string
		port    int
		wantErr string
	}{
		{in: "web1.example.com", host: "web1.example.com"},
		{in: "web1.example.com:2222", host: "web1.example.com", port: 2222},
		{in: "10.0.0.1", host: "10.0.0.1"},
		{in: "10.0.0.1:22", host: "10.0.0.1", port: 22},
		{in: "::1", host: "::1"},
		{in: "[::1]", host: "::1"},
		{in: "[::1]:2222", host: "::1", port: 2222},
		{in: "2001:db8::1", host: "2001:db8::1"},
		{in: "[fe80::1%eth0]:22", host: "fe80::1%eth0", port: 22},
		{in: "", wantErr: "empty address"},
		{in: "web1:", wantErr: `port "" after ':'`},
		{in: "web1:ssh", wantErr: `port "ssh" after ':'`},
		{in: "web1:0", wantErr: `port "0" after ':'`},
		{in: ":22", wantErr: "no host name"},
		{in: "[::1]:99999", wantErr: `port "99999"`},
		{in: "[web1]:22", wantErr: `"web1" is not an IPv6 address`},
		{in: "[10.0.0.1]", wantErr: `"10.0.0.1" is not an IPv6 address`},
		{in: "a:b:c", wantErr: "several ':' but is not an IPv6 address"},
		{in: "root@web1", wantErr: "contains a user name"},
		{in: "ssh://web1", wantErr: "is a URL or path"},
		{in: "web 1", wantErr: "spaces or control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port, err := splitHostPort(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("splitHostPort(%q) = %q, %d, %v; want error %q", tt.in, host, port, err, tt.wantErr)
				}
				return
			}
			if err != nil || host != tt.host || port != tt.port {
				t.Errorf("splitHostPort(%q) = %q, %d, %v; want %q, %d", tt.in, host, port, err, tt.host, tt.port)
			}
		})
	}
}

func TestParseJump(t *testing.T) {
	tests := []struct {
		in, user, host string
		port           int
		wantErr        string
	}{
		{in: "gw", host: "gw"},
		{in: "ops@gw:2022", user: "ops", host: "gw", port: 2022},
		{in: "ops@[2001:db8::1]:2222", user: "ops", host: "2001:db8::1", port: 2222},
		{in: "ops@2001:db8::1", user: "ops", host: "2001:db8::1"},
		{in: "@gw", wantErr: "no user name before '@'"},
		{in: "o ps@gw", wantErr: "contains spaces"},
		{in: "ops@", wantErr: "empty address"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			user, host, port, err := parseJump(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseJump(%q) = %v; want error %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || user != tt.user || host != tt.host || port != tt.port {
				t.Errorf("parseJump(%q) = %q, %q, %d, %v; want %q, %q, %d", tt.in, user, host, port, err, tt.user, tt.host, tt.port)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"name", "address", "user", "port", "identity_file", "identity_passphrase_env", "jump"}
	tests := []struct{ in, want string }{
		{"adress", "address"},
		{"usr", "user"},
		{"Port", "port"},
		{"hostname", "address"},
		{"ProxyJump", "jump"},
		{"identityfile", "identity_file"},
		{"identity-file", "identity_file"},
		{"flavour", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, known); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
