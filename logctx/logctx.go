// Package logctx carries the ids of what the daemon is working on (an HTTP
// request, a queue message, a workflow task) in a context.Context, and adds
// them to every log line written with that context: wrap the daemon's
// handler with NewHandler and log with the *Context methods of
// slog.Logger. Function calls copy them into their log records too
// (host.Call.Origin), so that `sluice fn logs` says which request or
// message a guest's line belongs to.
//
// It also carries the W3C trace context of a call (trace.go: WithTrace,
// Continue), whose trace and span ids go on the same lines.
package logctx

import (
	"context"
	"log/slog"
)

// Keys of the ids the daemon puts on contexts (README.md, "Logs").
const (
	// RequestID is an HTTP request's id: its X-Request-Id header, or one
	// the daemon made up.
	RequestID = "request_id"
	// Trigger and Sequence name a message a queue (or timer) trigger
	// delivers: the trigger and the message's sequence in its topic. A
	// redelivered message keeps both.
	Trigger  = "trigger"
	Sequence = "sequence"
	// Invocation and Task name the workflow invocation and the task that
	// call a function.
	Invocation = "invocation"
	Task       = "task"
)

type ctxKey struct{}

// With returns a copy of ctx that also carries attrs. An attribute
// replaces one of the same key that ctx carries already.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	return context.WithValue(ctx, ctxKey{}, merge(Attrs(ctx), attrs, 0, nil))
}

// merge returns old without the attributes whose key add has or drop
// names, then add, in a new slice with room for more.
func merge(old, add []slog.Attr, room int, drop func(key string) bool) []slog.Attr {
	all := make([]slog.Attr, 0, len(old)+len(add)+room)
	for _, a := range old {
		if !hasKey(add, a.Key) && (drop == nil || !drop(a.Key)) {
			all = append(all, a)
		}
	}
	return append(all, add...)
}

// Attrs returns the attributes ctx carries, in the order they were added.
// The slice is shared: do not modify it.
func Attrs(ctx context.Context) []slog.Attr {
	switch v := ctx.Value(ctxKey{}).(type) {
	case []slog.Attr:
		return v
	case *traceCtx:
		return v.attrs
	}
	return nil
}

func hasKey(attrs []slog.Attr, key string) bool {
	for _, a := range attrs {
		if a.Key == key {
			return true
		}
	}
	return false
}

// NewHandler returns a handler that puts the attributes of a record's
// context (With) first in the record, then passes it to h. An attribute
// the log call sets itself wins over the context's of the same key, so
// that a line never names a key twice. Attributes added with a logger's
// With are not checked; after WithGroup the context's attributes land in
// the group. Wrapping a handler NewHandler returned adds nothing.
func NewHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*handler); ok {
		return h
	}
	return &handler{h}
}

type handler struct{ inner slog.Handler }

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	attrs := Attrs(ctx)
	if len(attrs) == 0 {
		return h.inner.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	for _, a := range attrs {
		if !recordHas(r, a.Key) {
			out.AddAttrs(a)
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{h.inner.WithAttrs(attrs)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h.inner.WithGroup(name)}
}

func recordHas(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}
