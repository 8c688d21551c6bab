package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module's build information.
var version = ""

func cmdVersion(_ context.Context, e *env, _ []string) error {
	fmt.Fprintf(e.stdout, "collector %s\n", versionString())
	if len(e.probes) == 0 {
		fmt.Fprintf(e.stdout, "probe builds: none (build with `make build`)\n")
		return nil
	}
	var builds []string
	for _, p := range e.probes.Platforms() {
		b := e.probes[p]
		builds = append(builds, fmt.Sprintf("%s %s", p, b.Hash[:16]))
	}
	fmt.Fprintf(e.stdout, "probe builds: %s\n", strings.Join(builds, ", "))
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
