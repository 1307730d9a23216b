package host

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
)

// boundedSink checks what the host emits of a guest's logs: every line
// and every call's records within the per-call bounds, whatever the guest
// passed to the imports.
type boundedSink struct {
	mu  sync.Mutex
	bad string
}

func (s *boundedSink) Emit(recs []Record) {
	total := 0
	for _, r := range recs {
		total += len(r.Message) + recordCost
		if len(r.Message) > maxLineBytes+256 {
			s.fail("a record of " + FormatBytes(uint64(len(r.Message))))
		}
		switch r.Level {
		case "debug", "info", "warn", "error":
		default:
			s.fail("a record at level " + r.Level)
		}
	}
	if total > maxLogBytesPerCall+maxLineBytes+2*recordCost {
		s.fail("a call's records of " + FormatBytes(uint64(total)))
	}
}

func (s *boundedSink) fail(what string) {
	s.mu.Lock()
	if s.bad == "" {
		s.bad = what
	}
	s.mu.Unlock()
}

// abiOp encodes one record of the abicalls guest's input.
func abiOp(op byte, a, b, c, d uint32) []byte {
	rec := []byte{op}
	for _, v := range []uint32{a, b, c, d} {
		rec = binary.LittleEndian.AppendUint32(rec, v)
	}
	return rec
}

// FuzzABI drives the host's side of the guest ABI (sluice.output, fail,
// log and meta_get, and WASI fd_write) with whatever pointers, lengths and
// levels a guest may pass. Each call either succeeds or fails with a
// one-line CallError of a guest's kind; the host never panics, keeps its
// log bounds, and the same function answers the next call.
func FuzzABI(f *testing.F) {
	const in = 65536 // where abicalls puts its input
	huge := ^uint32(0)
	seeds := [][]byte{
		abiOp(0, in+17, 5, 0, 0),   // output a slice of the input
		abiOp(0, huge-3, 8, 0, 0),  // output past the end of memory
		abiOp(0, 0, huge, 0, 0),    // output of 4 GiB
		abiOp(1, 0, 8, 0, 1),       // fail with a message, return 1
		abiOp(1, huge, 1, 0, 1),    // fail's message out of bounds
		abiOp(2, huge, 0, 14, 0),   // log at level -1
		abiOp(2, 7, 29, 15, 0),     // log at an unknown level
		abiOp(2, 1, 0, huge, 0),    // log of 4 GiB
		abiOp(3, 0, 8, 200, 64),    // meta_get "function"
		abiOp(3, 0, 8, huge-2, 64), // meta_get into a buffer past the end
		abiOp(3, huge, 8, 200, 64), // meta_get's key out of bounds
		abiOp(3, 40, 5, 200, huge), // meta_get of a missing key, huge buffer
		abiOp(4, 1, 100, 1, 120),   // fd_write with an iovec at 100
		abiOp(4, 0, huge-4, 1, 0),  // fd_write's iovec out of bounds
		abiOp(4, 0, 100, huge, 0),  // fd_write of 4 G iovecs
		abiOp(5, 3, 0, 0, 0),       // grow the memory
		append(abiOp(5, 3, 0, 0, 0), abiOp(0, 8*65536-4, 4, 0, 0)...), // output at the grown end
		[]byte{2, 1},
		nil,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	sink := &boundedSink{}
	h, err := New(context.Background(), NewConfig().WithCacheDir(sharedCache).WithLogSink(sink))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close(context.Background()) })
	fn := load(f, h, "abicalls", Spec{})
	f.Fuzz(func(t *testing.T, input []byte) {
		_, err := fn.Invoke(context.Background(), Call{Input: input})
		if err != nil {
			var ce *CallError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *CallError", err, err)
			}
			known := false
			for _, kind := range []error{ErrTrap, ErrFunctionFailed, ErrOutputTooLarge, ErrMemoryLimit} {
				known = known || errors.Is(err, kind)
			}
			if !known || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line of a guest's kind", err)
			}
		}
		hello := append(abiOp(0, in+17, 5, 0, 0), "hello"...)
		res, err := fn.Invoke(context.Background(), Call{Input: hello})
		if err != nil || string(res.Output) != "hello" {
			t.Fatalf("the next call = %q, %v; want hello", res.Output, err)
		}
		sink.mu.Lock()
		bad := sink.bad
		sink.mu.Unlock()
		if bad != "" {
			t.Fatalf("the host emitted %s", bad)
		}
	})
}
