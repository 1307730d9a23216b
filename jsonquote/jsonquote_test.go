package jsonquote

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// encodingJSON is what encoding/json writes for s, without HTML escapes.
func encodingJSON(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

var seeds = []string{"", "plain", `"q" \ /`, "\x00\x01\x08\x0c\x1f\x7f\t\r\n", "<&>", "\u2028\u2029\u2027", "é😀", "\xff", "\xe2\x80", "\xed\xa0\x80", "\xc0\xaf", `\u00e9`}

// TestAppendString: the bytes are encoding/json's, for escapes, line
// separators and invalid UTF-8.
func TestAppendString(t *testing.T) {
	for _, s := range seeds {
		if got, want := string(AppendString([]byte("x"), s)), "x"+encodingJSON(t, s); got != want {
			t.Errorf("AppendString(%q) = %s, encoding/json writes %s", s, got[1:], want[1:])
		}
		if got, want := string(Append(nil, []byte(s))), encodingJSON(t, s); got != want {
			t.Errorf("Append(%q) = %s, encoding/json writes %s", s, got, want)
		}
	}
}

// FuzzAppendString: for any bytes, what encoding/json writes; and Len
// its length, for UTF-8.
//
//	go test -run '^$' -fuzz '^FuzzAppendString$' -fuzztime 10s ./jsonquote/
func FuzzAppendString(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, want := string(AppendString(nil, s)), encodingJSON(t, s)
		if got != want {
			t.Fatalf("AppendString(%q) = %s, encoding/json writes %s", s, got, want)
		}
		if utf8.ValidString(s) && Len([]byte(s)) != len(got) {
			t.Fatalf("Len(%q) = %d, Append writes %d bytes", s, Len([]byte(s)), len(got))
		}
	})
}
