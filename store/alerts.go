package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/crawlerfleet/collector/monitor"
)

// The alert engine's collections (see the package doc): alert_state holds
// one document per server and rule whose status is not ok, silences one per
// silence. Both are small, so the scans FerretDB makes for a filter other
// than _id stay cheap. States are written by _id, one upsert ($set) or
// delete each. Both collections are created on first use.

// alertStateDoc is the state of one rule of one server; _id is server|rule.
type alertStateDoc struct {
	ID             string    `bson:"_id,omitempty"` // server|rule; not in $set
	Server         string    `bson:"server"`
	Rule           string    `bson:"rule"`
	State          string    `bson:"state"` // a monitor.AlertStatus
	Streak         int       `bson:"streak"`
	Since          time.Time `bson:"since"`
	LastNotified   time.Time `bson:"last_notified"`
	Value          float64   `bson:"value"`
	Threshold      float64   `bson:"threshold"`
	Summary        string    `bson:"summary"`
	Kind           string    `bson:"kind"` // a monitor.Kind
	HostKeyChanged bool      `bson:"hostkey_changed"`
	Updated        time.Time `bson:"updated"`
}

// silenceDoc is a silence; _id is its ID.
type silenceDoc struct {
	ID      string    `bson:"_id"`
	Server  string    `bson:"server"`
	Rule    string    `bson:"rule"`
	Until   time.Time `bson:"until"`
	Created time.Time `bson:"created"`
	Comment string    `bson:"comment"`
}

// LoadStates returns the stored alert states of servers (of all servers
// when servers is nil, of none when it is empty but not nil), sorted by
// server and rule. Times come back in UTC to the millisecond.
func (s *Store) LoadStates(ctx context.Context, servers []string) ([]monitor.AlertState, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	filter := bson.D{}
	if servers != nil {
		if len(servers) == 0 {
			return nil, nil
		}
		filter = bson.D{{Key: "server", Value: bson.D{{Key: "$in", Value: servers}}}}
	}
	coll, err := s.collection(ctx, alertStateName)
	if err != nil {
		return nil, fmt.Errorf("load alert states: %w", err)
	}
	docs, err := findAll[alertStateDoc](ctx, s, coll, filter)
	if err != nil {
		return nil, fmt.Errorf("load alert states: %w", err)
	}
	out := make([]monitor.AlertState, len(docs))
	for i, d := range docs {
		out[i] = monitor.AlertState{
			Server:         d.Server,
			Rule:           d.Rule,
			Status:         monitor.AlertStatus(d.State),
			Streak:         d.Streak,
			Since:          d.Since.UTC(),
			LastNotified:   d.LastNotified.UTC(),
			Value:          d.Value,
			Threshold:      d.Threshold,
			Summary:        d.Summary,
			Kind:           monitor.Kind(d.Kind),
			HostKeyChanged: d.HostKeyChanged,
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Server != out[j].Server {
			return out[i].Server < out[j].Server
		}
		return out[i].Rule < out[j].Rule
	})
	return out, nil
}

// SaveStates stores states by server and rule: a state with Status
// monitor.AlertOK (or "") is deleted, any other upserted. Times are stored
// to the millisecond.
func (s *Store) SaveStates(ctx context.Context, states []monitor.AlertState) error {
	if err := s.gate(); err != nil {
		return err
	}
	now := s.now().UTC()
	models := make([]mongo.WriteModel, 0, len(states))
	for _, st := range states {
		if st.Server == "" || st.Rule == "" {
			return fmt.Errorf("save alert states: state %q has no server or rule", st.Key())
		}
		id := st.Key()
		if st.Status == monitor.AlertOK || st.Status == "" {
			models = append(models, mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}))
			continue
		}
		doc := alertStateDoc{
			Server: st.Server, Rule: st.Rule, State: string(st.Status), Streak: st.Streak,
			Since: st.Since.UTC(), LastNotified: st.LastNotified.UTC(),
			Value: st.Value, Threshold: st.Threshold, Summary: st.Summary, Kind: string(st.Kind),
			HostKeyChanged: st.HostKeyChanged, Updated: now,
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: id}}).
			SetUpdate(bson.D{{Key: "$set", Value: doc}}).
			SetUpsert(true))
	}
	coll, err := s.collection(ctx, alertStateName)
	if err != nil {
		return fmt.Errorf("save alert states: %w", err)
	}
	if err := bulkWrite(ctx, coll, models, nil); err != nil {
		return fmt.Errorf("save alert states: %w", s.unavailable(err))
	}
	return nil
}

// AddSilence stores sil. Its ID must be new.
func (s *Store) AddSilence(ctx context.Context, sil monitor.Silence) error {
	if err := s.gate(); err != nil {
		return err
	}
	switch {
	case sil.ID == "":
		return errors.New("add silence: no id")
	case sil.Server == "":
		return errors.New("add silence: no server")
	}
	coll, err := s.collection(ctx, silencesName)
	if err != nil {
		return fmt.Errorf("add silence of %s: %w", sil.Server, err)
	}
	_, err = coll.InsertOne(ctx, silenceDoc{
		ID: sil.ID, Server: sil.Server, Rule: sil.Rule,
		Until: sil.Until.UTC(), Created: sil.Created.UTC(), Comment: sil.Comment,
	})
	if err != nil {
		return fmt.Errorf("add silence of %s: %w", sil.Server, s.unavailable(err))
	}
	return nil
}

// DeleteSilence removes the silence with id, expired or not. An unknown id
// is an error that wraps monitor.ErrNotFound.
func (s *Store) DeleteSilence(ctx context.Context, id string) error {
	if err := s.gate(); err != nil {
		return err
	}
	coll, err := s.collection(ctx, silencesName)
	if err != nil {
		return fmt.Errorf("delete silence %s: %w", id, err)
	}
	res, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("delete silence %s: %w", id, s.unavailable(err))
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete silence %s: %w", id, monitor.ErrNotFound)
	}
	return nil
}

// Silences returns the silences still active at now (Until after now),
// sorted by server, rule and expiry. It only reads: Prune deletes the
// expired ones.
func (s *Store) Silences(ctx context.Context, now time.Time) ([]monitor.Silence, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	coll, err := s.collection(ctx, silencesName)
	if err != nil {
		return nil, fmt.Errorf("read silences: %w", err)
	}
	// Until is stored to the millisecond, so comparing it with now rounded
	// down to the millisecond (as the driver stores now) gives the same
	// answer as comparing it with now.
	docs, err := findAll[silenceDoc](ctx, s, coll, bson.D{{Key: "until", Value: bson.D{{Key: "$gt", Value: now.UTC()}}}})
	if err != nil {
		return nil, fmt.Errorf("read silences: %w", err)
	}
	out := make([]monitor.Silence, 0, len(docs))
	for _, d := range docs {
		out = append(out, monitor.Silence{
			ID: d.ID, Server: d.Server, Rule: d.Rule,
			Until: d.Until.UTC(), Created: d.Created.UTC(), Comment: d.Comment,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.Server != y.Server {
			return x.Server < y.Server
		}
		if x.Rule != y.Rule {
			return x.Rule < y.Rule
		}
		return x.Until.Before(y.Until)
	})
	return out, nil
}
