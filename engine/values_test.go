package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/jsonquote"
	"github.com/sluicehq/sluice/testutil"
)

// valueSamples are byte strings that a JSON round trip changes: every
// byte value, invalid UTF-8, numbers beyond float64, numbers written
// another way than Go writes them, odd spacing, keys out of order, null, a
// JSON string, nothing; and random ones of each kind.
func valueSamples(rng *rand.Rand) [][]byte {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	out := [][]byte{
		all, []byte("\xff\xfe\xfd"), []byte("caf\xc3"), []byte("12345678901234567890"), []byte("1e3"), []byte("1.50"),
		[]byte(" { \"b\" : 1 ,\n\t\"a\":[1e3, 1.50, 12345678901234567890, 0.10000000000000000000001] } "),
		[]byte(`{"z":1,"a":2}`), []byte("null"), []byte(`"hello"`), {}, []byte("\n"), []byte("<&> \u2028"),
		[]byte(`"\u00e9\ud83d\ude00"`), []byte("-0.0"), []byte("[1,2,3]\n\n"),
	}
	for i := 0; i < 6; i++ {
		b := make([]byte, rng.Intn(300))
		rng.Read(b)
		out = append(out, b)
		keys := []string{"x", "id", "amount", "a b"}
		var s strings.Builder
		s.WriteString(strings.Repeat(" ", rng.Intn(3)) + "{")
		for j, k := range rng.Perm(len(keys))[:1+rng.Intn(len(keys))] {
			if j > 0 {
				s.WriteString(strings.Repeat(" ", rng.Intn(2)) + ",")
			}
			fmt.Fprintf(&s, "%q:%s%d%s", keys[k], strings.Repeat(" ", rng.Intn(2)), rng.Int63(), []string{"", "0", ".50", "e2", "123456789"}[rng.Intn(5)])
		}
		s.WriteString("}")
		out = append(out, []byte(s.String()))
	}
	return out
}

const chain3 = `
apiVersion: sluice/v1
kind: Workflow
name: chain3
tasks:
  a: { run: echo-wat, inputs: "${ input }" }
  b: { run: echo-wat, requires: [a], inputs: "${ tasks.a.output }" }
  c: { run: echo-wat, requires: [b], inputs: "${ tasks.b.output }" }
`

// TestValuesKeepTheirBytes passes random byte strings through a chain of
// three function tasks (each echoing its input): they arrive at the last
// task, and as the invocation's output, unchanged; as a replay reads them
// too; and across a crash of the engine in the middle of the chain.
func TestValuesKeepTheirBytes(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	for _, backend := range []string{memory, natsStreaming} {
		t.Run(backend, func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			r := newRigOn(t, backend, false)
			r.defs.put(t, chain3)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			samples := valueSamples(rng)
			ids := make([]string, len(samples))
			for i, s := range samples {
				inv, err := r.e.Invoke(ctx, "chain3", s, InvokeOptions{Input: InputAuto})
				if err != nil {
					t.Fatalf("invoke with %q: %v", s, err)
				}
				ids[i] = inv.ID
			}
			for i, id := range ids {
				done, err := r.e.Wait(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				wantStatus(t, done, StatusSucceeded)
				if got := done.outputBytes(); !bytes.Equal(got, samples[i]) {
					t.Fatalf("sent %q, the third task answered %q", samples[i], got)
				}
				if got := done.inputBytes(); !bytes.Equal(got, samples[i]) {
					t.Fatalf("sent %q, the input is %q", samples[i], got)
				}
			}
			// A restart reads the same bytes back from the log.
			for i, id := range ids {
				if got := r.replayed(id).outputBytes(); !bytes.Equal(got, samples[i]) {
					t.Fatalf("replayed: sent %q, read back %q", samples[i], got)
				}
			}

			// A crash while b runs: the new engine calls b again with the
			// bytes it reads from the log, and c gets them unchanged.
			release := r.fns.gate("b")
			crashed := make([]string, 0, 4)
			for _, s := range samples[:4] {
				inv, err := r.e.Invoke(ctx, "chain3", s, InvokeOptions{Input: InputAuto})
				if err != nil {
					t.Fatal(err)
				}
				crashed = append(crashed, inv.ID)
			}
			for _, id := range crashed {
				testutil.Eventually(t, 20*time.Second, "b to start", func() bool {
					return contains(strings.Join(types(r.events(id)), ","), "TaskStarted b")
				})
			}
			r.crash()
			r.open()
			release()
			for i, id := range crashed {
				done, err := r.e.Wait(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				wantStatus(t, done, StatusSucceeded)
				if got := done.outputBytes(); !bytes.Equal(got, samples[i]) {
					t.Fatalf("across a crash: sent %q, the third task answered %q", samples[i], got)
				}
			}
		})
	}
}

// TestDataInExpressions: expressions read a function's JSON output as
// typed values with its numbers exact, and a binary output as bytes they
// can measure, encode and pass on.
func TestDataInExpressions(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: exprs
output: |-
  ${ {"n": tasks.a.output.n, "same": tasks.a.output.n == tasks.b.output.n, "tf": type(tasks.a.output.f), "f": tasks.a.output.f,
      "e": tasks.a.output.e, "te": type(tasks.a.output.e), "tiny": tasks.a.output.tiny, "i": tasks.a.output.i + 1,
      "len": len(tasks.bin.output), "b64": base64(tasks.bin.output), "s": "n=" + string(tasks.a.output.n),
      "null": tasks.nul.output, "hello": tasks.str.output, "empty": tasks.empty.output} }
tasks:
  a: { run: wfguest, inputs: { op: text, s: ' {"n": 12345678901234567890, "f": 1.50, "e": 1e3, "tiny": 0.10000000000000000000001, "i": 9007199254740993}' } }
  b: { run: wfguest, inputs: { op: text, s: '{"n":12345678901234567890}' } }
  bin: { run: wfguest, inputs: { op: bytes, b64: AP+AgQ== } }
  nul: { run: wfguest, inputs: { op: text, s: 'null' } }
  str: { run: wfguest, inputs: { op: text, s: '"hello"' } }
  empty: { run: wfguest, inputs: { op: text, s: '' } }
`)
	done := r.run("exprs", "")
	wantStatus(t, done, StatusSucceeded)
	want := `{"b64":"AP+AgQ==","e":1000,"empty":"","f":1.5,"hello":"hello","i":9007199254740994,"len":4,` +
		`"n":12345678901234567890,"null":null,"s":"n=12345678901234567890","same":true,"te":"int","tf":"float",` +
		`"tiny":0.10000000000000000000001}`
	if string(done.outputBytes()) != want {
		t.Fatalf("output\n%s\nwant\n%s", done.outputBytes(), want)
	}

	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: pass
output: ${ [tasks.whole.output, tasks.wrap.output, tasks.made.output, tasks.str.output] }
tasks:
  bin: { run: wfguest, inputs: { op: bytes, b64: AP+AgQ== } }
  str: { run: wfguest, inputs: { op: text, s: '"hello"' } }
  whole: { run: echo-wat, requires: [bin], inputs: "${ tasks.bin.output }" }
  wrap: { run: echo-wat, requires: [bin, str], inputs: { b: "${ tasks.bin.output }", s: "${ tasks.str.output }" } }
  made: { run: echo-wat, inputs: "${ fromBase64('AP+AgQ==') }" }
  quoted: { run: echo-wat, requires: [str], inputs: "${ tasks.str.output }" }
`)
	done = r.run("pass", "")
	wantStatus(t, done, StatusSucceeded)
	for task, want := range map[string]string{"whole": "\x00\xff\x80\x81", "made": "\x00\xff\x80\x81",
		"wrap": `{"b":"AP+AgQ==","s":"hello"}`, "quoted": `"hello"`} {
		if got := r.e.taskOutput(t, done.ID, task); got != want {
			t.Errorf("task %s got %q, want %q", task, got, want)
		}
	}
	if want := `["AP+AgQ==",{"b":"AP+AgQ==","s":"hello"},"AP+AgQ==","hello"]`; string(done.outputBytes()) != want {
		t.Errorf("output %s, want %s (bytes inside a list are base64)", done.outputBytes(), want)
	}

	for _, c := range []struct{ name, output, says string }{
		{"interpolated-bytes", `"x${ tasks.a.output }"`, "write base64(...) to put them in a string"},
		{"big-arithmetic", `${ tasks.n.output + 1 }`, "kept exactly as its text"},
		{"string-of-bytes", `${ string(tasks.a.output) }`, "write base64(...)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.defs.put(t, fmt.Sprintf(`
apiVersion: sluice/v1
kind: Workflow
name: %s
output: %s
tasks:
  a: { run: wfguest, inputs: { op: bytes, b64: /w== } }
  n: { run: wfguest, inputs: { op: text, s: '12345678901234567890' } }
`, c.name, c.output))
			done := r.run(c.name, "")
			wantStatus(t, done, StatusFailed)
			if !strings.Contains(done.Error, c.says) {
				t.Fatalf("error %q, want it to say %q", done.Error, c.says)
			}
		})
	}
	if got := r.run("exprs", "").outputBytes(); string(got) != want {
		t.Fatalf("again: %s", got)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(want), &m); err != nil {
		t.Fatal(err)
	}
}

// TestChildWorkflowInputKeepsItsBytes: data passed to a child workflow
// (an output as it is, bytes an expression made) reaches it exactly; a
// value made of it is JSON, as before.
func TestChildWorkflowInputKeepsItsBytes(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: echoer\ntasks:\n  x: { run: echo-wat, inputs: \"${ input }\" }\n")
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: parent
output: ${ [tasks.bin.output, tasks.odd.output, tasks.made.output, tasks.wrapped.output] }
tasks:
  a: { run: wfguest, inputs: { op: bytes, b64: AP+AgQ== } }
  j: { run: wfguest, inputs: { op: text, s: ' {"n": 12345678901234567890,  "f": 1.50} ' } }
  bin: { run: workflow, requires: [a], inputs: { workflow: echoer, input: "${ tasks.a.output }" } }
  odd: { run: workflow, requires: [j], inputs: { workflow: echoer, input: "${ tasks.j.output }" } }
  made: { run: workflow, inputs: { workflow: echoer, input: "${ fromBase64('/wA=') }" } }
  wrapped: { run: workflow, requires: [j], inputs: { workflow: echoer, input: { j: "${ tasks.j.output }" } } }
`)
	done := r.run("parent", "")
	wantStatus(t, done, StatusSucceeded)
	for task, want := range map[string]string{"bin": "\x00\xff\x80\x81", "odd": ` {"n": 12345678901234567890,  "f": 1.50} `,
		"made": "\xff\x00", "wrapped": `{"j":{"f":1.5,"n":12345678901234567890}}`} {
		if got := r.e.taskOutput(t, done.ID, task); got != want {
			t.Errorf("child workflow of task %s answered %q, want %q", task, got, want)
		}
	}
	again := r.replayed(done.ID)
	if string(again.outputBytes()) != string(done.outputBytes()) {
		t.Fatalf("replayed output %s, live %s", again.outputBytes(), done.outputBytes())
	}
}

// taskOutput returns the bytes a task's output gives a function.
func (e *Engine) taskOutput(t *testing.T, id, task string) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	inv := e.st.invs[id]
	if inv == nil || inv.tasks[task] == nil {
		t.Fatalf("no task %s in %s", task, id)
	}
	return string(inv.tasks[task].output.input())
}

// TestNumbers: how expressions read JSON numbers, and that they write
// them back as they were.
func TestNumbers(t *testing.T) {
	for _, c := range []struct {
		text string
		want any
	}{
		{"1", 1}, {"-0", 0}, {"9223372036854775807", 9223372036854775807}, {"1e3", 1000}, {"2.0", 2},
		{"1.50", 1.5}, {"0.1", 0.1}, {"1e20", 1e20}, {"-2.5e-3", -0.0025},
		{"9223372036854775808", json.Number("9223372036854775808")},
		{"12345678901234567890", json.Number("12345678901234567890")},
		{"0.10000000000000000000001", json.Number("0.10000000000000000000001")},
		{"1e400", json.Number("1e400")}, {"1e-400", json.Number("1e-400")},
		{"1e999999999999", json.Number("1e999999999999")},
		{"123456789012345.6", 123456789012345.6}, {"0.1234567890123456789", json.Number("0.1234567890123456789")},
		{"1.7976931348623157e308", 1.7976931348623157e308}, {"5e-324", 5e-324}, {"5.0e-324", 5e-324},
		{"4e-324", json.Number("4e-324")}, {"100.000", 100}, {"0.3", 0.3}, {"2.2250738585072014e-308", 2.2250738585072014e-308},
	} {
		got := number(json.Number(c.text))
		if got != c.want {
			t.Errorf("%s: %#v, want %#v", c.text, got, c.want)
		}
		if n, ok := got.(json.Number); ok {
			if b, _ := json.Marshal(n); string(b) != c.text {
				t.Errorf("%s is written back as %s", c.text, b)
			}
		}
	}
}

// FuzzData decodes an event's data value as a forged event may hold it:
// no panic, and what decodes encodes back to the same bytes.
//
//	go test -run '^$' -fuzz '^FuzzData$' -fuzztime 10s ./engine/
func FuzzData(f *testing.F) {
	for _, seed := range []string{`"text"`, `{"base64":"AP+AgQ=="}`, `{"base64":""}`, `{"blob":"sha256-x","size":3}`,
		`{"base64":1}`, `{"base64":"!!"}`, `[1]`, `null`, `"\ud800"`, "\"\xff\"", `{"base64":"AA==","x":1}`, ``, `"`, `"a"b"`, "\"caf\xc3\xa9\"", "\"\xe2\x80\xa8\""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Data
		if err := json.Unmarshal(b, &d); err != nil {
			return
		}
		enc, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("%q decoded to %q, which does not encode: %v", b, d.Bytes, err)
		}
		var back Data
		if err := json.Unmarshal(enc, &back); err != nil || !bytes.Equal(back.Bytes, d.Bytes) {
			t.Fatalf("%q -> %q -> %s -> %q (%v)", b, d.Bytes, enc, back.Bytes, err)
		}
		if dataValue(d.Bytes).view() == nil && len(d.Bytes) > 0 && string(bytes.TrimSpace(d.Bytes)) != "null" {
			t.Fatalf("%q reads as null", d.Bytes)
		}
		ev := &Event{Type: EventTaskSucceeded, Invocation: "i", Task: "a", OutputData: &d}
		if _, err := decodeEvent(append([]byte(`{"type":"TaskSucceeded","inv":"i","output_data":`), append(b, '}')...)); err != nil {
			return
		}
		if enc, err := encodeEvent(ev); err != nil {
			t.Fatalf("encode: %v", err)
		} else if back, err := decodeEvent(enc); err != nil || !bytes.Equal(back.OutputData.Bytes, d.Bytes) {
			t.Fatalf("event round trip: %v", err)
		}
	})
}

// FuzzQuote checks the JSON string writer (package jsonquote) and the
// engine's reader against encoding/json: the same text out, the same
// bytes back.
//
//	go test -run '^$' -fuzz '^FuzzQuote$' -fuzztime 10s ./engine/
func FuzzQuote(f *testing.F) {
	for _, seed := range []string{"", "plain", `"q" \ /`, "\x00\x01\x1f\x7f", "<&>", "\u2028\u2029\u2027", "é😀", "\xff", `\u00e9`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(string(b)); err != nil {
			t.Fatal(err)
		}
		if utf8.Valid(b) {
			if got := jsonquote.Append(nil, b); string(got)+"\n" != want.String() {
				t.Fatalf("jsonquote.Append(%q) = %s, encoding/json writes %s", b, got, want.Bytes())
			}
		}
		// what encoding/json reads from any JSON string, unquote reads too
		var s string
		if json.Unmarshal(b, &s) == nil && len(b) > 0 && b[0] == '"' {
			if got, ok := unquote(bytes.TrimSpace(b)); ok && string(got) != s {
				t.Fatalf("unquote(%s) = %q, encoding/json reads %q", b, got, s)
			}
		}
		if got, ok := unquote(want.Bytes()[:want.Len()-1]); ok && utf8.Valid(b) && string(got) != string(b) {
			t.Fatalf("unquote(%s) = %q, want %q", want.Bytes(), got, b)
		}
	})
}

// outputBytes and inputBytes read an invocation's values in tests (a value
// stored apart is fetched).
func (inv *Invocation) outputBytes() []byte { return must(inv.OutputBytes(context.Background())) }

func (inv *Invocation) inputBytes() []byte { return must(inv.InputBytes(context.Background())) }

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestStoredSizeOfLargeText: a text value too large for the short count
// is counted as it is written in an event, escapes and U+2028 included.
func TestStoredSizeOfLargeText(t *testing.T) {
	b := bytes.Repeat([]byte("a\"b\n\u2028é\x01"), MaxData/6)
	d := dataValue(b)
	if d.form != FormText {
		t.Fatalf("form %q, want text", d.form)
	}
	if got, want := d.storedSize(), len(jsonquote.Append(nil, b)); got != want {
		t.Fatalf("storedSize = %d, the event holds %d bytes", got, want)
	}
}
