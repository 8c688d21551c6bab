// Package store is the collector's MongoDB writer and reader: it keeps probe
// results (monitor.Result) as snapshots and failed attempts with their
// hourly and daily rollups, the alert engine's states and silences, and the
// notification outbox, in MongoDB through the official driver, and reads
// them back as the domain types of package monitor. With no URI it runs the
// embedded FerretDB of package store/embedded and reads ranges straight
// from its file.
//
// A Store implements the interfaces its consumers declare: WriteResults is
// the Writer that package store/spool wraps to keep results on disk while
// the database is down; LoadStates, SaveStates, Silences and AddSilence
// serve the alert engine; the Outbox methods serve the notifier; Latest,
// LastFailure, Snapshots, Attempts, Servers and Rollups serve the HTTP API
// and the report. Errors wrap monitor.ErrNotFound when a read finds nothing
// and monitor.ErrUnavailable when the database could not be reached or did
// not answer in time.
//
// # Collections
//
// Only operations that both MongoDB and FerretDB v1.24 (SQLite backend)
// support are used:
//
//   - insertOne, and insertMany unordered;
//   - find and findOne with equality, $gt, $gte, $lt, $lte and $in filters
//     (an _id range for sealed days and days' totals), sort, limit and
//     projection, inclusive or exclusive;
//   - bulkWrite, unordered and at most 32 statements at a time (see
//     maxStatements), of updateOne upserts with $setOnInsert, $inc, $min,
//     $max and $set, and of deleteOne; updateOne with $set, also as an
//     upsert (the layout canary);
//   - countDocuments (OutboxPending), which the driver sends as an aggregate
//     of $match and $group: the only aggregation;
//   - deleteMany (Prune, OutboxPrune, DeleteRange), updateOne with $set and
//     $unset (DeleteRange's server pointers);
//   - the commands ping (Ping), buildInfo, listCollections, create and createIndexes
//     (Open, and the first use of a collection).
//
// There is no TTL index: Prune deletes what is past retention, and readers
// of members ignore expired heartbeats.
//
// # Several collectors
//
// Members of a cluster (collector run with [cluster]) each upsert their
// heartbeat into members with write concern majority (Heartbeat); on a
// replica set it then survives the loss of the primary. FerretDB accepts
// any write concern and ignores it (it took w: 3 on one server), and a
// standalone MongoDB has no majority but itself: Durability says which.
// Outbox entries are claimed (OutboxClaim) by inserting a claim document,
// as a unique _id is the one thing FerretDB v1.24 applies atomically: its
// findAndModify and its conditional updateOne match and write in two steps,
// so several concurrent callers all "win" (measured: 6 of 20 races with 8
// callers for findAndModify, 65 of 100 for updateOne), while concurrent
// inserts of one _id let exactly one through (200 of 200).
//
//	snapshots    {_id: "server|2024-05-01T10:17:00.000Z", server, at, probe_time,
//	              duration_ms, snapshot: "<the snapshot as JSON>", slot, member}
//	points       {_id: "server|2024-05-01T10:10:00.000Z", server, start,
//	              pts: {"<milliseconds into the bucket, 7 digits>": "<point text>", ...}}
//	attempts     {_id: "server|<slot or at>", server, at, duration_ms,
//	              kind: unreachable|auth|hostkey|timeout|probe|config, error,
//	              slot, member}
//	rollups      {_id: "server|hour|2024-05-01T10:00:00.000Z", server,
//	              period: "hour"|"day", start, count, failed, rolled_to,
//	              rolled_to_by: {"_<member>": <newest result folded in>},
//	              cpu:   {pk: "<peak text>", sum, n},
//	              mem:   {...}, disk: {...}, load1: {...},
//	              matched: {min, max, sum, n},
//	              keywords: {"<keyword>": {sum, n, rss, cpu, rn, fd, fn, fc}, ...},
//	              unavail: {...}, swap: {...}, psi_cpu: {...}, psi_mem: {...},
//	              psi_io: {...}, runq: {...}, net: {...}, fd: {...},
//	              fs: {"<mount point>": {...}, ...}}
//	sealed       {_id: "server|2024-05-01T00:00:00.000Z", server, start, total,
//	              version: "r1", text: "<the day's hourly rollups, see sealtext.go>"}
//	servers      {_id: "server", latest: {at, id}, last_failure: {at, duration_ms, kind, error}}
//	alert_state  {_id: "server|rule", server, rule, state: pending|firing|resolved,
//	              streak, since, last_notified, value, threshold, summary, kind,
//	              hostkey_changed, updated}
//	silences     {_id: "<random hex>", server, rule, until, created, comment}
//	outbox       {_id: "<notification id>|<channel>", notification, channel,
//	              payload: "<the notification as JSON>",
//	              status: "pending"|"sent"|"failed", attempts, next_attempt,
//	              created, updated, last_error}
//	outbox_claims {_id: "<outbox _id>|<attempts>|<generation>", entry, member,
//	              until, created}
//	members      {_id: "<member>", host, pid, since, renewed, expires, owned,
//	              scheduled, done}
//	layout_check {_id: "canary|...", at, text, n, x, list}   (embedded store only)
//
// A snapshot's point is what a report reads of it (monitor.Point: usage,
// saturation figures, each keyword's count, resident memory and CPU, each
// file system's use) as a line of ';'-separated fields (see pointText),
// about 150 bytes beside the few KiB of the snapshot, in its server's
// bucket of ten minutes (BucketLength); a figure the snapshot lacks is an empty field.
// Snapshots stored before points were kept have none, and Points reads
// their snapshots instead. In a rollup, the fields after keywords are the
// figures of snapshot schema version 2 as monitor.Rollup describes them,
// each a {peak, sum, n} like cpu; they and the keyword sums after sum and
// n are absent from rollups of version-1 snapshots and from rollups
// written before they were kept, which read as zero. A rollup holds at
// most one fs entry per file system the probe lists (16 at most), so it
// stays bounded.
//
// Times are BSON dates: UTC, to the millisecond. alert_state, silences and
// outbox are small and created on first use; only states other than ok are
// stored. layout_check holds the one document of the embedded store's
// start-up check (see Open).
//
// The _id of a result is its server and slot, the schedule's tick that asked
// for it (slot and member are absent from unscheduled results, whose _id
// holds their collector time, and from documents stored before slots), so
// writing a result twice stores it once, and so do two collectors that
// probe a server in one slot. A rollup is kept up to date by one upsert per write:
// $inc adds counts and sums (each keyword's count under keywords, with '%',
// '.' and '$' percent-escaped, as a field name cannot hold them), $min and
// $max move the matched-process range, and $max on the peak text keeps the
// highest reading together with the time and process counts of that
// reading. The text starts with the value and then the order (minus the
// time in milliseconds), each as a fixed-width key that sorts as the
// number does (see peakText), so the peak with the higher value wins, and
// on equal values the earliest. Rollups written before kept the peak as a
// document {value, order, at, procs_known, matched_total, procs: [{keyword,
// count}]} under peak, which compares the same way field by field; they
// still decode, and where a rollup has both, the greater wins. rolled_to_by,
// the newest result of each member (collector) folded in, and rolled_to, of
// any, move in the same update; a result found already stored is folded in
// again only when newer than its member's mark, which is the case after a
// write that stored it and failed before its rollup upkeep. So a write
// repeated after a failure (as package spool repeats it) counts nothing
// twice, and an interrupted write loses nothing, even when another member
// folded newer results of the server meanwhile (a failover). A rollup
// without rolled_to_by (written before it) is judged by rolled_to, which is
// still kept for collectors of earlier versions sharing the database.
//
// # Reads on FerretDB
//
// FerretDB v1.24 evaluates every filter but a lone _id outside SQLite, so
// reads that matter go by _id: Latest via the servers collection, and on an
// external FerretDB Rollups by one _id per server and period. On the
// embedded store the range reads (Rollups, Snapshots, Attempts, Points: one
// server over a time range, one range of _ids) and the reads by _id of
// Latest and LastFailure go to the SQLite file through
// embedded.Server.Scan, which is some twenty times faster; Open first checks
// that the file's layout is the one those reads expect, and reads through
// FerretDB when it is not.
//
// # Retention
//
// Prune deletes raw snapshots and attempts past Config.Retention, rollups
// past Config.RollupRetention, and expired silences. The daemon calls it
// every hour; a command run from a crontab can call PruneIfDue, which prunes
// only when the time recorded in <data_dir>/pruned-at is old enough. Sent
// and failed outbox entries go with OutboxPrune, at the notifier's pace.
package store
