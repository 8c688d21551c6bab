// Package store keeps snapshots, failed attempts and their hourly and daily
// rollups in MongoDB, or in an embedded FerretDB when no database is given,
// with an on-disk spool that holds writes while the database is down.
//
// # Collections
//
// Only operations that both MongoDB and FerretDB v1.24 (SQLite backend)
// support are used:
//
//   - insertOne, and insertMany unordered;
//   - find and findOne with equality, $gt, $gte, $lt, $lte and $in filters,
//     sort, limit and projection;
//   - bulkWrite, unordered and at most 32 statements at a time (see
//     maxStatements), of updateOne upserts with $setOnInsert, $inc, $min,
//     $max and $set, and of deleteOne; updateOne with $set;
//   - countDocuments (OutboxPending), which the driver sends as an aggregate
//     of $match and $group: the only aggregation;
//   - deleteMany (Prune, OutboxPrune);
//   - the commands buildInfo, listCollections, create and createIndexes
//     (Open, Collection).
//
// There is no TTL index: Prune deletes what is past retention.
//
//	snapshots  {_id: "server|2024-05-01T10:17:00.000Z", server, at, probe_time,
//	            duration_ms, snapshot: "<the snapshot as JSON>"}
//	attempts   {_id: "server|<at>", server, at, duration_ms,
//	            kind: unreachable|auth|hostkey|timeout|probe|config, error}
//	rollups    {_id: "server|hour|2024-05-01T10:00:00.000Z", server,
//	            period: "hour"|"day", start, count, failed, rolled_to,
//	            cpu:   {peak: {value, order, at, procs_known, matched_total,
//	                           procs: [{keyword, count}, ...]}, sum, n},
//	            mem:   {...}, disk: {...}, load1: {...},
//	            matched: {min, max, sum, n},
//	            keywords: {"<keyword>": {sum, n}, ...}}
//	servers    {_id: "server", latest: {at, id}, last_failure: {at, duration_ms, kind, error}}
//
// Next to these the store keeps, for the alert engine and the notifier,
// alert_state and silences (described at AlertStore) and outbox (described
// at outboxName, in outbox.go). Each is small and created on first use.
//
// The _id of a result is its server and collector time, so writing a result
// twice stores it once. A rollup is kept up to date by one upsert per write:
// $inc adds counts and sums (each keyword's count under keywords, with '%',
// '.' and '$' percent-escaped, as a field name cannot hold them), $min and
// $max move the matched-process range, and $max on the peak document keeps the highest reading together with the
// time and process counts of that reading. Documents compare field by field,
// so the peak with the higher value wins, and on equal values the one with
// the higher order, which is minus the time in milliseconds: the earliest.
// rolled_to, the newest result folded in, moves in the same update; a
// result found already stored is folded in again only when newer than
// rolled_to, which is the case after a write that stored it and failed
// before its rollup upkeep. So a replay counts nothing twice, and an
// interrupted write loses nothing.
//
// # Spool
//
// While the database is down, Write appends results to
// <data_dir>/spool/results.jsonl, one JSON line each, and syncs the file:
//
//	{"v":1,"server":"web1","at":"2024-05-01T10:17:00Z","duration_ms":812,"snapshot":{...}}
//	{"v":1,"server":"web2","at":"2024-05-01T10:17:00Z","duration_ms":5000,"err_kind":"timeout","err":"..."}
//
// Every Write that may try the database (not within 15 s of a failed
// attempt) first replays the spool in order, 5,000 results at a time, at
// most 4 such chunks (writeReplayChunks); while results are left in the
// spool, its own results join the spool behind them, and the next Write goes
// on. Replay is the explicit drain: it replays the whole spool. Progress is
// recorded in results.offset. A line that is not a valid result, or that the
// database refuses for itself (not an outage), is logged with its line
// number, copied to rejected.jsonl and skipped. The spool survives restarts
// and is capped by Config.SpoolMax; past that Write drops results with an
// error log.
//
// # Retention
//
// Prune deletes raw snapshots and attempts past Config.Retention, rollups
// past Config.RollupRetention, and expired silences. The daemon calls it
// every hour; a command run from a crontab can call PruneIfDue, which prunes
// only when the time recorded in <data_dir>/pruned-at is old enough.
//
// # Embedded FerretDB
//
// With no URI, Open runs FerretDB in-process on a loopback port with its
// SQLite files under <data_dir>/db. FerretDB v1.24 evaluates every filter
// but a lone _id outside SQLite, so reads that matter go by _id: Latest via
// the servers collection. Its own _id index does not match the expression it
// queries by, so Open adds one that does; without it every lookup, update
// and upsert by _id reads the whole table.
//
// Range reads (Rollups, Snapshots, Attempts: one server over a time range)
// bypass FerretDB, which would read the whole collection for them: every
// _id starts with the server and ends with a fixed-width time, so the store
// opens the SQLite file itself, query-only, reads the range with one query
// on that _id index, and decodes only the data of FerretDB's stored form
// (see sqliteReader). A 30-day report of 100 servers reads 72,000 rollups:
// through FerretDB that took 20 s, nearly all of it decoding; directly it
// takes about one.
package store
