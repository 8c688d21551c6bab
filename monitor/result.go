package monitor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// Kind says why a probe attempt failed. Each kind calls for a different fix,
// so alerts, reports and metrics keep them apart.
type Kind string

// The kinds of failure; Kinds lists them all.
const (
	KindOK          Kind = ""            // the attempt succeeded
	KindUnreachable Kind = "unreachable" // no TCP connection, or it dropped
	KindAuth        Kind = "auth"        // SSH authentication refused
	KindHostKey     Kind = "hostkey"     // host key unknown or changed
	KindTimeout     Kind = "timeout"     // the attempt's deadline passed
	KindProbe       Kind = "probe"       // the probe ran but failed or printed no valid snapshot
	KindConfig      Kind = "config"      // the inventory entry cannot be used as written
)

// Kinds lists every kind of failure, in the order above: the values Valid
// accepts, for callers that enumerate them (a metric per kind). Do not
// modify it.
var Kinds = []Kind{KindUnreachable, KindAuth, KindHostKey, KindTimeout, KindProbe, KindConfig}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool { return slices.Contains(Kinds, k) }

// KindList is Kinds for a message: "unreachable, auth, ... or config".
func KindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// A Result is one probe attempt of one server: a snapshot, or a failure with
// its kind. The fleet makes it, the store keeps it (and gives it back from
// its reads), the alert rules and the metrics look at it.
type Result struct {
	Server string
	// At is when the attempt finished, on the collector's clock: the time
	// the result is stored, alerted and exported under. With Server it
	// identifies an unscheduled result; stores keep it in UTC to the
	// millisecond.
	At time.Time
	// Slot is the tick of the schedule that asked for the attempt (zero
	// for an attempt made outside the schedule: once, collect). With Server
	// it identifies a scheduled result, so that two collectors that probe
	// one server in one slot store one result. Stores keep it in UTC to the
	// millisecond, and drop it when the attempt ended more than MaxSlotLag
	// after it.
	Slot time.Time
	// Member names the collector that made the attempt, when it runs in a
	// cluster; stores keep it.
	Member string
	// Duration of the attempt; stores keep it to the millisecond.
	Duration time.Duration
	// Snapshot is set when the attempt succeeded; Kind and Err otherwise.
	Snapshot *snapshot.Snapshot
	Kind     Kind
	// Err says what failed. It names the server once, and may carry a fix
	// (a method Fix() string) and typed causes for errors.As while the
	// attempt is fresh; read back from a store it is only the message.
	Err error
	// ClockSkew is the probe's clock minus the collector's when the
	// snapshot arrived, noted when it is large (more than 10 s either way;
	// zero otherwise). Stores keep it to the millisecond.
	ClockSkew time.Duration
	// HostKeyChanged marks a KindHostKey failure where the server offered
	// a key other than the recorded one (not merely an unknown host): the
	// "down" alert fires at once.
	HostKeyChanged bool

	// What the fleet learned on the way; not stored.

	// Platform is the target's platform, such as "linux/amd64", once known.
	Platform string
	// Uploaded is set when the probe was uploaded during this attempt.
	Uploaded bool
	// Reused is set when the attempt began on a connection kept from an
	// earlier one, and Dialed when it opened one (both when a kept
	// connection failed and a new one was dialed).
	Reused, Dialed bool
}

// Start is when the attempt began.
func (r Result) Start() time.Time { return r.At.Add(-r.Duration) }

// Failed reports whether the attempt failed.
func (r Result) Failed() bool { return r.Snapshot == nil }

// Error returns the message of Err, or "" for a successful attempt.
func (r Result) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.Err.Error()
}

// MaxSlotLag is how long after its slot a scheduled attempt may end and
// still be kept under that slot; a later one is kept as unscheduled (under
// its At). It bounds how far a stored slot and At lie apart, which range
// reads by slot rely on.
const MaxSlotLag = 15 * time.Minute

// Key returns what identifies r among the results of its server: Slot when
// it is set, else At.
func (r Result) Key() time.Time {
	if !r.Slot.IsZero() {
		return r.Slot
	}
	return r.At
}

// Normalized returns r as stores keep it: At and Slot in UTC to the
// millisecond, Duration to the millisecond, no Slot when r ended more than
// MaxSlotLag after it (or before it). It fails when r has no server or
// time, or is not exactly one of a snapshot and a failure of a valid kind.
func (r Result) Normalized() (Result, error) {
	r.At = r.At.UTC().Truncate(time.Millisecond)
	if !r.Slot.IsZero() {
		r.Slot = r.Slot.UTC().Truncate(time.Millisecond)
		if lag := r.At.Sub(r.Slot); lag < 0 || lag > MaxSlotLag {
			r.Slot = time.Time{}
		}
	}
	r.Duration = r.Duration.Truncate(time.Millisecond)
	r.ClockSkew = r.ClockSkew.Truncate(time.Millisecond)
	switch {
	case r.Server == "":
		return r, errors.New("result has no server name")
	case r.At.IsZero():
		return r, fmt.Errorf("result for %s has no time", r.Server)
	case r.Snapshot != nil && (r.Kind != KindOK || r.Err != nil):
		return r, fmt.Errorf("result for %s at %s has both a snapshot and an error", r.Server, r.At.Format(time.RFC3339))
	case r.Snapshot == nil && !r.Kind.Valid():
		return r, fmt.Errorf("result for %s at %s has no snapshot and error kind %q (want %s)", r.Server, r.At.Format(time.RFC3339), r.Kind, KindList())
	case r.Snapshot == nil && r.Err == nil:
		r.Err = errors.New(string(r.Kind))
	}
	return r, nil
}

// ErrNotFound is wrapped by the errors of reads that find nothing.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is wrapped by the errors of a store that could not be
// reached or did not answer in time: the same request may succeed later. An
// error without it is the store's answer about the request itself.
var ErrUnavailable = errors.New("store unavailable")
