package logctx

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	req := With(context.Background(), slog.String(RequestID, "abc-123"))
	msg := With(context.Background(), slog.String(Trigger, "greet"), slog.Uint64(Sequence, 42))
	tests := []struct {
		name string
		ctx  context.Context
		log  func(l *slog.Logger, ctx context.Context)
		want string
	}{
		{"no ids", context.Background(), func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "hi", "k", 1) },
			"level=INFO msg=hi k=1"},
		{"ids first", req, func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "hi", "k", 1) },
			"level=INFO msg=hi request_id=abc-123 k=1"},
		{"in order", msg, func(l *slog.Logger, ctx context.Context) { l.WarnContext(ctx, "failed") },
			"level=WARN msg=failed trigger=greet sequence=42"},
		{"the line's own attribute wins", msg, func(l *slog.Logger, ctx context.Context) { l.WarnContext(ctx, "failed", "trigger", "mine") },
			"level=WARN msg=failed sequence=42 trigger=mine"},
		{"a logger's With", req, func(l *slog.Logger, ctx context.Context) { l.With("component", "api").InfoContext(ctx, "hi") },
			"level=INFO msg=hi component=api request_id=abc-123"},
		{"a later With replaces", With(req, slog.String(RequestID, "def")), func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "hi") },
			"level=INFO msg=hi request_id=def"},
		{"added to", With(req, slog.String(Task, "price")), func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "hi") },
			"level=INFO msg=hi request_id=abc-123 task=price"},
		{"without a context", req, func(l *slog.Logger, ctx context.Context) { l.Info("hi") },
			"level=INFO msg=hi"},
		{"below the level", req, func(l *slog.Logger, ctx context.Context) { l.DebugContext(ctx, "hi") },
			""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			text := slog.NewTextHandler(&buf, &slog.HandlerOptions{
				ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey && len(groups) == 0 {
						return slog.Attr{}
					}
					return a
				},
			})
			// wrapped twice, as when a caller wraps a logger the daemon wraps again
			tc.log(slog.New(NewHandler(NewHandler(text))), tc.ctx)
			if got := strings.TrimSuffix(buf.String(), "\n"); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestWithKeepsParent(t *testing.T) {
	parent := With(context.Background(), slog.String(RequestID, "a"))
	_ = With(parent, slog.String(RequestID, "b"), slog.String(Task, "t"))
	if got := Attrs(parent); len(got) != 1 || got[0].Value.String() != "a" {
		t.Fatalf("the parent's attributes changed: %v", got)
	}
	if got := Attrs(context.Background()); got != nil {
		t.Fatalf("Attrs of a bare context = %v", got)
	}
}
