// Package alerts decides, from each round's snapshots and failed attempts,
// which alert rules of which servers fire, repeat or resolve, and keeps that
// state and the silences in a StateStore so restarts send no duplicates.
package alerts
