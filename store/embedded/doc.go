// Package embedded runs FerretDB in-process as the collector's database
// when no MongoDB is configured, and reads ranges of its documents straight
// from FerretDB's SQLite file. It is the one package that knows FerretDB:
// its lifecycle, its logs and its on-disk layout.
//
// # The server
//
// Start runs FerretDB v1.24 (pinned in go.mod) with its SQLite backend on a
// loopback port, keeping one SQLite file per database under a directory
// (the store uses <data_dir>/db). Clients reach it through URI with the
// MongoDB driver; Stop shuts it down. FerretDB's own log records go to the
// given logger at warning level and above, without the dumps of failed
// responses that carry nothing for an operator.
//
// # Speed
//
// FerretDB v1.24 evaluates every filter but a lone _id outside SQLite, so
// the store reads by _id where it can. FerretDB's own _id index is built on
// an expression other than the one it queries by, so IndexIDs adds one that
// matches; without it every lookup, update and upsert by _id reads the whole
// table.
//
// A range of _ids is still a full read through FerretDB, and decoding its
// stored form costs FerretDB a third of a millisecond per document: a
// 30-day report of 100 servers (72,000 hourly rollups) took 20 s. Scan skips
// FerretDB for such reads: it opens the SQLite file itself, query-only
// (SQLite's WAL lets it read beside FerretDB's writers), reads the range
// with one query on the index IndexIDs added, and hands over each
// document's data without its schema; the report then takes about one
// second. Every _id the store writes starts with the server name and ends
// with a fixed-width time, so one server's documents over a time range are
// one range of _ids.
//
// # The layout Scan relies on
//
// FerretDB v1.24 keeps a table _ferretdb_collections that maps each
// collection to its table. Each row of that table is one document in the
// column _ferretdb_sjson: a JSON object whose first field "$s" holds the
// schema and whose other fields hold the values, with dates as milliseconds
// since the epoch, 64-bit integers and doubles as JSON numbers, and nested
// documents and arrays as plain JSON. The index IndexIDs adds is on
// _ferretdb_sjson->'$._id', so it orders the rows by the JSON text of their
// _id, which FerretDB writes as Go's encoding/json does.
//
// A later FerretDB may change any of that. The store therefore checks at
// start-up that the layout is the one Scan expects: it writes a Canary
// through the driver, reads it back with Scan, has Canary.Verify compare
// it, and asks CheckIndex whether the range queries use the index. When
// anything is off it logs why and reads through FerretDB instead: slower,
// never wrong.
package embedded
