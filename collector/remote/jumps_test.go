package remote_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/internal/sshdtest"
	"github.com/crawlerfleet/collector/collector/remote"
)

// TestJumpPoolSharesTheBastion: 40 servers behind one bastion, dialed at
// once through a JumpPool, make one connection to the bastion; each runs
// its commands; the bastion's connection closes with the last client. When
// it drops, the next dials make one new connection to it between them.
func TestJumpPoolSharesTheBastion(t *testing.T) {
	srv := sshdtest.Start(t)
	bastion, fwd := forwarded(t, srv, "bastion")
	pool := remote.NewJumpPool()

	dialAll := func(n int) []*remote.Client {
		t.Helper()
		clients := make([]*remote.Client, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				target := endpoint(srv, fmt.Sprintf("web%d", i))
				clients[i], errs[i] = remote.Dial(context.Background(), []remote.Endpoint{bastion, target}, remote.WithJumpPool(pool))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("dial web%d: %v", i, err)
			}
		}
		for i, c := range clients {
			res, err := c.Run(context.Background(), "echo ok", nil, 100)
			if err != nil || string(res.Stdout) != "ok\n" {
				t.Fatalf("web%d: %+v, %v", i, res, err)
			}
		}
		return clients
	}
	clients := dialAll(40)
	if n := fwd.accepted.Load(); n != 1 {
		t.Fatalf("40 servers behind one bastion made %d connections to it, want 1", n)
	}
	if n := pool.HubCount(); n != 1 {
		t.Fatalf("%d shared connections, want 1", n)
	}
	for _, c := range clients[:39] {
		c.Close()
	}
	if n := pool.HubCount(); n != 1 {
		t.Fatalf("the bastion connection closed while a client used it")
	}
	clients[39].Close()
	if n := pool.HubCount(); n != 0 {
		t.Fatalf("the bastion connection stayed open with no client")
	}

	// The bastion's connection drops under kept clients: they end, and the
	// next dials share one new connection.
	clients = dialAll(10)
	before := fwd.accepted.Load()
	fwd.cut()
	for i, c := range clients {
		select {
		case <-c.Done():
		case <-time.After(time.Minute):
			t.Fatalf("web%d: its connection survived the bastion's", i)
		}
	}
	clients = dialAll(10)
	if n := fwd.accepted.Load() - before; n != 1 {
		t.Errorf("after the drop, 10 dials made %d new connections to the bastion, want 1", n)
	}
	for _, c := range clients {
		c.Close()
	}
}

// TestJumpPoolRedialsOnce: a dial through a shared connection that died
// without anyone noticing yet (no client on it closed) redials the bastion
// once and reaches its target.
func TestJumpPoolRedialsOnce(t *testing.T) {
	srv := sshdtest.Start(t)
	bastion, fwd := forwarded(t, srv, "bastion")
	pool := remote.NewJumpPool()
	first, err := remote.Dial(context.Background(), []remote.Endpoint{bastion, endpoint(srv, "web1")}, remote.WithJumpPool(pool),
		remote.WithKeepAlive(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	fwd.cut()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := remote.Dial(ctx, []remote.Endpoint{bastion, endpoint(srv, "web2")}, remote.WithJumpPool(pool))
	if err != nil {
		t.Fatalf("dial after the bastion dropped: %v", err)
	}
	defer c.Close()
	if res, err := c.Run(ctx, "echo ok", nil, 100); err != nil || string(res.Stdout) != "ok\n" {
		t.Fatalf("%+v, %v", res, err)
	}
	if n := fwd.accepted.Load(); n != 2 {
		t.Errorf("%d connections to the bastion, want 2: the first and one redial", n)
	}
}
