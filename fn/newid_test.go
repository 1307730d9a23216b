package fn

import (
	"strconv"
	"strings"
	"testing"
)

// TestNewIDs: ids are the process's prefix and a counter in base 36, and
// no two are alike.
func TestNewIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 5000 {
		id := NewID()
		prefix, n, ok := strings.Cut(id, "-")
		if !ok || prefix != idPrefix || len(prefix) != 12 {
			t.Fatalf("id %q: want %s-<counter>", id, idPrefix)
		}
		if _, err := strconv.ParseUint(n, 36, 64); err != nil {
			t.Fatalf("id %q: counter: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
	}
}

// idSink keeps BenchmarkNewID's ids alive, as a caller's are.
var idSink string

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		idSink = NewID()
	}
}
