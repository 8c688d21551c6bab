package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParse reads any bytes as servers.toml: an inventory, or an error that
// names the file, never a panic.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.toml"))
	paths = append(paths, filepath.Join("..", "servers.toml"))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := parse(strings.NewReader(string(data)), "servers.toml", testEnv)
		if err != nil {
			if !strings.Contains(err.Error(), "servers.toml") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		if inv == nil {
			t.Fatal("no inventory and no error")
		}
	})
}

// FuzzParseDuration: any text is a duration or an error; a duration
// without a sign is never negative (no overflow wraps around), and one
// that time.ParseDuration takes is what it says.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "7d", "1d12h", "1.5d", "-2h", "106751d", "106751.99116730064d", "0d", "d", "1e3d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 && !strings.HasPrefix(s, "-") {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		}
		if want, err := time.ParseDuration(s); err == nil && want != d {
			t.Fatalf("ParseDuration(%q) = %v, time.ParseDuration says %v", s, d, want)
		}
	})
}
