package fleet

import (
	"fmt"
	"strings"
	"testing"
)

// TestServersBehindABastionShareIt: 30 servers behind one bastion are
// probed over one connection to it, in the cold round and the warm one.
func TestServersBehindABastionShareIt(t *testing.T) {
	srv, rel := relayedServer(t)
	var servers strings.Builder
	servers.WriteString(server("bastion", rel.addr))
	var names []string
	for i := range 30 {
		name := fmt.Sprintf("web%d", i)
		names = append(names, name)
		servers.WriteString(server(name, srv.Addr) + `jump = "bastion"` + "\n")
	}
	f := testFleet(t, srv, servers.String())
	for round := range 2 {
		for name, r := range probe(t, f, names...) {
			if r.Err != nil {
				t.Fatalf("round %d: %s: %v", round, name, r.Err)
			}
		}
	}
	if n := rel.accepted.Load(); n != 1 {
		t.Errorf("30 servers behind one bastion made %d connections to it over two rounds, want 1", n)
	}
}
