package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"time"
	"unsafe"
)

// This file reads the system-wide files of /proc with plain system calls
// (no poller, one reused buffer); parse.go parses them.

// readFile reads the whole file at path into *buf, growing it as needed, and
// returns the bytes read. It uses open, read and close directly: /proc files
// are small and many, and os.File's poller registration would add a system
// call to each.
func readFile(path string, buf *[]byte) ([]byte, error) {
	return readFileAt(unix.AT_FDCWD, path, buf)
}

// readFileAt reads the file at path relative to the directory dirfd.
func readFileAt(dirfd int, path string, buf *[]byte) ([]byte, error) {
	fd, err := openAt(dirfd, path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer closeFD(fd)
	data, err := readAll(fd, buf)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return data, nil
}

// The probe reads /proc with raw system calls, which do not tell the Go
// scheduler they may block: a /proc read never waits for a device, and
// with thousands of them the scheduler's bookkeeping (its sysmon thread
// waking every 20 µs to retake the processor of a goroutine in a system
// call) cost more CPU than the reads themselves.

// openAt opens path, relative to dirfd, for reading.
func openAt(dirfd int, path string) (int, error) {
	var b [64]byte
	p := append(b[:0], path...)
	return openAtZ(dirfd, append(p, 0))
}

// openAtZ is openAt with a NUL-terminated path.
func openAtZ(dirfd int, p []byte) (int, error) {
	for {
		r, _, errno := syscall.RawSyscall6(syscall.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&p[0])),
			uintptr(syscall.O_RDONLY|syscall.O_CLOEXEC), 0, 0, 0)
		switch errno {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return -1, errno
	}
}

// readFD reads into b at offset off, or from the current offset when off
// is negative.
func readFD(fd int, b []byte, off int64) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		var r uintptr
		var errno syscall.Errno
		if off < 0 {
			r, _, errno = syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		} else {
			r, _, errno = syscall.RawSyscall6(syscall.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(off), 0, 0)
		}
		switch errno {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return 0, errno
	}
}

func closeFD(fd int) { syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0) }

// readAll reads fd from its current offset to the end into *buf. A read
// that returns less than asked ends it: /proc files are generated whole on
// each read of their first page, and their reads only come up short at
// the end.
func readAll(fd int, buf *[]byte) ([]byte, error) {
	if len(*buf) < 4096 {
		*buf = make([]byte, 4096)
	}
	n := 0
	for {
		m, err := readFD(fd, (*buf)[n:], -1)
		if err != nil {
			return nil, err
		}
		n += m
		if m == 0 || n < len(*buf) {
			return (*buf)[:n], nil
		}
		grown := make([]byte, 2*len(*buf))
		copy(grown, (*buf)[:n])
		*buf = grown
	}
}

// counters is one reading of the system-wide cumulative counters that
// rates and percents over a window are worked out from. Each source keeps
// its own error.
type counters struct {
	At      time.Time
	Stat    procStat
	StatErr error
	SwapIn  uint64 // pages, since boot
	SwapOut uint64
	VMErr   error
	PSI     [3]psiFile // cpu, memory, io
	PSIErr  [3]error
	Net     []ifCounters
	NetErr  error
}

// psiResources are the files of /proc/pressure, in the order of
// counters.PSI.
var psiResources = [3]string{"cpu", "memory", "io"}

// errUnsupported marks a source the kernel does not have.
var errUnsupported = errors.New("unsupported")

// readCounters reads every counter of c once; the swap counters, from the
// long /proc/vmstat, only when withVM.
func readCounters(buf *[]byte, withVM bool) counters {
	c := counters{At: time.Now()}
	if data, err := readFile("/proc/stat", buf); err != nil {
		c.StatErr = fmt.Errorf("read cpu times: %w", err)
	} else if c.Stat, err = parseProcStat(data); err != nil {
		c.StatErr = fmt.Errorf("read cpu times: %w", err)
	}
	if !withVM {
		c.VMErr = errors.New("not read")
	} else if data, err := readFile("/proc/vmstat", buf); err != nil {
		c.VMErr = fmt.Errorf("read swap activity: %w", err)
	} else if c.SwapIn, c.SwapOut, err = parseVmstat(data); err != nil {
		c.VMErr = fmt.Errorf("%w: no pswpin/pswpout in /proc/vmstat (kernel without vm event counters)", errUnsupported)
	}
	for i, res := range psiResources {
		path := "/proc/pressure/" + res
		data, err := readFile(path, buf)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			c.PSIErr[i] = fmt.Errorf("%w: no %s (Linux before 4.20, or built without CONFIG_PSI)", errUnsupported, path)
		case errors.Is(err, syscall.EOPNOTSUPP):
			c.PSIErr[i] = fmt.Errorf("%w: pressure stall information is off (booted with psi=0)", errUnsupported)
		case err != nil:
			c.PSIErr[i] = fmt.Errorf("read %s pressure: %w", res, err)
		default:
			if c.PSI[i], err = parsePSI(data); err != nil {
				c.PSIErr[i] = fmt.Errorf("read %s pressure: %w", res, err)
			}
		}
	}
	if data, err := readFile("/proc/net/dev", buf); err != nil {
		c.NetErr = fmt.Errorf("read network counters: %w", err)
	} else if c.Net, err = parseNetDev(data); err != nil {
		c.NetErr = fmt.Errorf("read network counters: %w", err)
	}
	return c
}

// readUptime returns the seconds since boot.
func readUptime(buf *[]byte) (float64, error) {
	data, err := readFile("/proc/uptime", buf)
	if err != nil {
		return 0, fmt.Errorf("read uptime: %w", err)
	}
	up, err := parseUptime(data)
	if err != nil {
		return 0, fmt.Errorf("read uptime: %w", err)
	}
	return up, nil
}

// readLoad reads the load averages.
func readLoad(buf *[]byte) (l1, l5, l15 float64, err error) {
	data, err := readFile("/proc/loadavg", buf)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read load average: %w", err)
	}
	if l1, l5, l15, err = parseLoadavg(data); err != nil {
		return 0, 0, 0, fmt.Errorf("read load average: %w", err)
	}
	return l1, l5, l15, nil
}

// readMeminfo reads /proc/meminfo.
func readMeminfo(buf *[]byte) (memInfo, error) {
	data, err := readFile("/proc/meminfo", buf)
	if err != nil {
		return memInfo{}, fmt.Errorf("read memory: %w", err)
	}
	m, err := parseMeminfo(data)
	if err != nil {
		return memInfo{}, fmt.Errorf("read memory: %w", err)
	}
	return m, nil
}

// countCores counts the physical cores: CPUs whose topology lists the same
// sibling threads are one core. It returns 0 when sysfs has no topology.
func countCores(buf *[]byte) int {
	const dir = "/sys/devices/system/cpu"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	for _, file := range []string{"core_cpus_list", "thread_siblings_list"} {
		cores := make(map[string]bool)
		for _, e := range entries {
			name := e.Name()
			if !strings.HasPrefix(name, "cpu") || len(name) < 4 || name[3] < '0' || name[3] > '9' {
				continue
			}
			data, err := readFile(dir+"/"+name+"/topology/"+file, buf)
			if err != nil {
				continue
			}
			cores[strings.TrimSpace(string(data))] = true
		}
		if len(cores) > 0 {
			return len(cores)
		}
	}
	return 0
}

// statfs returns the usage of the file system at path the way df (and
// version 1 of the probe, through gopsutil) counts it.
func statfs(path string) (total, used, free, inodes, inodesUsed uint64, err error) {
	var st syscall.Statfs_t
	for {
		err = syscall.Statfs(path, &st)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	bsize := uint64(st.Bsize)
	total = st.Blocks * bsize
	free = st.Bavail * bsize
	if st.Bfree <= st.Blocks {
		used = (st.Blocks - st.Bfree) * bsize
	}
	inodes = st.Files
	if st.Ffree <= st.Files {
		inodesUsed = st.Files - st.Ffree
	}
	return total, used, free, inodes, inodesUsed, nil
}

// percentOf returns part as a percent of whole, rounded; 0 when whole is 0.
func percentOf(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return round2(float64(part) / float64(whole) * 100)
}
