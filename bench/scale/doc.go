// Package scale measures what one collector (one member of a cluster)
// costs at fleet scale: a simulated fleet of 10,000 servers, each one an
// SSH connection to a fake server in a process of its own that answers the
// probe protocol with a snapshot recorded by the real probe, so that the
// targets cost little and the collector does all its real work: SSH
// sessions, decoding and checking snapshots, journalling them in the spool
// and reading them back, the alert rules, keepalives on every kept
// connection, and writing results with their rollups to the database
// (FerretDB, a process of its own; measured on a sample, as FerretDB on
// SQLite cannot store 10,000 results a minute on this machine).
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/scale
//
// takes about three minutes on two cores. With -benchtime Nx (N > 1) the
// member runs N minutes, after a first pass of one (as go test does).
// BenchmarkMember10k reports the collector's CPU per snapshot, the cores it
// needs at one round a minute, and its peak memory per server, each with
// its ratio to the target; BenchmarkWarmRound1k the wall time of a warm
// round of 1,000 servers. TestFakeFleet, part of go test ./..., checks in
// a few seconds that the fake fleet still speaks the probe protocol.
package scale
