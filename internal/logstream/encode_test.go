package logstream

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
)

// decodeBoth decodes appendMessage's output and encoding/json's for the
// same message, failing t if either is not valid JSON.
func decodeBoth(t *testing.T, daemon string, recs []host.Record) (ours, theirs message) {
	t.Helper()
	b := appendMessage(nil, daemon, recs)
	if err := json.Unmarshal(b, &ours); err != nil {
		t.Fatalf("appendMessage wrote invalid JSON: %v\n%s", err, b)
	}
	ref, err := json.Marshal(message{Daemon: daemon, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ref, &theirs); err != nil {
		t.Fatal(err)
	}
	return ours, theirs
}

// TestAppendMessage: what a reader decodes from appendMessage's JSON is
// what it decodes from encoding/json's, for every field and for strings
// that need escapes (quotes, controls, invalid UTF-8, U+2028).
func TestAppendMessage(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 20, 30, 123456789, time.FixedZone("x", 5400))
	for _, tc := range []struct {
		name   string
		daemon string
		recs   []host.Record
	}{
		{"empty", "", nil},
		{"daemon only", "node-1", nil},
		{"records only", "", []host.Record{{Time: at, Function: "f", Message: "m"}}},
		{"full", "node-1", []host.Record{
			{Time: at, Function: "upper", Version: 3, Invocation: "c1", Origin: map[string]string{"trigger": "q", "sequence": "42", "request_id": "r"}, Stream: "log", Level: "info", Message: "upper-casing 1024 bytes"},
			{Time: at.UTC(), Function: "upper", Version: -1, Invocation: "c2", Origin: map[string]string{}, Stream: "stderr", Level: "error", Message: "two\nlines"},
		}},
		{"escapes", "d\"\\", []host.Record{{
			Time: at, Function: "f\x00\x1f\x7f", Invocation: "\t\r\b\f",
			Origin: map[string]string{"k\"ey": "v\\al\xff", "<&>": "\u2028\u2029"},
			Stream: "\xe2\x28\xa1", Level: "é€😀", Message: "\xed\xa0\x80 a surrogate, \xc0\xaf overlong",
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, theirs := decodeBoth(t, tc.daemon, tc.recs)
			if !reflect.DeepEqual(ours, theirs) {
				t.Errorf("decoded\n%+v\nwant (as from encoding/json)\n%+v", ours, theirs)
			}
		})
	}
}

// FuzzAppendMessage: for any strings, appendMessage writes valid JSON that
// decodes to what encoding/json's does.
func FuzzAppendMessage(f *testing.F) {
	f.Add("node-1", "upper", "c1", "trigger", "q", "log", "info", "upper-casing 1024 bytes", int64(1765016430123456789), 3)
	f.Add("\"", "\x00", "\xff", "\u2028", "<&>", "\\", "\t", "\xed\xa0\x80", int64(0), -1)
	f.Fuzz(func(t *testing.T, daemon, function, invocation, key, value, stream, level, msg string, nanos int64, version int) {
		at := time.Unix(0, nanos) // years 1677-2262: all encode
		recs := []host.Record{{Time: at, Function: function, Version: version, Invocation: invocation,
			Origin: map[string]string{key: value, value: key}, Stream: stream, Level: level, Message: msg}}
		ours, theirs := decodeBoth(t, daemon, recs)
		if !reflect.DeepEqual(ours, theirs) {
			t.Errorf("decoded\n%+v\nwant (as from encoding/json)\n%+v", ours, theirs)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	recs := make([]host.Record, 100)
	for i := range recs {
		recs[i] = host.Record{Time: time.Now(), Function: "upper", Version: 3, Invocation: "0123456789abcdefghij",
			Origin: map[string]string{"trigger": "jobs", "sequence": "123456", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			Stream: "log", Level: "info", Message: "upper-casing 1024 bytes"}
	}
	b.Run("appendMessage", func(b *testing.B) {
		var buf []byte
		for i := 0; i < b.N; i++ {
			buf = appendMessage(buf[:0], "node-1", recs)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := json.Marshal(message{Daemon: "node-1", Records: recs}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
