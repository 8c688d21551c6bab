package ansible

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/internal/testutil"
)

// FuzzParse reads any bytes as an Ansible inventory (INI, or the JSON of
// ansible-inventory --list): an inventory or an error naming the file,
// never a panic.
func FuzzParse(f *testing.F) {
	// By extension: testdata/fuzz holds the fuzzer's own corpus.
	testutil.AddFiles(f, filepath.Join("testdata", "*.ini"))
	testutil.AddFiles(f, filepath.Join("testdata", "*.json"))
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
