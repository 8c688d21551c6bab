// Package monitor holds the domain types that every part of the collector
// shares: a probe attempt and its Result, the Kind of a failure, the hourly
// and daily Rollup of a server, the AlertState of one rule of one server, a
// Silence and an OutboxEntry, with the errors that stores return.
//
// It imports only the standard library and the snapshot wire schema, so any
// package may use it without pulling in SSH, MongoDB or SMTP. The packages
// that keep these types (store), evaluate them (alerts), deliver them
// (alerts/notify) or show them (collector/report, collector/httpapi) each
// declare the small interface they need; none imports another for its types.
//
// Where things happen: collector/fleet turns an SSH probe into a Result,
// collector/round writes it to the store and hands it to the alerts, store
// turns it into documents and rollups, and alerts turns it into AlertStates
// and notifications.
package monitor
