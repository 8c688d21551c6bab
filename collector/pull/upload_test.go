package pull

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/probebin"
	"github.com/crawlerfleet/collector/collector/remote"
)

// stdinRunner passes commands on to next, after the prelude (shell text run
// first, such as a function that hides gzip), and keeps the stdin of each.
type stdinRunner struct {
	next    Runner
	prelude string
	mu      sync.Mutex
	stdins  [][]byte
}

func (r *stdinRunner) Run(ctx context.Context, cmd string, stdin io.Reader, max int64) (remote.Result, error) {
	if stdin != nil {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return remote.Result{}, err
		}
		r.mu.Lock()
		r.stdins = append(r.stdins, b)
		r.mu.Unlock()
		stdin = bytes.NewReader(b)
	}
	return r.next.Run(ctx, r.prelude+cmd, stdin, max)
}

// noUnpackers hides gzip and busybox from `command -v`, as on a target that
// has neither.
const noUnpackers = `command() { [ "$1" = -v ] && { [ "$2" = gzip ] || [ "$2" = busybox ]; } && return 1; builtin command "$@"; }; `

// bigProbe is a script probe padded to a realistic size with text that
// compresses as a binary does not: what matters is that the bytes arrive.
func bigProbe(t *testing.T) probebin.Set {
	t.Helper()
	var pad strings.Builder
	for i := range 40000 {
		pad.WriteString("# padding line ")
		pad.WriteString(strings.Repeat("x", i%50))
		pad.WriteString("\n")
	}
	return scriptProbe(t, "echo '"+goodSnapshot+"'\n"+pad.String())
}

// TestUploadCompressed: the build travels gzip-compressed and arrives
// whole; a target without gzip or busybox gets it as it is.
func TestUploadCompressed(t *testing.T) {
	probes := bigProbe(t)
	b, _ := probes.For(probesPlatform(probes))
	for _, tc := range []struct {
		name    string
		prelude string
		sends   int // uploads sent: 2 when the compressed one found no unpacker
		gzipped bool
	}{
		{"gzip", "", 1, true},
		{"no unpacker", noUnpackers, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := &stdinRunner{next: remote.Local{}, prelude: tc.prelude}
			_, info, err := NewTarget(r, probes).Pull(context.Background(), Options{ProbeDir: dir, Now: probeClock})
			if err != nil || !info.Uploaded {
				t.Fatalf("pull: %v, uploaded %v", err, info.Uploaded)
			}
			if len(r.stdins) != tc.sends {
				t.Fatalf("%d uploads sent, want %d", len(r.stdins), tc.sends)
			}
			last := r.stdins[len(r.stdins)-1]
			if isGzip := bytes.HasPrefix(last, []byte{0x1f, 0x8b}); isGzip != tc.gzipped {
				t.Errorf("the build went gzipped: %v, want %v", isGzip, tc.gzipped)
			}
			if tc.gzipped && len(last) > len(b.Binary)/4 {
				t.Errorf("sent %d bytes for a %d-byte build", len(last), len(b.Binary))
			}
			got, err := os.ReadFile(filepath.Join(dir, b.FileName()))
			if err != nil || !bytes.Equal(got, b.Binary) {
				t.Errorf("the installed probe differs from the build (%v)", err)
			}
		})
	}
}

// TestUploadCorrupt: a compressed stream that gzip refuses installs
// nothing and says so.
func TestUploadCorrupt(t *testing.T) {
	probes := bigProbe(t)
	b, _ := probes.For(probesPlatform(probes))
	dir := t.TempDir()
	bad := &corruptRunner{}
	err := NewTarget(bad, probes).upload(context.Background(), dir, b)
	if err == nil || !strings.Contains(err.Error(), "compressed upload corrupt") {
		t.Errorf("upload of a corrupt stream: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

// corruptRunner flips a byte in the middle of what it is sent.
type corruptRunner struct{ remote.Local }

func (c *corruptRunner) Run(ctx context.Context, cmd string, stdin io.Reader, max int64) (remote.Result, error) {
	if stdin != nil {
		b, _ := io.ReadAll(stdin)
		b[len(b)/2] ^= 0xff
		stdin = bytes.NewReader(b)
	}
	return c.Local.Run(ctx, cmd, stdin, max)
}

// TestUploadWithoutUnpackerOverSSH: over a real SSH session, the
// compressed upload that a target without gzip does not read ends at once
// and the raw one follows.
func TestUploadWithoutUnpackerOverSSH(t *testing.T) {
	srv := sshdtest.Start(t)
	c, err := remote.Dial(context.Background(), []remote.Endpoint{{Name: "t", Addr: srv.Addr, User: srv.User,
		IdentityFiles: []string{srv.ClientKeyFile}, NoAgent: true, KnownHosts: srv.KnownHostsFile, ConnectTimeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	probes := bigProbe(t)
	b, _ := probes.For(probesPlatform(probes))
	dir := t.TempDir()
	r := &stdinRunner{next: c, prelude: noUnpackers}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := NewTarget(r, probes).upload(ctx, dir, b); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, b.FileName()))
	if len(r.stdins) != 2 || err != nil || !bytes.Equal(got, b.Binary) {
		t.Errorf("%d uploads; installed probe equal: %v (%v)", len(r.stdins), bytes.Equal(got, b.Binary), err)
	}
}
