//go:build unix

package fsutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockIsExclusiveAndNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	release, err := Lock(path, "collector run (pid 4242 on host1)")
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open files: a second Lock in this process
	// opens the file anew and is refused, as another process would be.
	_, err = Lock(path, "collector collect (pid 99)")
	var locked *LockedError
	if !errors.As(err, &locked) || !strings.Contains(err.Error(), "collector run (pid 4242 on host1)") {
		t.Fatalf("second Lock = %v; want a LockedError naming the holder", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	release2, err := Lock(path, "collector collect (pid 99)")
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	release2()
}

// TestLockEndsWithTheProcess: a process killed while holding the lock
// leaves none behind.
func TestLockEndsWithTheProcess(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("no flock(1) on this system")
	}
	path := filepath.Join(t.TempDir(), "lock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(flock, "--no-fork", "--exclusive", path, "sleep", "600")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until it holds the lock: our own attempt is refused.
	for {
		release, err := Lock(path, "test")
		if err != nil {
			break
		}
		release()
	}
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	release, err := Lock(path, "test")
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	release()
}
