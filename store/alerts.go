package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// Collection names of the alert engine.
const (
	alertStateName = "alert_state"
	silencesName   = "silences"
)

// StateOK is the alert state that is not stored: SaveStates deletes a state
// in it.
const StateOK = "ok"

// AlertState is the stored state of one alert rule of one server. The alert
// engine owns the meaning of its fields; the store keeps them as they are.
type AlertState struct {
	Server         string
	Rule           string
	State          string
	Streak         int
	Since          time.Time
	LastNotified   time.Time
	Value          float64
	Threshold      float64
	Summary        string
	Kind           string
	HostKeyChanged bool
}

// Silence is a stored silence: no notification for Server (and Rule, unless
// empty) until Until.
type Silence struct {
	ID      string
	Server  string
	Rule    string
	Until   time.Time
	Created time.Time
	Comment string
}

type alertStateDoc struct {
	ID             string    `bson:"_id,omitempty"` // server|rule; not in $set
	Server         string    `bson:"server"`
	Rule           string    `bson:"rule"`
	State          string    `bson:"state"`
	Streak         int       `bson:"streak"`
	Since          time.Time `bson:"since"`
	LastNotified   time.Time `bson:"last_notified"`
	Value          float64   `bson:"value"`
	Threshold      float64   `bson:"threshold"`
	Summary        string    `bson:"summary"`
	Kind           string    `bson:"kind"`
	HostKeyChanged bool      `bson:"hostkey_changed"`
	Updated        time.Time `bson:"updated"`
}

type silenceDoc struct {
	ID      string    `bson:"_id"`
	Server  string    `bson:"server"`
	Rule    string    `bson:"rule"`
	Until   time.Time `bson:"until"`
	Created time.Time `bson:"created"`
	Comment string    `bson:"comment"`
}

// AlertStore keeps alert states and silences next to the results:
//
//	alert_state  {_id: "server|rule", server, rule, state, streak, since,
//	              last_notified, value, threshold, summary, kind,
//	              hostkey_changed, updated}
//	silences     {_id: "<random hex>", server, rule, until, created, comment}
//
// Only states other than ok are stored, so both collections stay small and
// the scans FerretDB makes for a filter other than _id stay cheap. States
// are written by _id, one upsert ($set) or delete each.
type AlertStore struct {
	s        *Store
	states   *mongo.Collection
	silences *mongo.Collection
}

// AlertStore returns the alert state and silences collections of s,
// creating them when missing. Call it once and keep the result: it checks
// the collections on every call.
func (s *Store) AlertStore(ctx context.Context) (*AlertStore, error) {
	states, err := s.Collection(ctx, alertStateName)
	if err != nil {
		return nil, fmt.Errorf("open alert state: %w", err)
	}
	silences, err := s.Collection(ctx, silencesName)
	if err != nil {
		return nil, fmt.Errorf("open silences: %w", err)
	}
	return &AlertStore{s: s, states: states, silences: silences}, nil
}

// LoadStates returns the stored alert states of servers (of all servers
// when servers is nil), sorted by server and rule.
func (a *AlertStore) LoadStates(ctx context.Context, servers []string) ([]AlertState, error) {
	filter := bson.D{}
	if servers != nil {
		if len(servers) == 0 {
			return nil, nil
		}
		filter = bson.D{{Key: "server", Value: bson.D{{Key: "$in", Value: servers}}}}
	}
	cur, err := a.states.Find(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("load alert states: %w", err)
	}
	var docs []alertStateDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("load alert states: %w", err)
	}
	out := make([]AlertState, len(docs))
	for i, d := range docs {
		out[i] = AlertState{
			Server:         d.Server,
			Rule:           d.Rule,
			State:          d.State,
			Streak:         d.Streak,
			Since:          d.Since.UTC(),
			LastNotified:   d.LastNotified.UTC(),
			Value:          d.Value,
			Threshold:      d.Threshold,
			Summary:        d.Summary,
			Kind:           d.Kind,
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

// SaveStates writes states by _id: a state in StateOK is deleted, any other
// upserted. Times are stored to the millisecond.
func (a *AlertStore) SaveStates(ctx context.Context, states []AlertState) error {
	now := a.s.now().UTC()
	models := make([]mongo.WriteModel, 0, len(states))
	for _, st := range states {
		if st.Server == "" || st.Rule == "" {
			return fmt.Errorf("save alert states: state %q has no server or rule", st.Server+"|"+st.Rule)
		}
		id := st.Server + "|" + st.Rule
		if st.State == StateOK || st.State == "" {
			models = append(models, mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}))
			continue
		}
		doc := alertStateDoc{
			Server: st.Server, Rule: st.Rule, State: st.State, Streak: st.Streak,
			Since: st.Since.UTC(), LastNotified: st.LastNotified.UTC(),
			Value: st.Value, Threshold: st.Threshold, Summary: st.Summary, Kind: st.Kind,
			HostKeyChanged: st.HostKeyChanged, Updated: now,
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: id}}).
			SetUpdate(bson.D{{Key: "$set", Value: doc}}).
			SetUpsert(true))
	}
	if err := bulkWrite(ctx, a.states, models, nil); err != nil {
		return fmt.Errorf("save alert states: %w", err)
	}
	return nil
}

// AddSilence stores sil. Its ID must be new.
func (a *AlertStore) AddSilence(ctx context.Context, sil Silence) error {
	switch {
	case sil.ID == "":
		return errors.New("add silence: no id")
	case sil.Server == "":
		return errors.New("add silence: no server")
	}
	_, err := a.silences.InsertOne(ctx, silenceDoc{
		ID: sil.ID, Server: sil.Server, Rule: sil.Rule,
		Until: sil.Until.UTC(), Created: sil.Created.UTC(), Comment: sil.Comment,
	})
	if err != nil {
		return fmt.Errorf("add silence of %s: %w", sil.Server, err)
	}
	return nil
}

// Silences returns the silences still active at now (Until after now),
// sorted by server, rule and expiry. It only reads: Store.Prune deletes the
// expired ones.
func (a *AlertStore) Silences(ctx context.Context, now time.Time) ([]Silence, error) {
	// Until is stored to the millisecond, so comparing it with now rounded
	// down to the millisecond (as the driver stores now) gives the same
	// answer as comparing it with now.
	cur, err := a.silences.Find(ctx, bson.D{{Key: "until", Value: bson.D{{Key: "$gt", Value: now.UTC()}}}})
	if err != nil {
		return nil, fmt.Errorf("read silences: %w", err)
	}
	var docs []silenceDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read silences: %w", err)
	}
	out := make([]Silence, 0, len(docs))
	for _, d := range docs {
		out = append(out, Silence{
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
