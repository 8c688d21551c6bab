//go:build unix

package fsutil

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// A LockedError is returned by Lock when another process holds the lock.
type LockedError struct {
	Path   string
	Holder string // what the holder wrote in the lock file: who it is
}

func (e *LockedError) Error() string {
	holder := strings.TrimSpace(e.Holder)
	if holder == "" {
		holder = "another process"
	}
	return fmt.Sprintf("%s is locked by %s", e.Path, holder)
}

// Lock takes an exclusive lock on the file at path (created with mode
// 0600), without waiting, and writes who into it for whoever finds it
// locked. The lock is the kernel's (flock): it ends when release is called
// or the process ends, however it ends, so a crash never leaves a stale
// lock behind. It returns a *LockedError when another process holds it.
func Lock(path, who string) (release func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: path, Holder: string(holder)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(who+"\n"), 0)
		_ = f.Sync()
	}
	return func() error {
		// The file stays: removing it would let a third process lock a new
		// file while a second still waits on the old one.
		_ = f.Truncate(0)
		return f.Close() // closing the last descriptor releases the flock
	}, nil
}
