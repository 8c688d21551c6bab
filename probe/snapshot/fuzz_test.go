package snapshot

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/crawlerfleet/collector/internal/testutil"
)

// FuzzUnmarshal feeds any bytes to Unmarshal, as a broken or hostile probe
// would print them: a snapshot or an error, never a panic; and the one-pass
// decoder and the passes that explain errors agree on every snapshot the
// first takes.
func FuzzUnmarshal(f *testing.F) {
	testutil.AddFiles(f, filepath.Join("testdata", "*.json"))
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
