package logctx

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"strings"
)

// W3C Trace Context (https://www.w3.org/TR/trace-context/), without a
// tracing library: a call continues the trace of what made it (an HTTP
// request's traceparent header, a queue message's), or starts one, and
// gets a span of its own. The trace and span ids go on every log line of
// the call (TraceID, SpanID), into the guest's metadata (traceparent) and
// onto the messages the call makes a trigger publish. tracestate is
// passed on unchanged: sluice adds no entry of its own.

// Header names, as HTTP and NATS headers carry them. HTTP headers are
// matched without regard to case; NATS headers are looked up as written
// here and, failing that, without regard to case (HeaderValue).
const (
	TraceparentHeader = "traceparent"
	TracestateHeader  = "tracestate"
)

// Keys of the trace context on log lines. ParentSpanID is absent on the
// first span of a trace.
const (
	TraceID      = "trace_id"
	SpanID       = "span_id"
	ParentSpanID = "parent_span_id"
)

// FlagSampled is the one trace flag of version 00: the caller may have
// recorded its span. sluice logs every call, so a trace it starts has it
// set; a trace it continues keeps the caller's choice.
const FlagSampled byte = 0x01

// MaxTracestate bounds the tracestate passed on. The spec asks
// propagators to keep at least 512 characters (32 list members) and lets
// them drop a longer value whole; 512 is that floor, so a client cannot
// make every message of a pipeline carry kilobytes it chose.
const MaxTracestate = 512

// traceparentLen is the length of a version 00 traceparent:
// "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex.
const traceparentLen = 55

// Trace is the trace context of one span: the trace it belongs to, its
// own id and its parent's. The zero Trace is no trace.
type Trace struct {
	TraceID [16]byte
	SpanID  [8]byte
	// Parent is the span that made this one: zero for a trace's first
	// span, and for a span parsed from a traceparent (that one is the
	// caller's span, whose parent is not told).
	Parent [8]byte
	// Flags are the trace flags (FlagSampled).
	Flags byte
	// State is the tracestate, passed on as it came (see
	// ParseTracestate).
	State string
}

// IsZero tells whether t is no trace.
func (t Trace) IsZero() bool { return t.TraceID == [16]byte{} }

// Traceparent formats t as a version 00 traceparent header:
// 00-TRACEID-SPANID-FLAGS, lowercase hex.
func (t Trace) Traceparent() string {
	var b [traceparentLen]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], t.TraceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], t.SpanID[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{t.Flags})
	return string(b[:])
}

// String returns the traceparent.
func (t Trace) String() string { return t.Traceparent() }

// Child returns a new span of t's trace whose parent is t: what a call
// made within t gets. Flags and State are kept.
func (t Trace) Child() Trace {
	c := t
	c.Parent = t.SpanID
	c.SpanID = newSpanID()
	return c
}

// NewTrace starts a trace: a random trace id, a first span, sampled.
func NewTrace() Trace {
	var t Trace
	for t.TraceID == [16]byte{} {
		binary.BigEndian.PutUint64(t.TraceID[:8], rand.Uint64())
		binary.BigEndian.PutUint64(t.TraceID[8:], rand.Uint64())
	}
	t.SpanID = newSpanID()
	t.Flags = FlagSampled
	return t
}

// Continue returns the span of a call made by whoever sent traceparent
// and tracestate (header values, "" if absent): a child of the caller's
// span if traceparent is valid, else the first span of a new trace. An
// invalid header is ignored, never an error: a call is not refused for
// its tracing.
func Continue(traceparent, tracestate string) Trace {
	parent, ok := ParseTraceparent(traceparent)
	if !ok {
		return NewTrace()
	}
	parent.State = ParseTracestate(tracestate)
	return parent.Child()
}

// ParseTraceparent parses a traceparent header as the spec says: version
// 00 is exactly 55 characters of lowercase hex and dashes; version ff is
// invalid; a later version is read for its version 00 fields (its first
// 55 characters, followed by the end or a dash). The trace id and the
// parent id must not be all zeros. The Trace returned is the caller's
// span (SpanID is the header's parent-id); only FlagSampled is kept of
// its flags, as the spec asks of flags a propagator does not know.
func ParseTraceparent(s string) (Trace, bool) {
	var t Trace
	if len(s) < traceparentLen {
		return t, false
	}
	var version [1]byte
	if !lowerHex(version[:], s[0:2]) || version[0] == 0xff || s[2] != '-' {
		return t, false
	}
	if version[0] == 0 && len(s) != traceparentLen {
		return t, false
	}
	if len(s) > traceparentLen && s[traceparentLen] != '-' {
		return t, false
	}
	var flags [1]byte
	if !lowerHex(t.TraceID[:], s[3:35]) || s[35] != '-' ||
		!lowerHex(t.SpanID[:], s[36:52]) || s[52] != '-' ||
		!lowerHex(flags[:], s[53:55]) {
		return Trace{}, false
	}
	if t.TraceID == [16]byte{} || t.SpanID == [8]byte{} {
		return Trace{}, false
	}
	t.Flags = flags[0] & FlagSampled
	return t, true
}

// ParseTracestate returns the tracestate to pass on: s as it came if it
// is at most MaxTracestate characters of printable ASCII (what the spec's
// list members are made of, with the commas and spaces between them),
// else "". sluice does not read the list members.
func ParseTracestate(s string) string {
	if len(s) > MaxTracestate {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return ""
		}
	}
	return s
}

// HeaderValue looks up key in a message's headers: as written, else
// without regard to case (NATS headers keep the case a publisher gave).
func HeaderValue(h map[string]string, key string) string {
	if v, ok := h[key]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// Header returns the headers that carry t on a message: traceparent, and
// tracestate if t has one. Nil for no trace.
func (t Trace) Header() map[string]string {
	if t.IsZero() {
		return nil
	}
	h := map[string]string{TraceparentHeader: t.Traceparent()}
	if t.State != "" {
		h[TracestateHeader] = t.State
	}
	return h
}

type traceKey struct{}

// traceCtx is what WithTrace adds to a context: the trace and the
// attributes of its lines, in one node. Its Value answers both keys
// with the node itself, a pointer, so that reading them allocates
// nothing; Attrs and TraceFrom know it.
type traceCtx struct {
	context.Context
	trace Trace
	attrs []slog.Attr
}

func (c *traceCtx) Value(key any) any {
	switch key.(type) {
	case traceKey, ctxKey:
		return c
	}
	return c.Context.Value(key)
}

// WithTrace returns a copy of ctx that carries t, and its ids for the log
// lines written with it (TraceID, SpanID, ParentSpanID), in place of
// those of a trace ctx carried already; and attrs, as With adds them.
// One call makes one node and one slice where With then WithTrace made
// two of each: a queue trigger makes one per message.
func WithTrace(ctx context.Context, t Trace, attrs ...slog.Attr) context.Context {
	all := merge(Attrs(ctx), attrs, 3, isTraceKey)
	// the ids' hex in one string
	var buf [64]byte
	ids := hex.AppendEncode(hex.AppendEncode(buf[:0], t.TraceID[:]), t.SpanID[:])
	if t.Parent != [8]byte{} {
		ids = hex.AppendEncode(ids, t.Parent[:])
	}
	s := string(ids)
	all = append(all, slog.String(TraceID, s[:32]), slog.String(SpanID, s[32:48]))
	if t.Parent != [8]byte{} {
		all = append(all, slog.String(ParentSpanID, s[48:]))
	}
	return &traceCtx{Context: ctx, trace: t, attrs: all}
}

// isTraceKey tells the keys of a trace's ids on log lines.
func isTraceKey(key string) bool { return key == TraceID || key == SpanID || key == ParentSpanID }

// TraceFrom returns the trace ctx carries (WithTrace).
func TraceFrom(ctx context.Context) (Trace, bool) {
	c, ok := ctx.Value(traceKey{}).(*traceCtx)
	if !ok {
		return Trace{}, false
	}
	return c.trace, !c.trace.IsZero()
}

func newSpanID() [8]byte {
	var id [8]byte
	for id == [8]byte{} {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// lowerHex decodes s, lowercase hex only, into dst (len(s) == 2*len(dst)).
func lowerHex(dst []byte, s string) bool {
	for i := range dst {
		hi, ok1 := hexDigit(s[2*i])
		lo, ok2 := hexDigit(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
