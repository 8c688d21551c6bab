package snapshot

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzUnmarshal feeds any bytes to Unmarshal, as a broken or hostile probe
// would print them: a snapshot or an error, never a panic; and the one-pass
// decoder and the passes that explain errors agree on every snapshot the
// first takes.
func FuzzUnmarshal(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := unmarshalValid(data)
		slow, err := unmarshalExplained(data)
		if ok && (err != nil || !reflect.DeepEqual(fast, slow)) {
			t.Fatalf("%q: the one pass took it, the explaining passes said %v", data, err)
		}
		if _, err := Unmarshal(data); (err == nil) != (ok || slow != nil) {
			t.Fatalf("%q: Unmarshal says %v", data, err)
		}
	})
}
