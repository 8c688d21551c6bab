// Package alerts holds alert evaluation and lifecycle: the rules that judge
// each round's results (monitor.Result), the states they move through
// (monitor.AlertState: ok, pending, firing, resolved), silences, and the
// Notification digest of each round that package notify delivers.
//
// Evaluate is pure: one result, the previous states and the clock in, the
// next states and the alerts to notify out. An Engine runs it over a round
// and keeps states and silences in a StateStore (implemented by package
// store) so that a restart sends no duplicates.
package alerts
