package probebin

import (
	"bytes"
	"debug/elf"
	"os"
	"testing"
)

// TestEmbedded checks the builds `make build` embeds: present for every
// platform, static ELF files of the right machine. A fresh clone without
// `go generate` has none; then the test skips, except under CI, where
// `make test` generates them first.
func TestEmbedded(t *testing.T) {
	if len(Embedded) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("no embedded probe builds under CI: make test runs go generate ./collector/probebin first")
		}
		t.Skip("no embedded probe builds; run go generate ./collector/probebin")
	}
	machines := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	for platform, machine := range machines {
		b, ok := Embedded[platform]
		if !ok {
			t.Errorf("no embedded build for %s (have %v)", platform, Embedded.Platforms())
			continue
		}
		f, err := elf.NewFile(bytes.NewReader(b.Binary))
		if err != nil {
			t.Errorf("%s: not an ELF file: %v", platform, err)
			continue
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %v, want %v", platform, f.Machine, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: dynamically linked (has an interpreter); the probe must be static", platform)
			}
		}
	}
}
