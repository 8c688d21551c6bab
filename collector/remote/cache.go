package remote

import (
	"io/fs"
	"os"
	"sync"
	"time"
)

// The files a dial reads, identity files and known_hosts, are parsed once
// per process and kept while they do not change: a fleet dials hundreds of
// servers with the same few files, and an encrypted key costs a passphrase
// derivation (bcrypt) each time it is decrypted. A file counts as changed
// when its size, modification time or identity (device and inode: a file
// replaced by rename) differs from when it was read, so that a key recorded
// by `collector trust` is seen by the next dial.

// racyWindow guards against file systems that store modification times
// coarsely: a file modified less than racyWindow before it was read may
// change again without its modification time changing, so what was read
// from it is not trusted until a read happens after that window (as Git
// does for its index).
const racyWindow = 2 * time.Second

// A fileCache keeps one value per key, computed from a file, for as long as
// that file stays unchanged. It is safe for concurrent use; concurrent
// callers of get for the same unchanged file wait for one computation. The
// zero value is an empty cache.
type fileCache[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*cacheEntry[V]
}

type cacheEntry[V any] struct {
	info   fs.FileInfo // of the file the value is computed from
	loaded time.Time   // the file was read after this
	once   sync.Once
	val    V
	err    error
	keep   bool // val and err hold while the file is unchanged
}

// fresh reports whether e still holds for the file that info describes now.
func (e *cacheEntry[V]) fresh(info fs.FileInfo) bool {
	return e.info.Size() == info.Size() && e.info.ModTime().Equal(info.ModTime()) &&
		os.SameFile(e.info, info) && e.info.ModTime().Before(e.loaded.Add(-racyWindow))
}

// get returns the value for key, whose file info describes (as just returned
// by Stat). When the cache holds none for that file, load computes it, and
// tells whether to keep it: a value or error that depends only on the file's
// contents is kept, an error of reading it is not.
func (c *fileCache[K, V]) get(key K, info fs.FileInfo, load func() (val V, keep bool, err error)) (V, error) {
	c.mu.Lock()
	e := c.m[key]
	if e == nil || !e.fresh(info) {
		if c.m == nil {
			c.m = map[K]*cacheEntry[V]{}
		}
		e = &cacheEntry[V]{info: info, loaded: time.Now()}
		c.m[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.val, e.keep, e.err = load() })
	if !e.keep {
		c.mu.Lock()
		if c.m[key] == e {
			delete(c.m, key)
		}
		c.mu.Unlock()
	}
	return e.val, e.err
}
