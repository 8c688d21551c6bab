package monitor

import "time"

// OutboxStatus is where an outbox entry stands.
type OutboxStatus string

// The statuses of an outbox entry.
const (
	OutboxPending OutboxStatus = "pending" // not sent yet: due at NextAttempt
	OutboxSent    OutboxStatus = "sent"    // delivered; kept a while so a replay is dropped
	OutboxFailed  OutboxStatus = "failed"  // refused for good (a retry cannot help)
)

// An OutboxEntry is one notification waiting for, or done with, one channel.
type OutboxEntry struct {
	// ID is the notification's ID and the channel's name joined by "|":
	// queueing the same pair twice keeps it once.
	ID           string
	Notification string
	Channel      string
	// Payload is the notification as JSON; stores do not read it.
	Payload     []byte
	Status      OutboxStatus
	Attempts    int
	NextAttempt time.Time
	Created     time.Time
	Updated     time.Time
	LastError   string
}
