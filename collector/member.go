package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/collector/alerting"
	"github.com/crawlerfleet/collector/collector/cluster"
	"github.com/crawlerfleet/collector/collector/httpapi"
	"github.com/crawlerfleet/collector/internal/fsutil"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
	"github.com/crawlerfleet/collector/store"
)

// The parts of a cluster fit the interfaces their consumers declare.
var _ cluster.Store = (*store.Store)(nil)

// ClaimFor is how long a member holds the claim of an outbox entry's
// delivery: longer than a channel may take (notify.DefaultTimeout), so
// that no other member delivers it meanwhile.
const ClaimFor = 2 * time.Minute

// maxMemberDirs bounds how many members one data_dir holds.
const maxMemberDirs = 1000

// memberName returns the name of this collector in its cluster: [cluster]
// member, else its host name and process id, so that several on one host
// are told apart.
func memberName(inv *inventory.Inventory) string {
	if inv.Cluster.Member != "" {
		return inv.Cluster.Member
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "collector"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// checkCluster refuses [cluster] without a database the members can share:
// the embedded store lives inside one collector.
func (e *env) checkCluster(inv *inventory.Inventory) error {
	if !inv.Cluster.Enabled {
		return nil
	}
	uri := store.Config{URI: inv.Store.URI}.ApplyEnv(e.getenv).URI
	if uri == "" {
		return &usageError{fmt.Errorf("%s:%d: [cluster] needs a database the members share: set [store] uri (or %s) to a MongoDB replica set; "+
			"the embedded store lives inside one collector, so remove [cluster] to run a single one", inv.Path, inv.Cluster.Line, store.EnvURI)}
	}
	return nil
}

// memberDataDir returns the data directory of a member of a cluster: the
// first of <data_dir>/members/0, 1, 2, ... that no running collector holds
// (each locks its own), so that several members on one host need no
// setting of their own, and a member that restarts takes the directory it
// had, with what its spool kept.
func memberDataDir(base string) (string, error) {
	base, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("data_dir: %w", err)
	}
	for n := range maxMemberDirs {
		dir := filepath.Join(base, "members", strconv.Itoa(n))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("data_dir: %w", err)
		}
		release, err := fsutil.Lock(filepath.Join(dir, "lock"), "a collector choosing its data directory")
		var locked *fsutil.LockedError
		if errors.As(err, &locked) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("data_dir: %w", err)
		}
		if err := release(); err != nil {
			return "", fmt.Errorf("data_dir: %w", err)
		}
		return dir, nil
	}
	return "", fmt.Errorf("data_dir %s: all %d member directories are in use", base, maxMemberDirs)
}

// member is this collector's part in its cluster, wired to the store,
// alerting and the HTTP API.
type member struct {
	*cluster.Member
	stop func() // leaves the cluster and waits
}

// joinCluster starts this collector's membership: its heartbeat, the
// member alerts it raises and the claims its outbox delivers under. The
// caller runs stop after its last round.
func (e *env) joinCluster(ctx context.Context, inv *inventory.Inventory, name string, st *stores, al *alerting.Alerting, logger *slog.Logger) *member {
	host, _ := os.Hostname()
	logger = logger.With("member", name)
	if d, err := st.db.Durability(ctx); err != nil {
		logger.Warn("database not asked what it guarantees", "err", err)
	} else if !d.Majority() {
		logger.Warn("the cluster's database keeps everything on one server", "database", d.String())
	} else {
		logger.Info("cluster database", "database", d.String())
	}
	forgetPredecessor(ctx, st, name, logger)

	var m *cluster.Member
	m = cluster.New(cluster.Options{
		Name: name, Host: host, PID: os.Getpid(), Lease: inv.Cluster.Lease, Store: st.db, Logger: logger,
		OnView: func(ctx context.Context, members []monitor.Member, now time.Time) {
			al.ObserveMembers(ctx, members, now, func(key string) bool { return m.Responsible(key, now) })
		},
	})
	m.SetServers(inv.Servers)
	al.Outbox().SetClaimer(claimer{m: m, db: st.db})
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go m.Run(runCtx)
	logger.Info("cluster member", "lease", inv.Cluster.Lease, "data_dir", st.dataDir)
	return &member{Member: m, stop: func() { cancel(); <-m.Left() }}
}

// figures are the member's figures for /metrics.
func (m *member) figures() httpapi.ClusterFigures {
	f := m.Figures()
	return httpapi.ClusterFigures{Members: f.Members, Owned: f.Owned, Fenced: f.Fenced, Scheduled: f.Scheduled, Done: f.Done}
}

// forgetPredecessor deletes the heartbeat of the member that used this data
// directory before (a collector killed, then started again under a new
// process id) once it has expired: that member is not coming back, and its
// "member" alert resolves. The directory's member file then names this one.
func forgetPredecessor(ctx context.Context, st *stores, name string, logger *slog.Logger) {
	path := filepath.Join(st.dataDir, "member")
	b, err := os.ReadFile(path)
	if prev := strings.TrimSpace(string(b)); err == nil && prev != "" && prev != name {
		gone, err := st.db.Leave(ctx, prev, time.Now())
		switch {
		case err != nil:
			logger.Warn("heartbeat of the member that had this data directory not removed", "previous", prev, "err", err)
		case gone:
			logger.Info("took the data directory over from a member that stopped; its heartbeat is removed", "previous", prev)
		}
	}
	if err := fsutil.WriteAtomic(path, []byte(name+"\n")); err != nil {
		logger.Warn("member file not written", "file", path, "err", err)
	}
}

// claimer gives the outbox the claim of an entry's delivery when this
// member is not fenced.
type claimer struct {
	m  *cluster.Member
	db *store.Store
}

// Unclaimed: a fenced member delivers what it holds locally without a
// claim; it cannot reach the database, where claims are made.
func (c claimer) Unclaimed() bool { return c.m.Fenced() }

func (c claimer) Claim(ctx context.Context, e monitor.OutboxEntry) (time.Time, bool, error) {
	now := time.Now()
	until := now.Add(ClaimFor)
	if c.m.Fenced() {
		return until, false, nil
	}
	ok, err := c.db.OutboxClaim(ctx, e.ID, e.Attempts, c.m.Name(), now, until)
	return until, ok, err
}
