package embedded

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// A Canary is the document of the start-up layout check: the store writes
// it through the driver (with _id ID and Fields) into a collection that
// IndexIDs indexed, reads [ID, ID+"\x00") back with Scan and hands what it
// finds to Verify. Its values stand for those the store keeps: an _id and a
// string that JSON escapes (as a server name may need), a date, a 64-bit
// integer too big for a double, a double, and an array of nested documents.
type Canary struct {
	ID   string
	At   time.Time // to the millisecond, UTC
	Text string
	N    int64
	X    float64
}

// NewCanary returns the canary for a check at now: the same _id every time,
// values that change with now, so that a stale copy does not pass.
func NewCanary(now time.Time) Canary {
	now = now.UTC().Truncate(time.Millisecond)
	return Canary{
		ID:   `canary|"quoted" \back <b>&amp; 爬虫` + "\u2028\t|",
		At:   now,
		Text: `written at ` + now.Format(time.RFC3339Nano) + ` "quoted" \back <b>&amp; 爬虫` + "\u2028\t",
		N:    1<<53 + 1 + now.UnixMilli()%1000*2,
		X:    0.1 + float64(now.UnixMilli()%1000),
	}
}

// Fields returns the canary's fields but _id, as the store writes them.
func (c Canary) Fields() bson.D {
	return bson.D{
		{Key: "at", Value: c.At},
		{Key: "text", Value: c.Text},
		{Key: "n", Value: c.N},
		{Key: "x", Value: c.X},
		{Key: "list", Value: bson.A{bson.D{{Key: "text", Value: c.Text}, {Key: "n", Value: c.N}}}},
	}
}

// Verify returns an error, naming what differs, unless doc (a document as
// Scan hands it over) is the canary exactly as the package doc describes
// the stored form: no other field, the date as milliseconds since the
// epoch, the numbers exact, the nested document plain JSON.
func (c Canary) Verify(doc []byte) error {
	var got struct {
		ID   string          `json:"_id"`
		At   json.RawMessage `json:"at"`
		Text string          `json:"text"`
		N    int64           `json:"n"`
		X    float64         `json:"x"`
		List []struct {
			Text string `json:"text"`
			N    int64  `json:"n"`
		} `json:"list"`
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		return fmt.Errorf("canary %.200s: not the stored form Scan expects: %w", doc, err)
	}
	ms, err := strconv.ParseInt(string(got.At), 10, 64)
	switch {
	case err != nil:
		return fmt.Errorf("canary date stored as %.40s, want milliseconds since the epoch (%d)", got.At, c.At.UnixMilli())
	case ms != c.At.UnixMilli():
		return fmt.Errorf("canary date stored as %d, want %d milliseconds since the epoch", ms, c.At.UnixMilli())
	case got.ID != c.ID:
		return fmt.Errorf("canary _id read back as %q, want %q", got.ID, c.ID)
	case got.Text != c.Text:
		return fmt.Errorf("canary string read back as %q, want %q", got.Text, c.Text)
	case got.N != c.N:
		return fmt.Errorf("canary 64-bit integer read back as %d, want %d", got.N, c.N)
	case got.X != c.X:
		return fmt.Errorf("canary double read back as %v, want %v", got.X, c.X)
	case len(got.List) != 1 || got.List[0].Text != c.Text || got.List[0].N != c.N:
		return fmt.Errorf("canary array of documents read back as %+v, want [{%q %d}]", got.List, c.Text, c.N)
	}
	return nil
}
