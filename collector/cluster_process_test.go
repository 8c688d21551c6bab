package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/collector/cluster"
	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store"
)

// The cluster suite: three `collector run` processes share one database
// (FerretDB in a process of its own) and probe servers of a real sshd. One
// is killed with -9, one stopped past its lease and let go on, and the
// killed one started again; the store and the mail sink are then counted.

// clusterWorld is what the cluster test reads: the database, and the
// members as processes by process id.
type clusterWorld struct {
	t       *testing.T
	db      *store.Store
	servers []string
}

// results returns every stored result (snapshots and failed attempts) of
// server.
func (w *clusterWorld) results(server string) []monitor.Result {
	w.t.Helper()
	ctx := context.Background()
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	snaps, err := w.db.Snapshots(ctx, server, from, to, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	fails, err := w.db.Attempts(ctx, server, from, to)
	if err != nil {
		w.t.Fatal(err)
	}
	out := append(snaps, fails...)
	slices.SortFunc(out, func(a, b monitor.Result) int { return a.Slot.Compare(b.Slot) })
	return out
}

// firstSlotBy returns the first slot after t at which a member other than
// not (or, with not "not M", the member M) stored a result of server, and
// whether there is one.
func (w *clusterWorld) firstSlotBy(server string, after time.Time, not string) (time.Time, string, bool) {
	only, isOnly := strings.CutPrefix(not, "not ")
	for _, r := range w.results(server) {
		if r.Slot.After(after) && r.Member != "" && (isOnly && r.Member == only || !isOnly && r.Member != not) {
			return r.Slot, r.Member, true
		}
	}
	return time.Time{}, "", false
}

// settled reports whether n members are live and settled, and every
// server has a result stored by its owner among them (by the members' own
// rule) of a slot after they settled. It returns each member's servers.
func (w *clusterWorld) settled(n int, lease time.Duration) (map[string][]string, bool) {
	now := time.Now()
	var live []monitor.Member
	settledAt := time.Time{}
	for _, m := range w.members() {
		if m.Live(now) {
			live = append(live, m)
			if end := m.Since.Add(lease); end.After(settledAt) {
				settledAt = end
			}
		}
	}
	if len(live) != n || now.Before(settledAt) {
		return nil, false
	}
	eligible := cluster.Eligible(live, now, lease)
	owners := map[string][]string{}
	for _, m := range eligible {
		owners[m] = nil
	}
	for _, s := range w.servers {
		o := cluster.Owner(eligible, s)
		owners[o] = append(owners[o], s)
		if _, _, ok := w.firstSlotBy(s, settledAt, "not "+o); !ok {
			return nil, false
		}
	}
	return owners, true
}

func (w *clusterWorld) members() []monitor.Member {
	w.t.Helper()
	ms, err := w.db.Members(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return ms
}

// TestClusterFailover runs three members over seven servers of a real sshd
// and one that is never reachable, with a lease of 9 s and a round every
// 2 s, so the failover bound is 11 s:
//
//   - once they have settled, each member probes its share;
//   - the member that owns the unreachable server is killed with -9: every
//     server it owned is probed by another member from a slot within
//     lease + one interval of the kill;
//   - another member is stopped (SIGSTOP) past its lease and let go on
//     (SIGCONT): the third takes its servers over within the bound, it
//     stores nothing from the stop until it has rejoined and settled, and
//     then probes its share again;
//   - the killed member is started again: it takes its data directory
//     over, and its "member" alert resolves.
//
// Then: no server has two results in one slot, and no member's result of
// a slot was dropped for another's (nobody probed another's server); the
// rollups count every snapshot once; and each alert transition (the
// unreachable server down, each member gone and back) was mailed once.
func TestClusterFailover(t *testing.T) {
	h := newHarness(t)
	sink := startSMTPSink(t)
	dbDir, dbAddr := t.TempDir(), freeAddr(t)
	startFerretDB(t, dbDir, dbAddr)
	const lease, every = 9 * time.Second, 2 * time.Second
	bound := lease + every
	var servers strings.Builder
	names := []string{"web1", "web2", "web3", "web4", "web5", "web6", "web7", "dead1"}
	for _, n := range names[:len(names)-1] {
		servers.WriteString(h.server(n, ""))
	}
	fmt.Fprintf(&servers, "\n[[server]]\nname = \"dead1\"\naddress = %q\n", freeAddr(t)) // nothing listens
	uri := "mongodb://" + dbAddr + "/"
	h.writeConfig(h.srv.KnownHostsFile, servers.String()+
		fmt.Sprintf("\n[store]\nuri = %q\ndata_dir = %q\n", uri, filepath.Join(h.dir, "data"))+
		fmt.Sprintf("\n[schedule]\ncron = \"@every %s\"\nsplay = \"0s\"\ngrace = \"3s\"\n", every)+
		fmt.Sprintf("\n[cluster]\nlease = %q\n", lease)+
		"\n[alerts]\ndown = { after = 2 }\ncpu = { above = 0 }\nmemory = { above = 0 }\nload = { above = 0 }\ndisk = { above = 0 }\n"+sink.emailSection())

	procs := map[int]*proc{}
	start := func() *proc {
		p := h.startCollector("--log-level", "debug", "run")
		procs[p.cmd.Process.Pid] = p
		return p
	}
	for range 3 {
		start()
	}
	db, err := store.Open(context.Background(), store.Config{URI: uri, DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	w := &clusterWorld{t: t, db: db, servers: names}
	byName := func(name string) *proc {
		for _, m := range w.members() {
			if m.Name == name {
				return procs[m.PID]
			}
		}
		t.Fatalf("no member %s", name)
		return nil
	}

	// Settled: three members each store results of their share.
	var owners map[string][]string
	testutil.Eventually(t, 3*testutil.Patience, "three members probing their shares", func() bool {
		var ok bool
		owners, ok = w.settled(3, lease)
		return ok
	})
	t.Logf("owners after settling: %v", owners)
	victim := ""
	for m, ss := range owners {
		if slices.Contains(ss, "dead1") {
			victim = m
		}
	}
	testutil.Eventually(t, 2*testutil.Patience, "dead1's down alert mailed", func() bool {
		return sink.count(t, "firing on dead1") > 0
	})

	// kill -9 the member that owns dead1.
	killed := time.Now()
	vp := byName(victim)
	vp.signal(syscall.SIGKILL)
	vp.wait(testutil.Patience)
	for _, s := range owners[victim] {
		var slot time.Time
		var by string
		testutil.Eventually(t, 2*testutil.Patience, s+" probed by another member after the kill", func() bool {
			var ok bool
			slot, by, ok = w.firstSlotBy(s, killed, victim)
			return ok
		})
		t.Logf("%s: probed by %s from slot %s, %v after the kill", s, by, slot.Format("15:04:05.000"), slot.Sub(killed).Round(time.Millisecond))
		if slot.Sub(killed) > bound {
			t.Errorf("%s: first probe by another member at slot %v after the kill, beyond lease + interval = %v", s, slot.Sub(killed), bound)
		}
	}

	// SIGSTOP the survivor that owns more servers past its lease, then
	// SIGCONT.
	testutil.Eventually(t, 2*testutil.Patience, "two members probing their shares", func() bool {
		var ok bool
		owners, ok = w.settled(2, lease)
		return ok
	})
	var stopped, other string
	for m, ss := range owners {
		if stopped == "" || len(ss) > len(owners[stopped]) {
			stopped, other = m, stopped
		} else {
			other = m
		}
	}
	sp := byName(stopped)
	ownedBefore := owners[stopped]
	stopAt := time.Now()
	sp.signal(syscall.SIGSTOP)
	for _, s := range ownedBefore {
		testutil.Eventually(t, 2*testutil.Patience, s+" taken over from the stopped member", func() bool {
			slot, _, ok := w.firstSlotBy(s, stopAt, stopped)
			if ok && slot.Sub(stopAt) > bound {
				t.Errorf("%s: taken over at slot %v after the stop, beyond %v", s, slot.Sub(stopAt), bound)
			}
			return ok
		})
	}
	testutil.Eventually(t, 2*testutil.Patience, "the stopped member's member alert mailed", func() bool {
		return sink.count(t, "firing on "+stopped) > 0
	})
	mark := len(sp.out.String())
	contAt := time.Now()
	sp.signal(syscall.SIGCONT)
	testutil.Eventually(t, 2*testutil.Patience, "the stopped member rejoined and probing again", func() bool {
		if !strings.Contains(sp.out.String()[mark:], "joined the cluster") {
			return false
		}
		for _, s := range w.servers {
			for _, r := range w.results(s) {
				if r.Member == stopped && r.Slot.After(contAt) {
					return true
				}
			}
		}
		return false
	})
	for _, s := range w.servers {
		for _, r := range w.results(s) {
			if r.Member == stopped && !r.Slot.Before(stopAt) && r.Slot.Before(contAt.Add(lease)) {
				t.Errorf("%s: the stopped member stored a result of slot %s, %v after it was stopped, before it had rejoined and settled",
					s, r.Slot.Format("15:04:05.000"), r.Slot.Sub(stopAt))
			}
		}
	}
	testutil.Eventually(t, 2*testutil.Patience, "the stopped member's alert resolved", func() bool {
		return sink.count(t, "resolved on "+stopped) > 0
	})

	// The killed member starts again under a new name, in its data
	// directory: its old heartbeat goes and its alert resolves.
	again := start()
	testutil.Eventually(t, 2*testutil.Patience, "the killed member's alert resolved", func() bool {
		return sink.count(t, "resolved on "+victim) > 0
	})
	if !strings.Contains(again.out.String(), "took the data directory over from a member that stopped") {
		t.Errorf("the new member did not say it took the killed one's data directory over:\n%s", again.out)
	}
	testutil.Eventually(t, 2*testutil.Patience, "three members probing again", func() bool {
		_, ok := w.settled(3, lease)
		return ok
	})
	for _, p := range procs {
		if !p.exited() {
			p.signal(syscall.SIGTERM)
		}
	}
	for _, p := range procs {
		p.wait(time.Minute)
	}
	if ms := w.members(); len(ms) != 0 {
		t.Errorf("heartbeats left after every member stopped: %+v", ms)
	}

	// Nothing doubled.
	total := 0
	for _, s := range w.servers {
		rs := w.results(s)
		slots := map[string]bool{}
		snaps := 0
		var maxGap time.Duration
		for i, r := range rs {
			key := fmt.Sprintf("%t %s", r.Failed(), r.Slot)
			if r.Slot.IsZero() || slots[key] {
				t.Errorf("%s: result at %s has slot %v, twice or none", s, r.At, r.Slot)
			}
			slots[key] = true
			if !r.Failed() {
				snaps++
			}
			if i > 0 {
				maxGap = max(maxGap, r.Slot.Sub(rs[i-1].Slot))
			}
		}
		total += len(rs)
		rollups, err := db.Rollups(context.Background(), monitor.RollupFilter{Servers: []string{s}, Period: monitor.Hour,
			From: time.Now().Add(-2 * time.Hour), To: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		var counted int64
		for _, r := range rollups {
			counted += r.Count + r.Failed
		}
		if counted != int64(len(rs)) {
			t.Errorf("%s: rollups count %d results, %d stored", s, counted, len(rs))
		}
		t.Logf("%s: %d results (%d snapshots), longest gap between slots %v", s, len(rs), snaps, maxGap)
		if testing.Verbose() && s == "web1" {
			for _, p := range procs {
				t.Logf("%s:\n%s", p.name, p.out)
			}
		}
	}
	for _, p := range procs {
		if strings.Contains(p.out.String(), "this one is not kept") {
			t.Errorf("%s: a result of a slot another member stored too:\n%s", p.name, p.out)
		}
	}

	// Each transition mailed once, each notification once.
	for _, want := range []string{"firing on dead1", "firing on " + victim, "resolved on " + victim,
		"firing on " + stopped, "resolved on " + stopped} {
		if n := sink.count(t, want); n != 1 {
			t.Errorf("%d mails %q, want 1", n, want)
		}
	}
	ids := map[string]int{}
	for _, id := range sink.messageIDs(t) {
		ids[id]++
		if ids[id] == 2 {
			t.Errorf("notification %s mailed twice", id)
		}
	}
	t.Logf("%d results stored; mails: %q; member %s killed, %s stopped, %s stayed", total, sink.subjects(t), victim, stopped, other)
}

// count returns how many received messages have a subject containing sub.
func (s *smtpSink) count(t *testing.T, sub string) int {
	n := 0
	for _, subject := range s.subjects(t) {
		if strings.Contains(subject, sub) {
			n++
		}
	}
	return n
}

// messageIDs returns the Message-ID of each message received.
func (s *smtpSink) messageIDs(t *testing.T) []string {
	t.Helper()
	return s.headers(t, "Message-Id")
}
