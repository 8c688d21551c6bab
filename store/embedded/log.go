package embedded

import (
	"context"
	"log/slog"
	"strings"
)

// minLevel passes on records at level min and above. It applies WithAttrs
// and WithGroup only when a record passes: FerretDB derives a logger per
// request, and eager formatting of attributes that are then never logged
// cost a tenth of the write path.
type minLevel struct {
	h   slog.Handler
	min slog.Level
	ops []func(slog.Handler) slog.Handler
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error {
	h := m.h
	for _, op := range m.ops {
		h = op(h)
	}
	return h.Handle(ctx, r)
}

func (m minLevel) with(op func(slog.Handler) slog.Handler) minLevel {
	m.ops = append(m.ops[:len(m.ops):len(m.ops)], op)
	return m
}

func (m minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return m.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return m.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

// ferretLogs drops FerretDB's dumps of failed responses: twenty lines of
// wire protocol for an error the store reports itself, in one line, to
// whoever asked (the refusal of endSessions, which FerretDB v1.24 lacks and
// the driver sends on every Disconnect, among them). FerretDB's other
// warnings pass.
type ferretLogs struct{ h slog.Handler }

func (f ferretLogs) Enabled(ctx context.Context, l slog.Level) bool { return f.h.Enabled(ctx, l) }

func (f ferretLogs) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "Response header: ") || strings.HasPrefix(r.Message, "Response message:") {
		return nil
	}
	return f.h.Handle(ctx, r)
}

func (f ferretLogs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ferretLogs{f.h.WithAttrs(attrs)}
}

func (f ferretLogs) WithGroup(name string) slog.Handler { return ferretLogs{f.h.WithGroup(name)} }
