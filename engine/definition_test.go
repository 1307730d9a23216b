package engine

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestInvalidDefinitions")

// deployed is what the golden definitions may name.
var deployed = Known{
	Function: func(fn string) bool {
		return fn == "wfguest" || fn == "validate-order" || fn == "price" || fn == "manual-review" || fn == "auto-approve"
	},
	Workflow: func(wf string) bool { return wf == "child" },
}

// TestInvalidDefinitions checks the message of every bad definition in
// testdata/invalid against its golden file (NAME.yaml -> NAME.err).
// go test ./engine -run TestInvalidDefinitions -update rewrites them.
func TestInvalidDefinitions(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test definitions: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseDefinition("", src, deployed)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			got := strings.TrimPrefix(err.Error(), "invalid: ") + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Fatalf("message:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestValidDefinitions(t *testing.T) {
	cases := map[string]string{
		"design-example": `
apiVersion: sluice/v1
kind: Workflow
name: order
output: ${ tasks.route.output }
tasks:
  validate:
    run: validate-order            # a deployed function
    inputs: ${ input }
  price:
    run: price
    inputs: { items: "${ tasks.validate.output.items }" }
    requires: [validate]
    retry: { max: 3, backoff: 200ms }
    timeout: 5s
  route:
    run: if                        # a built-in control-flow task
    requires: [price]
    inputs:
      if: ${ tasks.price.output.total > 100 }
      then: { run: manual-review, inputs: "${ tasks.price.output }" }
      else: { run: auto-approve }
`,
		"transitive-reference": `
apiVersion: sluice/v1
kind: Workflow
name: chain
tasks:
  a: { run: noop }
  b: { run: noop, requires: [a] }
  c: { run: noop, requires: [b], inputs: "${ tasks.a.output }" }
`,
		"nested-loops": `
apiVersion: sluice/v1
kind: Workflow
name: nested
tasks:
  outer:
    run: foreach
    inputs:
      foreach: ${ input }
      do:
        run: repeat
        inputs: { times: 2, do: { run: noop, inputs: "${ [item, index, prev] }" } }
`,
		"let-and-closures": `
apiVersion: sluice/v1
kind: Workflow
name: closures
tasks:
  a: { run: noop, inputs: "${ let xs = filter(input, # > 1); map(xs, # * 2) }" }
`,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			d, err := ParseDefinition("", []byte(src), deployed)
			if err != nil {
				t.Fatal(err)
			}
			if d.Name == "" || len(d.order) != len(d.tasks) {
				t.Fatalf("definition %+v", d)
			}
		})
	}
	// The name given at create must match the file's.
	if _, err := ParseDefinition("other", []byte(cases["transitive-reference"]), deployed); err == nil || !strings.Contains(err.Error(), `names workflow "chain", not "other"`) {
		t.Fatalf("name mismatch: %v", err)
	}
	// Without name: in the file, the create name is used.
	d, err := ParseDefinition("given", []byte("apiVersion: sluice/v1\nkind: Workflow\ntasks:\n  a: { run: noop }\n"), Known{})
	if err != nil || d.Name != "given" {
		t.Fatalf("%v %+v", err, d)
	}
}

// FuzzParseDefinition: no input makes the parser panic, and whatever it
// accepts has a topological order covering every task. Its seeds are the
// golden bad definitions (an alias inside its own value, an alias bomb,
// nesting too deep among them) and a few good ones.
//
//	go test -run '^$' -fuzz '^FuzzParseDefinition$' -fuzztime 10s ./engine/
func FuzzParseDefinition(f *testing.F) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Add([]byte("apiVersion: sluice/v1\nkind: Workflow\nname: x\ntasks:\n  a: { run: foreach, inputs: { foreach: \"${ input }\", do: { run: if, inputs: { if: \"${ item > 1 }\", then: { run: noop } } } } }\n"))
	f.Add([]byte("apiVersion: sluice/v1\nkind: Workflow\nname: x\nbase: &b { run: noop, inputs: \"${ input?.a ?? 1 }\" }\ntasks:\n  a: *b\n  b: { <<: *b, requires: [a] }\n"))
	f.Add([]byte("apiVersion: sluice/v1\nkind: Workflow\nname: x\ntasks:\n  a: { run: noop, inputs: " + strings.Repeat("{a: ", 120) + "1" + strings.Repeat("}", 120) + " }\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := ParseDefinition("", src, Known{})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if len(d.order) != len(d.tasks) {
			t.Fatalf("order %v for %d tasks", d.order, len(d.tasks))
		}
	})
}

// TestUses: what a definition names, in static tasks and in tasks given
// as data, is what a delete must not remove from under it.
func TestUses(t *testing.T) {
	src := `
apiVersion: sluice/v1
kind: Workflow
name: uses
tasks:
  a: { run: price }
  b:
    run: if
    requires: [a]
    inputs:
      if: ${ tasks.a.output > 1 }
      then: { run: manual-review }
      else: { run: workflow, inputs: { workflow: child } }
  c:
    run: foreach
    inputs: { foreach: [1, 2], do: { run: price } }
  d: { run: workflow, inputs: { workflow: uses } }
`
	d, err := ParseDefinition("", []byte(src), deployed)
	if err != nil {
		t.Fatal(err)
	}
	fns, wfs := d.Uses()
	if got := strings.Join(fns, ","); got != "manual-review,price" {
		t.Errorf("functions %q, want manual-review,price", got)
	}
	if got := strings.Join(wfs, ","); got != "child,uses" {
		t.Errorf("workflows %q, want child,uses", got)
	}
}
