package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
