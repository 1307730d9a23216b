package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkValues runs a 1 KiB JSON document through three echo tasks on
// the memory log, one of them given a field of it by an expression: the
// engine's value path (store an output, pass it on, decode it for an
// expression, encode what it makes) without a broker's I/O.
func BenchmarkValues(b *testing.B) {
	r := newRigOn(b, memory, false)
	r.defs.put(b, `
apiVersion: sluice/v1
kind: Workflow
name: values
tasks:
  a: { run: echo-wat, inputs: "${ input }" }
  b: { run: echo-wat, requires: [a], inputs: "${ tasks.a.output.items }" }
  c: { run: echo-wat, requires: [a, b], inputs: "${ tasks.a.output }" }
`)
	var items []string
	for i := 0; len(strings.Join(items, ",")) < 1000; i++ {
		items = append(items, fmt.Sprintf(`{"id": %d, "price": %d.%02d, "name": "item %d"}`, i, i, i, i))
	}
	input := []byte(`{"order": 42, "items": [` + strings.Join(items, ", ") + `]}`)
	ctx := context.Background()
	b.SetBytes(int64(len(input)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		inv, err := r.e.Invoke(ctx, "values", input, InvokeOptions{Input: InputAuto})
		if err != nil {
			b.Fatal(err)
		}
		if inv, err = r.e.Wait(ctx, inv.ID); err != nil || inv.Status != StatusSucceeded {
			b.Fatalf("%v %+v", err, inv)
		}
	}
}
