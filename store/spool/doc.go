// Package spool journals probe results on disk before they are written to
// the database, and writes them to it, in order, as soon as and whenever it
// answers: nothing handed to the spool is lost to a crash or an outage, and
// nothing waits on the database to hand results over. A Spool wraps any
// Writer (in the collector, a *store.Store); an outage is an error for
// which errors.Is(err, monitor.ErrUnavailable) holds.
//
// # Writing and draining
//
// The spool is a write-ahead journal: Write appends every result to the
// spool file and syncs it before it returns, and never waits for the
// writer; a background drainer writes the file to the writer in order,
// 5,000 results at a time, marks what it wrote and empties the file once
// it has caught up. Before its first write, and after an outage, it pings a
// writer that can be pinged (a *store.Store), within a second, so a
// database that is down is found out fast. After an outage the drainer
// tries again 15 s later. Drain waits for the drainer (one-shot commands
// call it before they exit, briefly); Replay makes it try now. A line that
// is not a valid result, or that the writer refuses for itself (not an
// outage), is logged with its line number, copied to rejected.jsonl and
// skipped. Write returns an error only for results kept nowhere: invalid
// ones, ones past the cap (ErrSpoolFull), and ones past the memory cap
// while the file cannot be written (a full disk: up to 10,000 results wait
// in memory and go to the file first once it can be written again; the
// spool says so on every write meanwhile). Lost counts them; Health says
// what is wrong.
//
// # Files
//
// The spool lives in one directory (the collector uses <data_dir>/spool),
// created with mode 0700:
//
//   - results.jsonl: the spooled results, one JSON line each, appended and
//     synced to disk before Write returns;
//   - results.offset: how far replay got, as "<byte offset> <line number>";
//     once replay reaches the end, it is removed and results.jsonl emptied;
//   - rejected.jsonl: copies of the lines replay skipped.
//
// The spool survives restarts and is capped (Open's max); past the cap
// Write drops results with an error log.
//
// # Line format
//
// Each line is version 1 of a result, a snapshot or a failure, with the time
// in UTC to the millisecond and the snapshot in its wire form (package
// snapshot):
//
//	{"v":1,"server":"web1","at":"2024-05-01T10:17:00Z","duration_ms":812,"snapshot":{...}}
//	{"v":1,"server":"web2","at":"2024-05-01T10:17:00Z","duration_ms":5000,"err_kind":"timeout","err":"..."}
//
// A scheduled result also has "slot" (the schedule's tick, as "at") and, in
// a cluster, "member" (the collector that probed it); lines without them
// are unscheduled results of one collector.
//
// A line is read back strictly: an unknown field, trailing data or another
// version rejects it. A spool written by an earlier release of the
// collector replays as it is.
package spool
