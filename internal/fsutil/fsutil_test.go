package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAtomicReplacesAndLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pruned-at")
	for _, content := range []string{"first\n", "second\n"} {
		if err := WriteAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %d entries (%v), want only the file", len(entries), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestWriteAtomicFailsInAMissingDirectory(t *testing.T) {
	if err := WriteAtomic(filepath.Join(t.TempDir(), "no", "file"), []byte("x")); err == nil {
		t.Fatal("no error writing into a missing directory")
	}
}

func TestWriteSyncTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mark")
	if err := WriteSync(path, []byte("12345 67\n")); err != nil {
		t.Fatal(err)
	}
	if err := WriteSync(path, []byte("8 9\n")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "8 9\n" {
		t.Errorf("read %q", got)
	}
}
