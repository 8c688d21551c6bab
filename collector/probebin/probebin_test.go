package probebin

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestPlatform(t *testing.T) {
	tests := []struct {
		name, uname, goos, goarch, err string
	}{
		{"x86_64", "Linux x86_64\n", "linux", "amd64", ""},
		{"aarch64", "Linux aarch64", "linux", "arm64", ""},
		{"darwin", "Darwin arm64", "", "", "unsupported operating system"},
		{"armv7", "Linux armv7l", "", "", "unsupported machine"},
		{"garbage", "bash: uname: command not found", "", "", "unexpected"},
		{"empty", "", "", "", "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			goos, goarch, err := Platform(tt.uname)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Platform(%q) error = %v, want it to contain %q", tt.uname, err, tt.err)
				}
				return
			}
			if err != nil || goos != tt.goos || goarch != tt.goarch {
				t.Fatalf("Platform(%q) = %q, %q, %v; want %q, %q", tt.uname, goos, goarch, err, tt.goos, tt.goarch)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"probe-linux-amd64": "amd64 binary",
		"probe-linux-arm64": "arm64 binary",
		"README.md":         "not a build",
		"probe-":            "bad name",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Platforms(), " "); got != "linux/amd64 linux/arm64" {
		t.Fatalf("platforms = %q", got)
	}
	b, err := set.For("linux", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if string(b.Binary) != "arm64 binary" {
		t.Errorf("arm64 binary = %q", b.Binary)
	}
	// sha256("arm64 binary") computed independently with sha256sum.
	want := "69c8d344d2c80dfef71eb48359dd49d284f333515ad4d9c838dad09101f9c512"
	if b.Hash != want {
		t.Errorf("hash = %q, want %q", b.Hash, want)
	}
	// The probe recognises other collectors' probes by this name
	// (probe.namesProbeBuild): "probe-" and 16 lowercase hex digits.
	if !regexp.MustCompile(`^probe-[0-9a-f]{16}$`).MatchString(b.FileName()) || b.FileName() != "probe-"+want[:16] {
		t.Errorf("file name = %q", b.FileName())
	}
	if _, err := set.For("linux", "riscv64"); err == nil || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Errorf("For(riscv64) error = %v, want it to list the platforms", err)
	}
	if _, err := (Set{}).For("linux", "amd64"); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("empty set error = %v, want the fix", err)
	}
}
