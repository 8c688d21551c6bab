// Package probebin carries the cross-built probe binaries inside the
// collector and picks the one that fits a target.
//
// The builds are produced by `go generate` (see generate.go) into builds/ and
// embedded with go:embed. A fresh clone compiles without them; Embedded is then
// empty and For says how to produce them.
package probebin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

//go:embed builds
var builds embed.FS

// A Build is one probe binary for one platform.
type Build struct {
	GOOS, GOARCH string
	Binary       []byte
	Hash         string // hex SHA-256 of Binary
}

// NewBuild returns the build of binary for goos/goarch, with its hash.
func NewBuild(goos, goarch string, binary []byte) Build {
	sum := sha256.Sum256(binary)
	return Build{GOOS: goos, GOARCH: goarch, Binary: binary, Hash: hex.EncodeToString(sum[:])}
}

// FileName is the name the build is cached under on a target: it changes
// whenever the binary does, so a new collector release uploads its new probe
// and old and new never mix.
func (b Build) FileName() string {
	return "probe-" + b.Hash[:16]
}

// Platform returns "goos/goarch".
func (b Build) Platform() string { return b.GOOS + "/" + b.GOARCH }

// A Set holds builds by platform ("linux/amd64").
type Set map[string]Build

// Embedded is the set of builds compiled into this collector.
var Embedded = mustLoad(builds)

// For returns the build for goos/goarch.
func (s Set) For(goos, goarch string) (Build, error) {
	if b, ok := s[goos+"/"+goarch]; ok {
		return b, nil
	}
	if len(s) == 0 {
		return Build{}, fmt.Errorf("no probe builds in this collector binary; build it with `make build` (go generate ./collector/probebin)")
	}
	return Build{}, fmt.Errorf("no probe build for %s/%s (have %s)", goos, goarch, strings.Join(s.Platforms(), ", "))
}

// Platforms lists the platforms in s, sorted.
func (s Set) Platforms() []string {
	out := make([]string, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Load reads builds named probe-GOOS-GOARCH from dir into a Set.
func Load(dir string) (Set, error) {
	return load(os.DirFS(dir))
}

func mustLoad(fsys fs.FS) Set {
	sub, err := fs.Sub(fsys, "builds")
	if err != nil {
		panic(err)
	}
	s, err := load(sub)
	if err != nil {
		panic(err)
	}
	return s
}

func load(fsys fs.FS) (Set, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read probe builds: %w", err)
	}
	s := Set{}
	for _, e := range entries {
		goos, goarch, ok := parseName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		bin, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read probe build %s: %w", e.Name(), err)
		}
		s[goos+"/"+goarch] = NewBuild(goos, goarch, bin)
	}
	return s, nil
}

// parseName splits "probe-linux-amd64" into its platform.
func parseName(name string) (goos, goarch string, ok bool) {
	rest, ok := strings.CutPrefix(path.Base(name), "probe-")
	if !ok {
		return "", "", false
	}
	goos, goarch, ok = strings.Cut(rest, "-")
	return goos, goarch, ok && goos != "" && goarch != ""
}

// Platform maps the output of `uname -sm` ("Linux x86_64") to a Go
// platform ("linux", "amd64").
func Platform(uname string) (goos, goarch string, err error) {
	fields := strings.Fields(uname)
	if len(fields) != 2 {
		return "", "", fmt.Errorf("unexpected `uname -sm` output %q", truncate(uname, 80))
	}
	switch strings.ToLower(fields[0]) {
	case "linux":
		goos = "linux"
	default:
		return "", "", fmt.Errorf("unsupported operating system %q (the probe runs on Linux)", truncate(fields[0], 40))
	}
	switch fields[1] {
	case "x86_64", "amd64":
		goarch = "amd64"
	case "aarch64", "arm64", "armv8l":
		goarch = "arm64"
	default:
		return "", "", fmt.Errorf("unsupported machine %q (probe builds exist for x86_64 and aarch64)", truncate(fields[1], 40))
	}
	return goos, goarch, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
