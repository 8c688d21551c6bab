// Package fsutil writes files so that a crash leaves them whole: the
// collector keeps its spool marks, prune times, alert state and locks in its
// data directory, and each must survive a kill -9 or a power cut.
package fsutil

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// WriteAtomic replaces the file at path with data: it writes and syncs a
// temporary file next to it (mode 0600), renames it over path and syncs the
// directory, so that a crash leaves either the old content or the new.
func WriteAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// WriteSync writes data to the file at path in place (created with mode
// 0600, truncated) and syncs it. Cheaper than WriteAtomic, for small files
// whose torn content the reader detects and survives.
func WriteSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncDir syncs a directory, so that files created, renamed or removed in
// it stay so after a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteJSON replaces the file at path with v as JSON, as WriteAtomic does.
func WriteJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteAtomic(path, b)
}
