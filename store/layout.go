package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/crawlerfleet/collector/store/embedded"
)

// checkLayout makes sure that direct, the embedded backend's reader, reads
// what the driver writes, before the range reads rely on it: it writes an
// embedded.Canary through the driver into the layout_check collection,
// reads it back with Scan and has the canary verify it, and checks that the
// range queries of snapshots, attempts and rollups use the _id index. An
// error says what is off: no _ferretdb_collections, no "$s" schema, a date
// not in milliseconds, an _id not found where its JSON text should sort, a
// plan without the index. Open then reads through the driver instead.
func (s *Store) checkLayout(ctx context.Context, direct directReader) error {
	c := embedded.NewCanary(s.now())
	coll, err := s.collection(ctx, layoutName)
	if err != nil {
		return fmt.Errorf("check the layout: %w", err)
	}
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: c.ID}}, bson.D{{Key: "$set", Value: c.Fields()}},
		options.Update().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("check the layout: write the canary: %w", err)
	}
	found := 0
	err = direct.Scan(ctx, s.cfg.Database, layoutName, c.ID, c.ID+"\x00", false, func(doc []byte) (bool, error) {
		found++
		return true, c.Verify(doc)
	})
	switch {
	case err != nil:
		return fmt.Errorf("check the layout: read the canary back: %w", err)
	case found != 1:
		return fmt.Errorf("check the layout: the range of the canary's _id %q holds %d documents, want 1: _ids are not stored as JSON text as the range reads expect", c.ID, found)
	}
	var errs []error
	for _, name := range []string{snapshotsName, pointsName, attemptsName, rollupsName, sealedName} {
		if err := direct.CheckIndex(ctx, s.cfg.Database, name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("check the layout: %w", err)
	}
	return nil
}
