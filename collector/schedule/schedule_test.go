package schedule

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/inventory"
)

// syncBuffer is a log sink safe for the scheduler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func parse(t *testing.T, text string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse(strings.NewReader("[defaults]\nuser = \"u\"\n"+text), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// counter counts rounds per server.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

func (c *counter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

func TestSlowServerIsSkippedOthersKeepTheirSchedule(t *testing.T) {
	inv := parse(t, `
[schedule]
cron = "* * * * * *"
[[server]]
name = "fast"
address = "local"
[[server]]
name = "slow"
address = "local"
[[server]]
name = "minutely"
address = "local"
schedule = "0 * * * *"
`)
	var logs syncBuffer
	var rounds counter
	release := make(chan struct{})
	s, err := New(inv, func(ctx context.Context, servers []inventory.Server, finished func(string)) {
		var slow bool
		for _, srv := range servers {
			rounds.add(srv.Name)
			if srv.Name == "slow" {
				slow = true
				continue
			}
			finished(srv.Name)
		}
		if slow && rounds.get("slow") == 1 {
			<-release // the first round of slow hangs
		}
	}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	deadline := time.Now().Add(10 * time.Second)
	for rounds.get("fast") < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := s.busy(); len(got) != 1 || got[0] != "slow" {
		t.Errorf("running = %v, want [slow]", got)
	}
	close(release)
	if !s.Stop(context.Background()) {
		t.Error("Stop: rounds did not finish")
	}
	if n := rounds.get("fast"); n < 3 {
		t.Errorf("fast ran %d rounds while slow hung, want at least 3", n)
	}
	if n := rounds.get("slow"); n != 1 {
		t.Errorf("slow ran %d rounds, want 1: it was still running", n)
	}
	if n := rounds.get("minutely"); n > 1 {
		t.Errorf("minutely ran %d rounds in a few seconds", n)
	}
	if !strings.Contains(logs.String(), "previous round still running") || !strings.Contains(logs.String(), "slow") {
		t.Errorf("no skip logged:\n%s", logs.String())
	}
}

func TestStopCancelsRoundsAfterGrace(t *testing.T) {
	inv := parse(t, "[schedule]\ncron = \"* * * * * *\"\n[[server]]\nname = \"hung\"\naddress = \"local\"\n")
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{})
	s, err := New(inv, func(ctx context.Context, _ []inventory.Server, _ func(string)) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		close(cancelled)
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("no round started")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if s.Stop(ctx) {
		t.Error("Stop reported that a hung round finished on its own")
	}
	select {
	case <-cancelled:
	default:
		t.Error("Stop returned before the hung round saw its context cancelled")
	}
}

func TestReloadSwapsServers(t *testing.T) {
	every := "[schedule]\ncron = \"* * * * * *\"\n"
	var rounds counter
	s, err := New(parse(t, every+"[[server]]\nname = \"old\"\naddress = \"local\"\n"),
		func(_ context.Context, servers []inventory.Server, _ func(string)) {
			for _, srv := range servers {
				rounds.add(srv.Name)
			}
		}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Stop(context.Background())
	if err := s.Reload(parse(t, every+"[[server]]\nname = \"new\"\naddress = \"local\"\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a tick of the old schedule may be finishing
	oldBefore := rounds.get("old")
	deadline := time.Now().Add(5 * time.Second)
	for rounds.get("new") < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if rounds.get("new") < 2 {
		t.Errorf("new server ran %d rounds after reload", rounds.get("new"))
	}
	if rounds.get("old") != oldBefore {
		t.Errorf("the removed server kept running after reload")
	}
}
