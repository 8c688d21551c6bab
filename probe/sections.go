package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// This file reads the sections that are one reading, not a window: TCP
// sockets, file handles and the local file systems.

// readSockets counts the TCP sockets by state through sock_diag
// (sockdiag.go), or where that fails from /proc/net/tcp and tcp6. It reads
// those in chunks and looks only at the state column, so a host with tens
// of thousands of sockets costs little more than the kernel's own work of
// listing them; a host without IPv6 has no tcp6.
func readSockets(ctx context.Context) snapshot.Sockets {
	var counts [12]int
	buf := make([]byte, 64<<10)
	if err := countTCPDiag(ctx, buf, &counts); err == nil {
		return snapshot.Sockets{TCP: tcpStateMap(&counts)}
	}
	counts = [12]int{}
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		err := streamTCP(ctx, path, buf, &counts)
		if errors.Is(err, fs.ErrNotExist) && path == "/proc/net/tcp6" {
			continue
		}
		if err != nil {
			return snapshot.Sockets{Error: fmt.Sprintf("count tcp sockets: %v", err)}
		}
	}
	return snapshot.Sockets{TCP: tcpStateMap(&counts)}
}

// streamTCP counts the sockets of one file, a chunk at a time.
func streamTCP(ctx context.Context, path string, buf []byte, counts *[12]int) error {
	fd, err := openAt(unix.AT_FDCWD, path)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	header := true
	carry := 0 // bytes of an unfinished line at the start of buf
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		n, err := syscall.Read(fd, buf[carry:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "read", Path: path, Err: err}
		}
		data := buf[:carry+n]
		if n == 0 {
			if len(bytes.TrimSpace(data)) > 0 && !header {
				return countTCPLines(data, counts)
			}
			return nil
		}
		end := bytes.LastIndexByte(data, '\n')
		if end < 0 {
			if len(data) == len(buf) {
				return fmt.Errorf("read %s: a line longer than %d bytes", path, len(buf))
			}
			carry = len(data)
			continue
		}
		whole := data[:end+1]
		if header {
			i := bytes.IndexByte(whole, '\n')
			whole, header = whole[i+1:], false
		}
		if err := countTCPLines(whole, counts); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		carry = copy(buf, data[end+1:])
	}
}

func readFileDescriptors(ctx context.Context) snapshot.FileDescriptors {
	var buf []byte
	data, err := readFile("/proc/sys/fs/file-nr", &buf)
	if err != nil {
		return snapshot.FileDescriptors{Error: fmt.Sprintf("read file handles: %v", err)}
	}
	allocated, max, err := parseFileNr(data)
	if err != nil {
		return snapshot.FileDescriptors{Error: fmt.Sprintf("read file handles: %v", err)}
	}
	return snapshot.FileDescriptors{Allocated: allocated, Max: max}
}

// localTypes are the file system types on block devices that the probe
// reports. Network file systems, pseudo file systems and read-only images
// (squashfs, iso9660, erofs: always full) are left out; so are FUSE ones,
// whose usage a user daemon answers and which may hang.
var localTypes = map[string]bool{
	"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true, "zfs": true,
	"f2fs": true, "vfat": true, "exfat": true, "ntfs": true, "ntfs3": true, "jfs": true,
	"reiserfs": true, "bcachefs": true, "nilfs2": true, "hfsplus": true,
}

// localFilesystems picks from mountinfo the file systems to report: local
// types, and an overlay at "/" (a container's root). A file system mounted
// at several points (bind mounts, btrfs subvolumes of one file system) is
// reported once, at the mount of its root directory when there is one,
// otherwise at its shortest mount point; a mount point mounted over is
// reported for what is on top.
func localFilesystems(mounts []mount) []mount {
	top := make(map[string]int) // mount point → index of the last mount there
	for i, m := range mounts {
		top[m.Point] = i
	}
	byDev := make(map[string]mount)
	var order []string
	for i, m := range mounts {
		if top[m.Point] != i || !(localTypes[m.Type] || m.Type == "overlay" && m.Point == "/") {
			continue
		}
		old, seen := byDev[m.Dev]
		if !seen {
			order = append(order, m.Dev)
			byDev[m.Dev] = m
			continue
		}
		if better(m, old) {
			byDev[m.Dev] = m
		}
	}
	out := make([]mount, 0, len(order))
	for _, dev := range order {
		out = append(out, byDev[dev])
	}
	slices.SortFunc(out, func(a, b mount) int { return strings.Compare(a.Point, b.Point) })
	return out
}

// better reports whether mount a of a file system is a better place to
// report it at than b.
func better(a, b mount) bool {
	if (a.Root == "/") != (b.Root == "/") {
		return a.Root == "/"
	}
	if len(a.Point) != len(b.Point) {
		return len(a.Point) < len(b.Point)
	}
	return a.Point < b.Point
}

// readFilesystems reads the usage of every local file system, each in its
// own goroutine: a file system that hangs costs only its own entry.
func readFilesystems(ctx context.Context) snapshot.Filesystems {
	var buf []byte
	data, err := readFile("/proc/self/mountinfo", &buf)
	if err != nil {
		return snapshot.Filesystems{Error: fmt.Sprintf("list mounts: %v", err)}
	}
	all, err := parseMountinfo(data)
	if err != nil {
		return snapshot.Filesystems{Error: fmt.Sprintf("list mounts: %v", err)}
	}
	mounts := localFilesystems(all)
	out := snapshot.Filesystems{Mounts: make([]snapshot.Filesystem, 0, min(len(mounts), snapshot.MaxFilesystems))}
	if len(mounts) > snapshot.MaxFilesystems {
		out.Omitted = len(mounts) - snapshot.MaxFilesystems
		mounts = mounts[:snapshot.MaxFilesystems]
	}
	results := make([]chan snapshot.Filesystem, len(mounts))
	for i, m := range mounts {
		results[i] = make(chan snapshot.Filesystem, 1)
		go func() { results[i] <- usage(m) }()
	}
	for i, m := range mounts {
		select {
		case f := <-results[i]:
			out.Mounts = append(out.Mounts, f)
		case <-ctx.Done():
			out.Mounts = append(out.Mounts, snapshot.Filesystem{
				Path: m.Point, Device: m.Source, Type: m.Type,
				Error: fmt.Sprintf("statfs %s: %v", m.Point, context.Cause(ctx)),
			})
		}
	}
	return out
}

// usage reads the usage of one mounted file system.
func usage(m mount) snapshot.Filesystem {
	f := snapshot.Filesystem{Path: m.Point, Device: m.Source, Type: m.Type}
	total, used, free, inodes, inodesUsed, err := statfs(m.Point)
	if err != nil {
		f.Error = fmt.Sprintf("statfs %s: %v", m.Point, err)
		return f
	}
	f.Total, f.Used, f.Free, f.UsedPercent = total, used, free, percentOf(used, used+free)
	f.Inodes, f.InodesUsed, f.InodesUsedPercent = inodes, inodesUsed, percentOf(inodesUsed, inodes)
	return f
}
