package logctx

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// the spec's example
const (
	specTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	specTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	specParentID    = "00f067aa0ba902b7"
)

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
		flags    byte
	}{
		{"the spec's example", specTraceparent, true, FlagSampled},
		{"not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, 0},
		{"unknown flags are dropped", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", true, FlagSampled},
		{"a later version, longer", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next", true, FlagSampled},
		{"a later version, as long", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, 0},

		{"empty", "", false, 0},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, 0},
		{"version 00, longer", specTraceparent + "-", false, 0},
		{"version 00, shorter", specTraceparent[:54], false, 0},
		{"a later version, not followed by a dash", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", false, 0},
		{"uppercase trace id", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false, 0},
		{"uppercase version", "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, 0},
		{"uppercase flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", false, 0},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false, 0},
		{"zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false, 0},
		{"not hex", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false, 0},
		{"wrong separators", "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", false, 0},
		{"a short trace id", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01a", false, 0},
		{"spaces around", " " + specTraceparent[:54], false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseTraceparent(tc.in)
			if ok != tc.ok {
				t.Fatalf("ParseTraceparent(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if !ok {
				if !got.IsZero() {
					t.Fatalf("an invalid header gave %+v", got)
				}
				return
			}
			if hex.EncodeToString(got.TraceID[:]) != tc.in[3:35] || hex.EncodeToString(got.SpanID[:]) != tc.in[36:52] || got.Flags != tc.flags {
				t.Fatalf("ParseTraceparent(%q) = %s, want its ids and flags %02x", tc.in, got, tc.flags)
			}
		})
	}
}

func TestContinue(t *testing.T) {
	t.Run("a valid traceparent", func(t *testing.T) {
		c := Continue(specTraceparent, "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7")
		if hex.EncodeToString(c.TraceID[:]) != specTraceID || hex.EncodeToString(c.Parent[:]) != specParentID {
			t.Fatalf("Continue = %s parent %x: want trace %s, parent %s", c, c.Parent, specTraceID, specParentID)
		}
		if hex.EncodeToString(c.SpanID[:]) == specParentID || c.SpanID == [8]byte{} {
			t.Fatalf("the call's span id %x: want a new one", c.SpanID)
		}
		if c.State != "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7" || c.Flags != FlagSampled {
			t.Fatalf("state %q flags %02x: want the caller's, unchanged", c.State, c.Flags)
		}
		if got := c.Traceparent(); got[:36] != specTraceparent[:36] || got[52:] != "-01" {
			t.Fatalf("traceparent %q", got)
		}
	})
	for _, tc := range []struct{ name, traceparent, tracestate string }{
		{"none", "", ""},
		{"an invalid traceparent and its tracestate", "00-zz", "a=b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := Continue(tc.traceparent, tc.tracestate), Continue(tc.traceparent, tc.tracestate)
			if a.IsZero() || a.SpanID == [8]byte{} || a.Parent != [8]byte{} || a.State != "" || a.Flags != FlagSampled {
				t.Fatalf("Continue(%q, %q) = %+v: want a new sampled trace, no parent, no state", tc.traceparent, tc.tracestate, a)
			}
			if a.TraceID == b.TraceID {
				t.Fatalf("two new traces share the id %x", a.TraceID)
			}
		})
	}
}

func TestChild(t *testing.T) {
	root := NewTrace()
	root.State = "k=v"
	c := root.Child()
	if c.TraceID != root.TraceID || c.Parent != root.SpanID || c.SpanID == root.SpanID || c.State != "k=v" {
		t.Fatalf("child %+v of %+v", c, root)
	}
	back, ok := ParseTraceparent(c.Traceparent())
	if !ok || back.TraceID != c.TraceID || back.SpanID != c.SpanID || back.Flags != c.Flags {
		t.Fatalf("the child's traceparent %q parses as %+v, %v", c.Traceparent(), back, ok)
	}
}

func TestParseTracestate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
		{strings.Repeat("a", MaxTracestate), strings.Repeat("a", MaxTracestate)},
		{strings.Repeat("a", MaxTracestate+1), ""},
		{"a=b\r\nInjected: yes", ""},
		{"a=\x00", ""},
		{"a=é", ""},
	} {
		if got := ParseTracestate(tc.in); got != tc.want {
			t.Errorf("ParseTracestate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	h := map[string]string{"Traceparent": "b", "other": "c"}
	if got := HeaderValue(h, TraceparentHeader); got != "b" {
		t.Fatalf("HeaderValue = %q, want the value of Traceparent", got)
	}
	h[TraceparentHeader] = "a"
	if got := HeaderValue(h, TraceparentHeader); got != "a" {
		t.Fatalf("HeaderValue = %q, want the value of the exact key", got)
	}
	if got := HeaderValue(nil, TraceparentHeader); got != "" {
		t.Fatalf("HeaderValue(nil) = %q", got)
	}
	if (Trace{}).Header() != nil {
		t.Fatal("no trace has headers")
	}
	tr := Continue(specTraceparent, "a=b")
	if got := tr.Header(); len(got) != 2 || got[TraceparentHeader] != tr.Traceparent() || got[TracestateHeader] != "a=b" {
		t.Fatalf("Header() = %v", got)
	}
}

func TestWithTraceLogs(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}})))
	ctx := With(context.Background(), slog.String(RequestID, "r1"))
	if _, ok := TraceFrom(ctx); ok {
		t.Fatal("a context without a trace has one")
	}
	tr := Continue(specTraceparent, "")
	ctx = WithTrace(ctx, tr)
	if got, ok := TraceFrom(ctx); !ok || got != tr {
		t.Fatalf("TraceFrom = %+v, %v; want %+v", got, ok, tr)
	}
	l.InfoContext(ctx, "hi")
	want := "level=INFO msg=hi request_id=r1 trace_id=" + specTraceID + " span_id=" + hex.EncodeToString(tr.SpanID[:]) + " parent_span_id=" + specParentID + "\n"
	if buf.String() != want {
		t.Fatalf("got  %q\nwant %q", buf.String(), want)
	}
	// a child replaces the ids; a first span has no parent
	buf.Reset()
	root := NewTrace()
	l.InfoContext(WithTrace(ctx, root), "hi")
	want = "level=INFO msg=hi request_id=r1 trace_id=" + hex.EncodeToString(root.TraceID[:]) + " span_id=" + hex.EncodeToString(root.SpanID[:]) + "\n"
	if buf.String() != want {
		t.Fatalf("got  %q\nwant %q", buf.String(), want)
	}
}

// TestWithTraceAndAttrs: WithTrace adds attributes as With does (one of
// a key ctx carries replaces it), and what is added after it keeps its
// trace and its attributes.
func TestWithTraceAndAttrs(t *testing.T) {
	ctx := With(context.Background(), slog.String(RequestID, "r1"), slog.String(Trigger, "old"))
	tr := NewTrace()
	ctx = WithTrace(ctx, tr, slog.String(Trigger, "orders"), slog.Uint64(Sequence, 42))
	keys := func(ctx context.Context) string {
		var b strings.Builder
		for _, a := range Attrs(ctx) {
			fmt.Fprintf(&b, "%s=%s ", a.Key, a.Value)
		}
		return b.String()
	}
	ids := "trace_id=" + hex.EncodeToString(tr.TraceID[:]) + " span_id=" + hex.EncodeToString(tr.SpanID[:]) + " "
	if got, want := keys(ctx), "request_id=r1 trigger=orders sequence=42 "+ids; got != want {
		t.Fatalf("attrs %q, want %q", got, want)
	}
	if got, ok := TraceFrom(ctx); !ok || got != tr {
		t.Fatalf("TraceFrom = %+v, %v; want %+v", got, ok, tr)
	}
	// wrapped by other contexts, and by With
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	inner = With(inner, slog.String(Task, "t1"))
	if got, want := keys(inner), "request_id=r1 trigger=orders sequence=42 "+ids+"task=t1 "; got != want {
		t.Fatalf("attrs after With %q, want %q", got, want)
	}
	if got, ok := TraceFrom(inner); !ok || got != tr {
		t.Fatalf("TraceFrom after With = %+v, %v; want %+v", got, ok, tr)
	}
	// a child's ids replace the parent's
	child := tr.Child()
	cc := WithTrace(inner, child)
	want := "request_id=r1 trigger=orders sequence=42 task=t1 trace_id=" + hex.EncodeToString(child.TraceID[:]) +
		" span_id=" + hex.EncodeToString(child.SpanID[:]) + " parent_span_id=" + hex.EncodeToString(tr.SpanID[:]) + " "
	if got := keys(cc); got != want {
		t.Fatalf("attrs of the child %q, want %q", got, want)
	}
	if got, _ := TraceFrom(cc); got != child {
		t.Fatalf("TraceFrom of the child = %+v, want %+v", got, child)
	}
}

// FuzzTraceparent: whatever a client sends, parsing never panics, what is
// accepted is formatted back as the version 00 header of the same ids,
// and a call always gets a valid span of its own.
func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{
		specTraceparent,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"", "00", "00-", "not a traceparent", "\x00\xff",
	} {
		f.Add(s, "rojo=00f067aa0ba902b7")
	}
	f.Fuzz(func(t *testing.T, traceparent, tracestate string) {
		p, ok := ParseTraceparent(traceparent)
		if ok {
			if p.TraceID == [16]byte{} || p.SpanID == [8]byte{} {
				t.Fatalf("%q accepted with a zero id", traceparent)
			}
			out := p.Traceparent()
			if out[:52] != "00"+traceparent[2:52] {
				t.Fatalf("%q formatted back as %q", traceparent, out)
			}
			if back, ok := ParseTraceparent(out); !ok || back != p {
				t.Fatalf("%q -> %q -> %+v, %v", traceparent, out, back, ok)
			}
		}
		c := Continue(traceparent, tracestate)
		back, valid := ParseTraceparent(c.Traceparent())
		if !valid || back.TraceID != c.TraceID || back.SpanID != c.SpanID {
			t.Fatalf("Continue(%q) made %q, which does not parse", traceparent, c.Traceparent())
		}
		if ParseTracestate(c.State) != c.State || strings.ContainsAny(c.State, "\r\n") {
			t.Fatalf("Continue passes on tracestate %q", c.State)
		}
		if ok && p.TraceID != c.TraceID {
			t.Fatalf("Continue(%q) left the trace: %s", traceparent, c)
		}
	})
}

// BenchmarkCallSpan: what tracing adds to a call: its span from the
// caller's header, carried in the context with its log ids, and the
// traceparent a guest or a published message gets.
func BenchmarkCallSpan(b *testing.B) {
	ctx := With(context.Background(), slog.String(RequestID, "r1"))
	b.ReportAllocs()
	for b.Loop() {
		tc := Continue(specTraceparent, "rojo=00f067aa0ba902b7")
		c := WithTrace(ctx, tc)
		got, _ := TraceFrom(c)
		_ = got.Traceparent()
	}
}
