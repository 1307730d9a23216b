package host

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/testutil"
)

// peekWAT answers each call with the 64 bytes at a place in its memory,
// as they were before the call, then writes its input there: at 2048, or
// in a page it grows its memory by when the input starts with "g".
const peekWAT = `(module
  (import "sluice" "output" (func $output (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param $p i32) (param $n i32) (result i32)
    (local $at i32)
    (local.set $at (i32.const 2048))
    (if (i32.and (i32.gt_u (local.get $n) (i32.const 0))
                 (i32.eq (i32.load8_u (local.get $p)) (i32.const 0x67)))
      (then
        (drop (memory.grow (i32.const 3)))
        (local.set $at (i32.const 196608))))
    (call $output (local.get $at) (i32.const 64))
    (memory.copy (local.get $at) (local.get $p) (local.get $n))
    (i32.const 0)))`

// A linear memory recycled from a closed instance (memory.go) holds
// nothing of it: every cold instance sees zeros where the one before it
// wrote, in its first page and in pages it grew, with snapshots and
// without.
func TestRecycledMemoryIsZero(t *testing.T) {
	for _, snapshots := range []bool{true, false} {
		t.Run(fmt.Sprintf("snapshots=%v", snapshots), func(t *testing.T) {
			h, err := New(context.Background(), NewConfig().WithCacheDir(sharedCache).WithSnapshots(snapshots))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close(context.Background())
			f, err := h.Load(context.Background(), Spec{Name: "peek", Version: 1, Limits: Limits{Concurrency: 2}}, testutil.WAT(t, peekWAT))
			if err != nil {
				t.Fatal(err)
			}
			zero := make([]byte, 64)
			var ins []string
			for k := range 10 {
				ins = append(ins, fmt.Sprintf("secret %d of an earlier call", k))
			}
			for k := range 10 {
				ins = append(ins, fmt.Sprintf("g: secret %d in a grown page", k), fmt.Sprintf("secret %d after a grown memory", k))
			}
			for _, in := range ins {
				res, err := f.InvokeCold(context.Background(), Call{Input: []byte(in)})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(res.Output, zero) {
					t.Fatalf("call %q: a fresh instance saw %q", in, res.Output)
				}
			}
			// a warm instance keeps its memory: the same call sees what
			// the call before it wrote
			mustInvoke(t, f, "kept")
			if got := mustInvoke(t, f, "again"); !bytes.HasPrefix([]byte(got), []byte("kept")) {
				t.Fatalf("a warm instance lost its memory: %q", got)
			}
		})
	}
}

// The janitor gives the kept memories back once no instance was made
// between two of its looks.
func TestMemPoolDropIdle(t *testing.T) {
	var p memPool
	p.put(&pooledMemory{buf: make([]byte, 0, pageSize)})
	if m := p.get(pageSize); m == nil {
		t.Fatal("a kept memory was not given back")
	} else {
		p.put(m)
	}
	if n := p.dropIdle(); n != 0 {
		t.Fatalf("dropped %d bytes right after a use", n)
	}
	if n := p.dropIdle(); n != pageSize || p.get(pageSize) != nil {
		t.Fatalf("dropped %d bytes after an idle period, want %d and nothing kept", n, pageSize)
	}
}
