package engine

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzExpression compiles random expressions and evaluates them on random
// inputs within a budget: nothing panics, the budget holds, and a value
// the engine would store is one it can read back.
//
//	go test -run '^$' -fuzz '^FuzzExpression$' -fuzztime 10s ./engine/
func FuzzExpression(f *testing.F) {
	for _, seed := range []struct{ src, input string }{
		{`input.name + "!"`, `{"name": "Ada"}`},
		{`input?.nmae ?? "x"`, `{"name": "Ada"}`},
		{`reduce(1..40, #acc + #acc, "xx")`, `null`},
		{`repeat(input, 1000000)`, `"abcdef"`},
		{`map(input, {"n": # * 2, "s": string(#)})`, `[1, 2, 3]`},
		{`let xs = 1..3000; reduce(xs, reduce(xs, #acc + 1, 0), 0)`, `null`},
		{`toJSON(map(1..1000, input))`, `"` + strings.Repeat("x", 1000) + `"`},
		{`uniq(concat(input, input, [1.0, "1", nil]))`, `[1, 2, 2, {"a": 1}, {"a": 1}]`},
		{`reduce(1..2000, [#acc], 0)`, `null`},
		{`join(split(input, ""), input)`, `"abcabc"`},
		{`replace(input, "", input)`, `"abc"`},
		{`input.a.b.c`, `{"a": {"b": null}}`},
		{`filter(input, .on ?? false) | map(.id) | sortBy(#)`, `[{"on": true, "id": 2}, {"id": 1}]`},
		{`fromJSON(input)`, `"[[[[[[1]]]]]]"`},
		{`item * index + len(prev ?? [])`, `null`},
		{`tasks.a.output.n + 1`, `null`},
		{`now().Year() > 2000 && uid() != ""`, `null`},
		{`{"n": input.n, "len": len(base64(input.b))}`, `{"n": 12345678901234567890, "b": "x"}`},
		{`fromBase64(base64(input))`, "\x00\xff\xfe"},
		{`len(input) + len(base64(input))`, "\x80\x81"},
		{`"${ input }"`, "\xff"},
	} {
		f.Add(seed.src, []byte(seed.input))
	}
	f.Fuzz(func(t *testing.T, src string, input []byte) {
		c := compiler{refs: map[string]int{}}
		prog, _, err := c.compile(src, scope{item: true, index: true, prev: true}, 1)
		if err != nil {
			return
		}
		v := &value{kind: kindExpr, line: 1, prog: prog, src: src}
		in := dataValue(input).view()
		en := env{"input": in, "tasks": map[string]any{"a": map[string]any{"output": in, "status": "succeeded", "error": ""}},
			"invocation": map[string]any{"id": "i", "workflow": "w"}, "item": in, "index": 3, "prev": in}
		b := newBudget(nil)
		x, err := v.eval(en, b)
		// a step may count a whole list's scan (at most evalMaxElements)
		if b.steps > evalMaxSteps+evalMaxElements+1 || b.bytes > evalMaxBytes {
			t.Fatalf("budget overrun: %d steps, %d bytes", b.steps, b.bytes)
		}
		if err != nil {
			return
		}
		d, err := storable(x, 0)
		if err != nil {
			return
		}
		if d.storedSize() > MaxData || !d.data && !jsonDepthOK(d.b, MaxDepth) {
			t.Fatalf("storable gave %d bytes, deep %v", d.storedSize(), !jsonDepthOK(d.b, MaxDepth))
		}
		ev := &Event{Type: EventTaskScheduled, Invocation: "i", Task: "a"}
		d.put(ev, false)
		ev.Scope, ev.ScopeData = scopeOf(map[string]any{"item": d.view()})
		data, err := encodeEvent(ev)
		if err != nil {
			t.Fatalf("encoding an event: %v", err)
		}
		back, err := decodeEvent(data)
		if err != nil {
			t.Fatalf("an event the engine writes does not read back: %v", err)
		}
		if got := evInput(back); got.data != d.data || string(got.b) != string(d.b) {
			t.Fatalf("the value reads back as %s, not %s", got.describe(), d.describe())
		}
	})
}

// FuzzFold applies random sequences of events (of every type, for a few
// invocations and tasks, in any order) to the state: the fold never
// panics, keeps its bookkeeping, and folds the events as a replay reads
// them (encoded, then decoded) to the same state.
//
//	go test -run '^$' -fuzz '^FuzzFold$' -fuzztime 10s ./engine/
func FuzzFold(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 1, 0, 2, 0, 1, 1, 3, 0, 1, 1, 6, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 9, 1, 1, 2, 0, 2, 1, 2, 1, 7, 1, 0, 0, 6, 0, 0, 0, 11, 0, 0, 0})
	f.Add([]byte{0, 2, 0, 0, 9, 2, 0, 0, 10, 2, 3, 0, 8, 2, 0, 0, 12, 3, 4, 5})
	f.Add([]byte(strings.Repeat("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b", 20)))
	// failure handling: a task caught, its catch scheduled and done; a
	// compensation started, an undo, the end
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 2, 13, 0, 0, 0, 1, 0, 8, 0, 2, 0, 8, 2, 3, 0, 8, 2, 3, 0, 0, 2,
		1, 0, 1, 0, 2, 0, 1, 2, 3, 0, 1, 2, 14, 0, 7, 1, 1, 0, 9, 0, 2, 0, 9, 2, 3, 0, 9, 2, 7, 0, 7, 0})
	// dynamic tasks and their inline children
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 2, 2, 0, 0, 1, 0, 3, 0, 2, 3, 3, 0, 0, 6, 3, 0, 0, 3, 0, 0, 1, 6, 0, 0, 0})
	// signals before and after a wait starts, the wait taking one, the
	// invocation failing and being redriven
	f.Add([]byte{0, 0, 0, 0, 13, 0, 0, 0, 1, 0, 0, 0, 13, 0, 0, 4, 2, 0, 0, 2, 3, 0, 0, 2, 7, 0, 0, 0, 14, 0, 0, 0, 2, 0, 0, 3, 13, 0, 0, 0, 3, 0, 0, 5})
	// a wait on a topic started after a sequence, taking a message
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 10, 3, 0, 0, 10, 6, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		evs := eventsFrom(data)
		live, replay := newState(4, 3000), newState(4, 3000)
		for _, ev := range evs {
			_ = live.apply(ev)
			enc, err := encodeEvent(ev)
			if err != nil {
				t.Fatalf("encode %+v: %v", ev, err)
			}
			back, err := decodeEvent(enc)
			if err != nil {
				t.Fatalf("decode %s: %v", enc, err)
			}
			back.Seq = ev.Seq
			_ = replay.apply(back)
		}
		if a, b := live.describe(), replay.describe(); a != b {
			t.Fatalf("the replayed fold differs:\n%s", diff(a, b))
		}
		var sum int64
		for _, inv := range live.finished {
			sum += inv.bytes
		}
		if sum != live.finishedBytes || len(live.finished) > live.retain {
			t.Fatalf("finished: %d of them, %d bytes counted, %d summed", len(live.finished), live.finishedBytes, sum)
		}
		for root, n := range live.live {
			running := 0
			for _, inv := range live.invs {
				if inv.root == root && inv.id != root && inv.status == StatusRunning {
					running++
				}
			}
			if n != running {
				t.Fatalf("root %s: %d counted running under it, %d are", root, n, running)
			}
		}
	})
}

// eventsFrom reads events from bytes, four at a time: type, invocation,
// task, and a variant (attempt, owner, payload).
func eventsFrom(data []byte) []*Event {
	types := []string{EventInvocationCreated, EventTaskScheduled, EventTaskStarted, EventTaskSucceeded, EventTaskFailed,
		EventTaskRetrying, EventInvocationSucceeded, EventInvocationFailed, EventInvocationCanceled,
		eventCancelRequested, eventOwnerChanged, "Unknown", EventInvocationCreated, EventTaskCaught, EventCompensationStarted, EventSignalSent, EventInvocationRedriven}
	invs := []string{"a", "b", "c", "a.1.1", "b.2.1", "a.1.1.3.1"}
	tasks := []string{"x", "y", "x/0", "x/1", "x/then", "x/0/else", "x/case/0", "", "x/catch", "x/undo", "x/0/undo"}
	nodes := []string{"n1", "n2", ""}
	signals := []string{"go", "stop", "bad name"}
	payloads := []string{`null`, `1`, `"s"`, `{"n":1.5}`, `[1,2,3]`, `{"item":2,"index":0}`, `"<&>"`, `` + deepJSON(40),
		`{"n":12345678901234567890,"f":0.10000000000000000000001}`} // json values: compact, as the engine writes them
	// data values: bytes from outside, kept exactly
	datas := []string{"", "null", "\x00\xff\x80", " {\"b\":1e3,  \"a\":1.50} ", "text <&>", "\"hello\""}
	var out []*Event
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i+3 < len(data) && len(out) < 300; i += 4 {
		k, inv, task, v := int(data[i]), int(data[i+1]), int(data[i+2]), int(data[i+3])
		ev := &Event{
			Type: types[k%len(types)], Invocation: invs[inv%len(invs)], Task: tasks[task%len(tasks)],
			Time: base.Add(time.Duration(i) * time.Millisecond), Seq: uint64(len(out) + 1),
			Node: nodes[v%len(nodes)], Attempt: v%4 - 1,
		}
		p := json.RawMessage(payloads[v%len(payloads)])
		switch ev.Type {
		case EventInvocationCreated:
			ev.Owner, ev.Workflow, ev.Revision, ev.Input = nodes[v%2], "w", "r", p
			if v%4 == 1 {
				ev.Input, ev.InputData = nil, &Data{Bytes: []byte(datas[v%len(datas)])}
			}
			if v%5 == 2 { // an inline workflow, a dynamic task's child
				ev.Source = json.RawMessage(`{"apiVersion":"sluice/v1","kind":"Workflow","tasks":{"spec":{"run":"f","inputs":"<&>"}}}`)
			}
			if strings.Contains(ev.Invocation, ".") {
				ev.Parent = ev.Invocation[:strings.LastIndex(ev.Invocation[:len(ev.Invocation)-2], ".")] + "/x"
			}
		case EventTaskScheduled:
			ev.Run, ev.Input = []string{"noop", builtinWorkflow, builtinDynamic}[v%5%3], p
			if v%3 == 0 {
				ev.Scope = map[string]any{"item": fromJSON(p), "index": v % 5}
			}
			if v%4 == 1 {
				ev.ScopeData = map[string]*Data{"prev": {Bytes: []byte(datas[v%len(datas)])}}
			}
		case EventTaskSucceeded, EventInvocationSucceeded:
			ev.Output = p
			if v%4 == 1 {
				ev.Output, ev.OutputData = nil, &Data{Bytes: []byte(datas[v%len(datas)])}
			}
			if ev.Type == EventTaskSucceeded && v%3 == 2 {
				// a wait taking one of the last signals
				ev.Signal, ev.Consumed = signals[v%2], uint64(max(len(out)-v%5, 0))
			}
			if ev.Type == EventTaskSucceeded && v%3 == 1 {
				ev.Consumed = uint64(v) // a wait on a topic: the message's sequence
			}
		case EventSignalSent:
			ev.Signal, ev.Input = signals[v%len(signals)], p
			if v%4 == 1 {
				ev.Input, ev.InputData = nil, &Data{Bytes: []byte(datas[v%len(datas)])}
			}
		case EventInvocationRedriven:
			ev.Owner = nodes[v%len(nodes)]
		case EventTaskStarted, EventTaskRetrying:
			if v%2 == 0 {
				w := base.Add(time.Duration(v) * time.Second)
				ev.Wake = &w
			}
			if ev.Type == EventTaskStarted && v%3 == 1 { // a wait on a topic
				after := uint64(v % 4)
				ev.After = &after
			}
			ev.Error = "e"
		case eventOwnerChanged:
			ev.From, ev.Owner = nodes[v%3], nodes[(v+1)%3]
		default:
			ev.Error = fmt.Sprintf("error %d", v)
		}
		switch ev.Type {
		case EventTaskFailed, EventTaskRetrying, EventInvocationFailed, EventTaskCaught, EventCompensationStarted:
			if v%3 != 2 { // events written before codes have none
				ev.Code = []string{"timeout", "card_declined", "deadline"}[v%3]
			}
		}
		out = append(out, ev)
	}
	return out
}
