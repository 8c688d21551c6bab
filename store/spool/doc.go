// Package spool keeps probe results on disk while the database is down, and
// writes them to it, in order, once it is back. A Spool wraps any Writer (in
// the collector, a *store.Store): Write passes results through to it, and
// keeps them in the spool instead when the writer reports an outage
// (errors.Is(err, monitor.ErrUnavailable)) or when earlier results still
// wait there.
//
// # Writing and replaying
//
// After an outage Write sends results straight to the spool for 15 s
// instead of waiting for the writer again on every round. Every Write that
// may try the writer first replays the spool in order, 5,000 results at a
// time, at most 4 such chunks; while results are left in the spool, its own
// results join the spool behind them, and the next Write goes on. Replay is
// the explicit drain: it replays the whole spool. A line that is not a valid
// result, or that the writer refuses for itself (not an outage), is logged
// with its line number, copied to rejected.jsonl and skipped. Write returns
// an error only for results kept nowhere: invalid ones, ones the writer
// refused, and ones the full spool could not take (ErrSpoolFull).
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
// A line is read back strictly: an unknown field, trailing data or another
// version rejects it. A spool written by an earlier release of the
// collector replays as it is.
package spool
