package host

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sluicehq/sluice/abi"
)

// Record is one line of a function's logs.
type Record struct {
	Time       time.Time `json:"time"`
	Function   string    `json:"function"`
	Version    int       `json:"version"`
	Invocation string    `json:"invocation"`
	// Origin names what made the call (Call.Origin), e.g. request_id for
	// an HTTP request. The records of one call share the map: do not
	// modify it.
	Origin map[string]string `json:"origin,omitempty"`
	// Stream is where the line came from: "stderr" or "stdout" (written by
	// the guest; stdout only for reactors, whose output goes through the
	// ABI), "log" (sluice.log), or "sluice" (the host, e.g. a failed call).
	Stream  string `json:"stream"`
	Level   string `json:"level"`
	Message string `json:"message"`
}

// LogSink receives the log records of every call, in call order per
// instance, at the end of each call. It must not block for long: it runs on
// the calling goroutine. The slice is reused after Emit returns: copy what
// you keep.
type LogSink interface {
	Emit(records []Record)
}

type discardSink struct{}

func (discardSink) Emit([]Record) {}

// Per-call log bounds: a guest that writes without end must not cost the
// host memory without end. Every record counts recordCost bytes besides
// its text against maxLogBytesPerCall, so that empty lines are not free
// (a guest writing only "\n" to stderr got the daemon OOM-killed in 12 s).
const (
	maxLogBytesPerCall = 64 << 10
	maxLineBytes       = 4 << 10
	stderrTailBytes    = 2 << 10
	// recordCost is what a record costs besides its text: a Record in
	// memory (about 150 bytes with its strings' headers) and its JSON line
	// in the log channel (about as much). At most 512 empty lines per call.
	recordCost = 128
)

// callLog collects one call's log records and keeps the tail of its stderr
// for error messages.
type callLog struct {
	records []Record
	bytes   int // the cost of the records kept
	// dropped and droppedBytes count the records over the limit and their
	// text; cut the bytes of lines over maxLineBytes.
	dropped, droppedBytes, cut int
	partial                    map[string]*bytes.Buffer // unfinished line per stream
	head                       []byte                   // first stderrTailBytes of stderr
	tail                       []byte                   // last stderrTailBytes of stderr
	meta                       Record                   // the fields every record of the call shares
	id                         func() string            // the call's id, made on first use
	origin                     []slog.Attr              // the call's origin, a map on first use
	used                       bool                     // anything written since reset
}

func (l *callLog) reset(fn string, version int, id func() string, origin []slog.Attr) {
	l.meta = Record{Function: fn, Version: version}
	l.id, l.origin = id, origin
	if !l.used {
		return
	}
	l.used = false
	l.records = l.records[:0]
	l.bytes, l.dropped, l.droppedBytes, l.cut = 0, 0, 0, 0
	for _, b := range l.partial {
		b.Reset()
	}
	l.head, l.tail = l.head[:0], l.tail[:0]
}

func (l *callLog) add(stream string, level abi.Level, msg string) {
	l.used = true
	l.fillMeta()
	cost := recordCost + len(msg)
	if l.bytes+cost > maxLogBytesPerCall {
		l.dropped++
		l.droppedBytes += len(msg)
		return
	}
	l.bytes += cost
	r := l.meta
	r.Time, r.Stream, r.Level, r.Message = time.Now(), stream, level.String(), msg
	l.records = append(l.records, r)
}

// fillMeta makes the call's id and origin map on the first record: most
// calls log nothing.
func (l *callLog) fillMeta() {
	if l.meta.Invocation == "" {
		l.meta.Invocation = l.id()
		l.meta.Origin = originMap(l.origin)
	}
}

// originMap turns a call's origin into a record's.
func originMap(attrs []slog.Attr) map[string]string {
	if len(attrs) == 0 {
		return nil
	}
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		m[a.Key] = a.Value.String()
	}
	return m
}

// write takes bytes a guest wrote to a stream and turns them into records,
// one per line.
func (l *callLog) write(stream string, p []byte) {
	l.used = true
	if stream == "stderr" {
		l.keepTail(p)
	}
	if l.partial == nil {
		l.partial = map[string]*bytes.Buffer{}
	}
	buf := l.partial[stream]
	if buf == nil {
		buf = &bytes.Buffer{}
		l.partial[stream] = buf
	}
	level := abi.LevelInfo
	if stream == "stderr" {
		level = abi.LevelWarn
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if room := maxLineBytes - buf.Len(); len(p) > room {
				l.cut += len(p) - room
				p = p[:room]
			}
			buf.Write(p)
			return
		}
		if room := maxLineBytes - buf.Len(); i > room {
			l.cut += i - room
			buf.Write(p[:room])
		} else {
			buf.Write(p[:i])
		}
		l.add(stream, level, strings.TrimRight(buf.String(), "\r"))
		buf.Reset()
		p = p[i+1:]
	}
}

func (l *callLog) keepTail(p []byte) {
	if room := stderrTailBytes - len(l.head); room > 0 {
		l.head = append(l.head, p[:min(room, len(p))]...)
	}
	if len(p) >= stderrTailBytes {
		l.tail = append(l.tail[:0], p[len(p)-stderrTailBytes:]...)
		return
	}
	if over := len(l.tail) + len(p) - stderrTailBytes; over > 0 {
		l.tail = append(l.tail[:0], l.tail[over:]...)
	}
	l.tail = append(l.tail, p...)
}

// flush ends unfinished lines and returns the call's records.
func (l *callLog) flush() []Record {
	for stream, buf := range l.partial {
		if buf.Len() > 0 {
			level := abi.LevelInfo
			if stream == "stderr" {
				level = abi.LevelWarn
			}
			l.add(stream, level, buf.String())
			buf.Reset()
		}
	}
	if l.dropped > 0 || l.cut > 0 {
		l.fillMeta()
		r := l.meta
		r.Time, r.Stream, r.Level = time.Now(), "sluice", "warn"
		var parts []string
		if l.dropped > 0 {
			parts = append(parts, fmt.Sprintf("log output over %s in one call (each line counts %d bytes besides its text): %d lines (%s) dropped",
				FormatBytes(maxLogBytesPerCall), recordCost, l.dropped, FormatBytes(uint64(l.droppedBytes))))
		}
		if l.cut > 0 {
			parts = append(parts, fmt.Sprintf("%s cut from lines over %s", FormatBytes(uint64(l.cut)), FormatBytes(maxLineBytes)))
		}
		r.Message = strings.Join(parts, "; ")
		l.records = append(l.records, r)
		l.dropped, l.droppedBytes, l.cut = 0, 0, 0
	}
	return l.records
}

// stderrSummary picks what best explains a failure from the head and tail
// of stderr: a Go panic or fatal error line if there is one, else the last
// non-empty lines, joined into one line.
func stderrSummary(head, tail []byte) string {
	for _, line := range strings.Split(string(head)+"\n"+string(tail), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
			return truncate(line, 300)
		}
	}
	text := strings.TrimSpace(string(tail))
	if text == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	var picked []string
	size := 0
	for i := len(lines) - 1; i >= 0 && len(picked) < 3; i-- {
		line := strings.TrimSpace(lines[i])
		if line == "" {
			continue
		}
		if size+len(line) > 300 && len(picked) > 0 {
			break
		}
		size += len(line)
		picked = append([]string{line}, picked...)
	}
	return truncate(strings.Join(picked, " | "), 300)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// logWriter is an io.Writer for a guest's stdout or stderr that feeds the
// current call's log. A pooled instance keeps one for its lifetime; the
// call it writes to changes with each call.
type logWriter struct {
	inst   *instance
	stream string
}

func (w logWriter) Write(p []byte) (int, error) {
	w.inst.log.write(w.stream, p)
	return len(p), nil
}
