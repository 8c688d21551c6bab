// Package notify holds the alert channels and the outbox: a Notifier per
// channel (e-mail over SMTP, webhooks in Alertmanager's and the chat
// robots' formats) that sends one alerts.Notification as one message, and
// an Outbox that queues each notification for each channel in an
// OutboxStore (implemented by package store) and delivers it, retrying
// with backoff what failed, until it is sent or refused for good.
package notify
