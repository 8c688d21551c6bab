package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	gojson "github.com/goccy/go-json"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/crawlerfleet/collector/monitor"
)

// The range reads of the embedded store: one server's rollups, snapshots or
// failed attempts over a time range are one range of _ids (each _id starts
// with the server and ends with a fixed-width time), which s.direct reads
// from the SQLite file with one indexed query. The documents come as JSON
// and decode into the same document types as through the driver.

// rollupsByServer reads the rollups of each server, one range per server:
// through its sealed days for long hourly ranges (embedded store and
// MongoDB), else straight from the embedded store's file (s.direct set).
func (s *Store) rollupsByServer(ctx context.Context, servers []string, f monitor.RollupFilter) ([]monitor.Rollup, error) {
	var out []monitor.Rollup
	for _, server := range slices.Compact(slices.Sorted(slices.Values(servers))) {
		var rs []monitor.Rollup
		var err error
		if s.sealable(f) {
			rs, err = s.sealedRollups(ctx, server, f.From, f.To)
		} else {
			rs, err = s.rollupRange(ctx, server, f.Period, f.From, f.To)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", rollupsWhat(f, []string{server}), err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// rollupRange returns the rollups of server and period whose start is in
// [from, to), in start order.
func (s *Store) rollupRange(ctx context.Context, server string, p monitor.Period, from, to time.Time) ([]monitor.Rollup, error) {
	var out []monitor.Rollup
	err := s.direct.Scan(ctx, s.cfg.Database, rollupsName, rollupID(server, p, from), rollupID(server, p, to), false, func(doc []byte) (bool, error) {
		var d rollupDoc
		if err := decodeRollup(doc, &d); err != nil {
			return false, err
		}
		if d.Server == "" || time.Time(d.Start).IsZero() {
			return false, fmt.Errorf("stored rollup %q: no server or start", d.ID)
		}
		if ru := d.rollup(); ru.Server == server && ru.Period == p {
			out = append(out, ru)
		}
		return true, nil
	})
	return out, scanErr(err)
}

// A result's _id holds its slot when it has one (see storedID), and its
// at otherwise; a stored slot lies at most monitor.MaxSlotLag before its at.
// So the results with from <= at < to are among the _ids from
// from - MaxSlotLag to to, and the range reads below scan those and keep
// the ones whose at is in range, sorted by at.

// attemptsDirect returns the failed attempts of server with from <= At <
// to, oldest first.
func (s *Store) attemptsDirect(ctx context.Context, server string, from, to time.Time) ([]monitor.Result, error) {
	var out []monitor.Result
	err := s.direct.Scan(ctx, s.cfg.Database, attemptsName, resultID(server, from.Add(-monitor.MaxSlotLag)), resultID(server, to), false, func(doc []byte) (bool, error) {
		var d attemptDoc
		if err := decodeStored(doc, &d); err != nil {
			return false, err
		}
		if r := d.result(); d.Server == server && within(r.At, from, to) {
			out = append(out, r)
		}
		return true, nil
	})
	sortByAt(out)
	return out, scanErr(err)
}

// snapshotsDirect returns the snapshots of server with from <= At < to,
// oldest first; with limit > 0 the newest limit of them.
func (s *Store) snapshotsDirect(ctx context.Context, server string, from, to time.Time, limit int) ([]monitor.Result, error) {
	var out []monitor.Result
	err := s.direct.Scan(ctx, s.cfg.Database, snapshotsName, resultID(server, from.Add(-monitor.MaxSlotLag)), resultID(server, to), true, func(doc []byte) (bool, error) {
		// The range holds the snapshots of up to MaxSlotLag before from,
		// which only the server and time of are read.
		var head struct {
			Server string  `json:"server"`
			At     docTime `json:"at"`
		}
		if err := decodeFast(doc, &head); err != nil {
			return false, err
		}
		if head.Server != server || !within(head.At.utc(), from, to) {
			return true, nil
		}
		var d snapshotDoc
		if err := decodeStored(doc, &d); err != nil {
			return false, err
		}
		r, err := d.result()
		if err != nil {
			return false, err
		}
		out = append(out, r)
		return limit <= 0 || len(out) < limit, nil
	})
	sortByAt(out)
	return out, scanErr(err)
}

// directOne reads the document of collection whose _id is id from the
// embedded store's file: decode decodes one document of the range around
// id and returns its _id. No such document is mongo.ErrNoDocuments, as
// through the driver.
func (s *Store) directOne(ctx context.Context, collection, id string, decode func(doc []byte) (string, error)) error {
	found := false
	err := s.direct.Scan(ctx, s.cfg.Database, collection, id, id+"\x00", false, func(doc []byte) (bool, error) {
		got, err := decode(doc)
		if err != nil {
			return false, err
		}
		found = got == id
		return !found, nil
	})
	if err != nil {
		return scanErr(err)
	}
	if !found {
		return mongo.ErrNoDocuments
	}
	return nil
}

// within reports whether from <= t < to, with from and to cut to the
// millisecond as a query through the driver cuts them (a BSON date holds
// milliseconds).
func within(t, from, to time.Time) bool {
	return !t.Before(from.Truncate(time.Millisecond)) && t.Before(to.Truncate(time.Millisecond))
}

// sortByAt sorts results oldest first.
func sortByAt(rs []monitor.Result) {
	slices.SortStableFunc(rs, func(a, b monitor.Result) int { return a.At.Compare(b.At) })
}

// scanErr marks an error of a direct read with monitor.ErrUnavailable when
// the read ran out of time or was cancelled; any other is about the file or
// a document in it.
func scanErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", monitor.ErrUnavailable, err)
	}
	return err
}

// decodeRollup decodes a rollup as Scan hands it over. A long report reads
// tens of thousands of them, each of some twenty objects, so it decodes
// them with goccy/go-json, a drop-in encoding/json that is four times
// faster on them; an error is reported as encoding/json reports it.
func decodeRollup(doc []byte, d *rollupDoc) error { return decodeFast(doc, d) }

// decodeFast decodes a document as Scan hands it over into v with
// goccy/go-json, for the reads of many documents; an error is reported as
// encoding/json reports it.
func decodeFast[T any](doc []byte, v *T) error {
	if err := gojson.Unmarshal(doc, v); err != nil {
		var zero T
		*v = zero
		return decodeStored(doc, v)
	}
	return nil
}

// decodeStored decodes a document as Scan hands it over into v.
func decodeStored(doc []byte, v any) error {
	if err := json.Unmarshal(doc, v); err != nil {
		return fmt.Errorf("stored document %.80q: %w", doc, err)
	}
	return nil
}
