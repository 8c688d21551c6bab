package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/crawlerfleet/collector/collector/internal/probetest"
	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// t0 is when the fake clocks of the tests start.
// t0 starts the fake clocks: within the hour before now, as the real probe
// stamps its snapshots with the real clock and the collector refuses a
// probe clock a day off.
var t0 = time.Now().UTC().Truncate(time.Hour)

// relay accepts connections and forwards them to a target, as a network in
// between: it counts the connections and can break them.
type relay struct {
	addr       string
	accepted   atomic.Int32
	fromServer atomic.Int64 // bytes read from the servers, counted before they are passed on

	mu    sync.Mutex
	pairs []*relayed
}

// relayed is one connection through the relay.
type relayed struct {
	client, server net.Conn
	// breakOnWrite closes both ends when the client next sends anything, as
	// a firewall that forgot an idle connection answers its next packet
	// with a reset: the client learns only when it uses the connection.
	breakOnWrite atomic.Bool
}

func (p *relayed) close() { p.client.Close(); p.server.Close() }

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{addr: l.Addr().String()}
	t.Cleanup(func() { l.Close(); r.cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.accepted.Add(1)
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p := &relayed{client: c, server: s}
			r.mu.Lock()
			r.pairs = append(r.pairs, p)
			r.mu.Unlock()
			go func() {
				defer p.close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 && p.breakOnWrite.Load() {
						return
					}
					if n > 0 {
						if _, err := s.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				defer p.close()
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					r.fromServer.Add(int64(n))
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return r
}

// cut closes every connection through the relay.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pairs {
		p.close()
	}
}

// breakOnWrite breaks the connections open now when the client next writes;
// later connections are not affected.
//
// What a client wrote before must not break it: the SSH library writes the
// end of a session before Run returns, but the relay may read it a moment
// later. So breakOnWrite first has f's kept connections send a keepalive
// (f runs on a fake clock) and waits until a reply has passed the relay: a
// server replies after the request, which the relay passed on after
// everything written before it. The servers send nothing unasked, so the
// bytes counted from them after the keepalive are its reply.
func (r *relay) breakOnWrite(t *testing.T, f *Fleet) {
	t.Helper()
	clock := f.clock.(*clockwork.FakeClock)
	n := 0 // keepalive timers: one per kept SSH connection
	f.mu.Lock()
	for _, c := range f.conns {
		if c.client != nil {
			n++
		}
	}
	f.mu.Unlock()
	before := r.fromServer.Load()
	testutil.BlockUntil(t, clock, n, "the kept connections' keepalives waiting")
	clock.Advance(remote.DefaultKeepAliveInterval)
	testutil.Eventually(t, testutil.Patience, "a keepalive reply through the relay", func() bool { return r.fromServer.Load() > before })
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pairs {
		p.breakOnWrite.Store(true)
	}
}

// testFleet returns a Fleet for an inventory whose defaults reach srv with
// its client key and known_hosts, with servers (TOML) after them. It runs on
// a fake clock at t0: keepalives are sent only when a test advances it.
func testFleet(t *testing.T, srv *sshdtest.Server, servers string) *Fleet {
	t.Helper()
	// Failures are checked in the results; the log would only repeat them.
	f := New(parseInventory(t, srv, servers), Options{Probes: probetest.Set(t), Logger: slog.New(slog.DiscardHandler),
		Clock: clockwork.NewFakeClockAt(t0)})
	t.Cleanup(func() { f.Close() })
	return f
}

// parseInventory returns an inventory whose defaults reach srv, with
// servers (TOML) after them. Its timeout is a safety net only: a probe takes
// well under a second, and no test here waits for the timeout.
func parseInventory(t *testing.T, srv *sshdtest.Server, servers string) *inventory.Inventory {
	t.Helper()
	text := fmt.Sprintf(`
[defaults]
user = %q
identity_file = %q
known_hosts = %q
probe_dir = %q
sample = "100ms"
timeout = "1m"
`, srv.User, srv.ClientKeyFile, srv.KnownHostsFile, filepath.Join(srv.Dir, "probe-cache")) + servers
	inv, err := inventory.Parse(strings.NewReader(text), "servers.toml")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func server(name, addr string) string {
	return fmt.Sprintf("\n[[server]]\nname = %q\naddress = %q\n", name, addr)
}

// probe probes the named servers and returns their results by name.
func probe(t *testing.T, f *Fleet, names ...string) map[string]monitor.Result {
	t.Helper()
	f.mu.Lock()
	servers, err := f.inv.Select(names)
	f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]monitor.Result{}
	for _, r := range f.Probe(context.Background(), servers, nil) {
		results[r.Server] = r
	}
	return results
}

// kept returns the kept connection to name, or nil.
func kept(f *Fleet, name string) *conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[name]
}

// relayed returns an sshd and a relay in front of it that known_hosts knows.
func relayedServer(t *testing.T) (*sshdtest.Server, *relay) {
	t.Helper()
	srv := sshdtest.Start(t)
	r := newRelay(t, srv.Addr)
	if err := remote.AddKnownHost(srv.KnownHostsFile, r.addr, srv.HostKey); err != nil {
		t.Fatal(err)
	}
	return srv, r
}

func TestProbeReusesConnection(t *testing.T) {
	srv, rel := relayedServer(t)
	f := testFleet(t, srv, server("web1", rel.addr))

	for i, want := range []struct{ reused, dialed bool }{{false, true}, {true, false}, {true, false}} {
		r := probe(t, f, "web1")["web1"]
		if r.Err != nil {
			t.Fatalf("probe %d: %v", i+1, r.Err)
		}
		if r.Reused != want.reused || r.Dialed != want.dialed {
			t.Errorf("probe %d: reused %v, dialed %v; want %v, %v", i+1, r.Reused, r.Dialed, want.reused, want.dialed)
		}
		if r.Platform != "linux/"+runtime.GOARCH || r.Snapshot == nil {
			t.Errorf("probe %d: platform %q, snapshot %v", i+1, r.Platform, r.Snapshot)
		}
	}
	if n := rel.accepted.Load(); n != 1 {
		t.Errorf("three probes opened %d connections, want 1", n)
	}
}

func TestProbeRedials(t *testing.T) {
	tests := []struct {
		name string
		// breakIt breaks the kept connection to web1 of f.
		breakIt func(t *testing.T, f *Fleet, rel *relay)
		reused  bool // whether the probe after breakIt starts on the kept connection
	}{
		{
			// The connection ended (the server closed it, or keepalives went
			// unanswered) and Done says so: it is dropped before use.
			name: "ended",
			breakIt: func(t *testing.T, f *Fleet, rel *relay) {
				c := kept(f, "web1")
				rel.cut()
				testutil.Receive(t, c.client.Done(), "close of Done after the connection was cut")
			},
			reused: false,
		},
		{
			// The connection looks open but fails when used: the probe fails
			// on the transport and is tried again over a new connection.
			name: "fails when used",
			breakIt: func(t *testing.T, f *Fleet, rel *relay) {
				rel.breakOnWrite(t, f)
				if kept(f, "web1").ended() {
					t.Fatal("the connection ended before it was used: this case tests nothing")
				}
			},
			reused: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rel := relayedServer(t)
			f := testFleet(t, srv, server("web1", rel.addr))
			if r := probe(t, f, "web1")["web1"]; r.Err != nil {
				t.Fatal(r.Err)
			}
			tt.breakIt(t, f, rel)
			r := probe(t, f, "web1")["web1"]
			if r.Err != nil {
				t.Fatalf("probe after the connection broke: %v", r.Err)
			}
			if r.Reused != tt.reused || !r.Dialed {
				t.Errorf("reused %v, dialed %v; want %v, true", r.Reused, r.Dialed, tt.reused)
			}
			if n := rel.accepted.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
			// The new connection is kept.
			if r := probe(t, f, "web1")["web1"]; r.Err != nil || !r.Reused || r.Dialed {
				t.Errorf("third probe: reused %v, dialed %v, %v; want the new connection reused", r.Reused, r.Dialed, r.Err)
			}
		})
	}
}

// TestProbeRetriesOnce checks that a new connection's failure is reported,
// not retried: the server kills every new session's connection.
func TestProbeRetriesOnce(t *testing.T) {
	srv, rel := relayedServer(t)
	f := testFleet(t, srv, server("web1", rel.addr))
	if r := probe(t, f, "web1")["web1"]; r.Err != nil {
		t.Fatal(r.Err)
	}
	// From now on, each new connection's first command kills its sshd.
	authorized := filepath.Join(srv.Dir, "authorized_keys")
	key, err := os.ReadFile(authorized)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authorized, append([]byte(`command="kill -KILL $PPID" `), key...), 0o600); err != nil {
		t.Fatal(err)
	}
	rel.breakOnWrite(t, f)

	r := probe(t, f, "web1")["web1"]
	if r.Err == nil || !r.Reused || !r.Dialed {
		t.Fatalf("reused %v, dialed %v, err %v; want a failure after one retry", r.Reused, r.Dialed, r.Err)
	}
	if r.Kind != monitor.KindUnreachable || !strings.Contains(r.Err.Error(), "detect platform") {
		t.Errorf("kind %q, err %v; want the failure of the new connection", r.Kind, r.Err)
	}
	if n := rel.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the kept one and one retry", n)
	}
	r = probe(t, f, "web1")["web1"]
	if r.Err == nil || r.Reused || !r.Dialed {
		t.Errorf("next probe: reused %v, dialed %v, err %v; want a failure over a new connection", r.Reused, r.Dialed, r.Err)
	}
	if n := rel.accepted.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

func TestSetInventoryAndForget(t *testing.T) {
	srv := sshdtest.Start(t)
	otherKnownHosts := filepath.Join(t.TempDir(), "known_hosts")
	data, err := os.ReadFile(srv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherKnownHosts, data, 0o600); err != nil {
		t.Fatal(err)
	}
	servers := server("same", srv.Addr) + server("gone", srv.Addr) + server("changed", srv.Addr) +
		server("behind", srv.Addr) + `jump = "bastion"` + "\n" + server("bastion", srv.Addr)
	f := testFleet(t, srv, servers)
	names := []string{"same", "gone", "changed", "behind"}
	for name, r := range probe(t, f, names...) {
		if r.Err != nil || !r.Dialed {
			t.Fatalf("%s: dialed %v, %v", name, r.Dialed, r.Err)
		}
	}
	before := map[string]*conn{}
	for _, n := range names {
		before[n] = kept(f, n)
	}

	// "changed" uses another known_hosts file; "behind"'s jump host another
	// user; "gone" is gone.
	f.SetInventory(parseInventory(t, srv, server("same", srv.Addr)+
		server("changed", srv.Addr)+fmt.Sprintf("known_hosts = %q\n", otherKnownHosts)+
		server("behind", srv.Addr)+`jump = "bastion"`+"\n"+server("bastion", srv.Addr)+`user = "nobody"`+"\n"))
	for name, closed := range map[string]bool{"same": false, "gone": true, "changed": true, "behind": true} {
		select {
		case <-before[name].client.Done():
			if !closed {
				t.Errorf("%s: connection closed", name)
			}
		default:
			if closed {
				t.Errorf("%s: connection still open", name)
			}
		}
		if got := kept(f, name); (got == nil) != closed {
			t.Errorf("%s: kept connection %v; want closed %v", name, got, closed)
		}
	}
	results := probe(t, f, "same", "changed")
	if r := results["same"]; r.Err != nil || !r.Reused {
		t.Errorf("same: reused %v, %v", r.Reused, r.Err)
	}
	if r := results["changed"]; r.Err != nil || r.Reused || !r.Dialed {
		t.Errorf("changed: reused %v, dialed %v, %v", r.Reused, r.Dialed, r.Err)
	}

	f.forget("same", "nonexistent")
	if kept(f, "same") != nil {
		t.Fatal("Forget kept the connection")
	}
	select {
	case <-before["same"].client.Done():
	default:
		t.Error("Forget left the connection open")
	}
	if r := probe(t, f, "same")["same"]; r.Err != nil || r.Reused || !r.Dialed {
		t.Errorf("after Forget: reused %v, dialed %v, %v", r.Reused, r.Dialed, r.Err)
	}
}

// TestResultErrorNamesServerOnce checks that a result's error names its
// server once: the transport's errors name it already.
func TestResultErrorNamesServerOnce(t *testing.T) {
	srv := sshdtest.Start(t)
	down := closedAddr(t)
	f := testFleet(t, srv, server("web1", down)+server("web2", srv.Addr)+`jump = "web1"`+"\n")
	results := probe(t, f, "web1", "web2")
	for name, prefix := range map[string]string{
		"web1": "web1 (" + down + "): unreachable: ",
		"web2": "jump host for web2: web1 (" + down + "): unreachable: ",
	} {
		r := results[name]
		if r.Kind != monitor.KindUnreachable || r.Err == nil {
			t.Fatalf("%s: kind %q, err %v; want unreachable", name, r.Kind, r.Err)
		}
		if msg := r.Err.Error(); !strings.HasPrefix(msg, prefix) || strings.Count(msg, name) != 1 {
			t.Errorf("%s: error %q, want it to start with %q and name %s once", name, msg, prefix, name)
		}
	}
}

// TestPassphraseOfJumpHostUnset checks that a passphrase variable that is
// not set fails the servers behind that jump host as a config error naming
// the jump host, with the fix.
func TestPassphraseOfJumpHostUnset(t *testing.T) {
	const env = "TEST_COLLECTOR_UNSET_PASSPHRASE"
	t.Setenv(env, "") // restored afterwards
	os.Unsetenv(env)
	srv := sshdtest.Start(t)
	f := testFleet(t, srv, server("bastion", srv.Addr)+fmt.Sprintf("identity_passphrase_env = %q\n", env)+
		server("web1", srv.Addr)+`jump = "bastion"`+"\n")
	r := probe(t, f, "web1")["web1"]
	fix := "export " + env + " in the collector's environment"
	want := "web1: config: jump host bastion: identity_passphrase_env: environment variable " + env + " is not set; " + fix
	if r.Kind != monitor.KindConfig || r.Err == nil || r.Err.Error() != want {
		t.Fatalf("kind %q, err %v;\nwant config, %s", r.Kind, r.Err, want)
	}
	var fixer interface{ Fix() string }
	if !errors.As(r.Err, &fixer) || fixer.Fix() != fix {
		t.Errorf("no Fix %q", fix)
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
