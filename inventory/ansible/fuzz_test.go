package ansible

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse reads any bytes as an Ansible inventory (INI, or the JSON of
// ansible-inventory --list): an inventory or an error naming the file,
// never a panic.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(strings.NewReader(string(data)), "hosts")
		if err != nil {
			if !strings.Contains(err.Error(), "hosts") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		if inv == nil {
			t.Fatal("no inventory and no error")
		}
	})
}
