package daemon

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/testutil"
)

// unb64WAT decodes its input, standard base64, and answers the bytes it
// got in hex: what a function that needs a binary body's bytes does with
// body_base64, and a hex answer shows those bytes whatever the workflow
// does with text.
const unb64WAT = `(module
  (import "sluice" "output" (func $output (param i32 i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func $alloc (export "sluice_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $pages i32)
    (local.set $ptr (global.get $next))
    (global.set $next (i32.add (local.get $ptr) (local.get $size)))
    (local.set $pages (i32.sub (i32.shr_u (i32.add (global.get $next) (i32.const 65535)) (i32.const 16)) (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1)) (then (return (i32.const 0))))))
    (local.get $ptr))
  (func $digit (param $x i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $x) (i32.const 10))
      (then (i32.add (local.get $x) (i32.const 48)))
      (else (i32.add (local.get $x) (i32.const 87)))))
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (local $i i32) (local $c i32) (local $v i32) (local $acc i32) (local $bits i32) (local $n i32) (local $out i32) (local $b i32)
    ;; decode in place: byte n is written at ptr+n, behind what is read
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $done (i32.eq (local.get $c) (i32.const 61)))
        (local.set $v (i32.const -1))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 65)) (i32.le_u (local.get $c) (i32.const 90)))
          (then (local.set $v (i32.sub (local.get $c) (i32.const 65)))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (local.set $v (i32.sub (local.get $c) (i32.const 71)))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57)))
          (then (local.set $v (i32.add (local.get $c) (i32.const 4)))))
        (if (i32.eq (local.get $c) (i32.const 43)) (then (local.set $v (i32.const 62))))
        (if (i32.eq (local.get $c) (i32.const 47)) (then (local.set $v (i32.const 63))))
        (if (i32.eq (local.get $v) (i32.const -1)) (then (return (i32.const 1))))
        (local.set $acc (i32.or (i32.shl (local.get $acc) (i32.const 6)) (local.get $v)))
        (local.set $bits (i32.add (local.get $bits) (i32.const 6)))
        (if (i32.ge_u (local.get $bits) (i32.const 8))
          (then
            (local.set $bits (i32.sub (local.get $bits) (i32.const 8)))
            (i32.store8 (i32.add (local.get $ptr) (local.get $n)) (i32.shr_u (local.get $acc) (local.get $bits)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))))
        (br $next)))
    (local.set $out (call $alloc (i32.shl (local.get $n) (i32.const 1))))
    (local.set $i (i32.const 0))
    (block $end
      (loop $hex
        (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $b (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (i32.store8 (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 1)))
          (call $digit (i32.shr_u (local.get $b) (i32.const 4))))
        (i32.store8 (i32.add (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 1))) (i32.const 1))
          (call $digit (i32.and (local.get $b) (i32.const 15))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $hex)))
    (call $output (local.get $out) (i32.shl (local.get $n) (i32.const 1)))
    (i32.const 0)))`

// sameJSON tells whether two texts are the same JSON value.
func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// The workflows the tests put behind HTTP routes.
var httpWorkflows = map[string]string{
	// answers with its own status and headers, from what it read of the
	// request and what its task made of the body
	"order": `
output:
  status: 201
  headers:
    Location: /orders/${ input.params.id }
    Set-Cookie: ["session=s1; Path=/; HttpOnly", "seen=1; Path=/"]
    X-Method: ${ input.method }
  body:
    id: ${ input.params.id }
    name: ${ tasks.label.output }
    price: ${ input.body.price }
    first: ${ input.query.tag }
    tags: ${ input.query_all.tag }
    type: ${ input.headers["content-type"] }
    token: ${ input.headers["x-token"] }
tasks:
  label: { run: echo, inputs: "${ input.body.name }" }
`,
	// answers with its input, as a body: not of the response shape
	"mirror": `
output: ${ input }
tasks:
  a: { run: noop, inputs: 1 }
`,
	// hands a binary body's bytes to a function and answers them back
	"bytes": `
output:
  status: 200
  headers: { X-Hex: "${ tasks.d.output }", Content-Type: application/octet-stream }
  body_base64: ${ input.body_base64 }
tasks:
  d: { run: unb64, inputs: "${ input.body_base64 }" }
`,
	"fails": `
output: ${ tasks.boom.output }
tasks:
  boom: { run: work, inputs: { op: fail, msg: out of stock } }
`,
	// an output with a status, answered as a body where the trigger does
	// not ask for the request
	"status": `
output: { status: 201, body: made }
tasks:
  a: { run: noop, inputs: 1 }
`,
	"split": `
output: { status: 200, headers: { X-A: "a\r\nSet-Cookie: evil=1" } }
tasks:
  a: { run: noop, inputs: 1 }
`,
	"naps": `
output: ${ tasks.nap.output }
tasks:
  nap: { run: sleep, inputs: 1h }
`,
	"gone": `
output: 1
tasks:
  a: { run: noop, inputs: 1 }
`,
}

// A workflow behind an HTTP trigger with --http-request: it reads the
// request (method, parameters, query, headers, a JSON body, an empty one,
// a binary one down to a function) and answers with its own status and
// headers; every answer, failures too, names the invocation that wf status
// finds; a failed workflow is a 502 that names it; an output that is not
// a response, or a trigger without the option, is answered as before.
func TestHTTPWorkflow(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.MaxValue = engine.MaxData // the input limit, small enough to pass in a test
	d, c := start(t, o)
	deploy(t, c, "echo", "echo-wat", nil)
	deploy(t, c, "work", "wfguest", nil)
	if _, err := c.Deploy(ctx, "unb64", testutil.WAT(t, unb64WAT), nil); err != nil {
		t.Fatal(err)
	}
	for name, src := range httpWorkflows {
		if _, _, err := c.CreateWorkflow(ctx, name, []byte("apiVersion: sluice/v1\nkind: Workflow\nname: "+name+"\n"+src)); err != nil {
			t.Fatalf("workflow %s: %v", name, err)
		}
	}
	for _, tr := range []struct {
		name, workflow, path, method string
		request                      bool
	}{
		{"order", "order", "/orders/{id}", "POST", true},
		{"mirror", "mirror", "/mirror/*", "", true},
		{"bytes", "bytes", "/bytes", "", true},
		{"fails", "fails", "/fails", "", true},
		{"status", "status", "/status", "", false},
		{"status-req", "status", "/status-req", "", true},
		{"mirror-plain", "mirror", "/plain", "", false},
		{"split", "split", "/split", "", true},
		{"gone", "gone", "/gone", "", true},
		{"naps", "naps", "/naps", "", false},
	} {
		if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: tr.name, Workflow: tr.workflow,
			HTTP: &catalog.HTTPSpec{Path: tr.path, Method: tr.method, Request: tr.request}}); err != nil {
			t.Fatalf("trigger %s: %v", tr.name, err)
		}
	}
	base := "http://" + d.Addr() + "/fn"
	// invocation checks that an answer names an invocation of workflow
	// that wf status finds with the status.
	invocation := func(t *testing.T, h http.Header, workflow, status string) *engine.Invocation {
		t.Helper()
		id := h.Get("X-Sluice-Invocation")
		inv, err := c.Invocation(ctx, id)
		if err != nil {
			t.Fatalf("wf status %q (the answer's X-Sluice-Invocation): %v", id, err)
		}
		if inv.Workflow != workflow || inv.Status != status {
			t.Fatalf("invocation %s: workflow %s, %s; want %s, %s", id, inv.Workflow, inv.Status, workflow, status)
		}
		return inv
	}

	t.Run("status, headers and what the request said", func(t *testing.T) {
		status, body, h := request(t, "POST", base+"/orders/42?tag=a&tag=b", `{"name": "widget", "price": 9.5}`,
			http.Header{"Content-Type": {"application/json"}, "X-Token": {"t1"}})
		if status != 201 || h.Get("Location") != "/orders/42" || h.Get("X-Method") != "POST" ||
			!reflect.DeepEqual(h.Values("Set-Cookie"), []string{"session=s1; Path=/; HttpOnly", "seen=1; Path=/"}) ||
			h.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %v %s", status, h, body)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		want := map[string]any{"id": "42", "name": "widget", "price": 9.5, "first": "a", "tags": []any{"a", "b"}, "type": "application/json", "token": "t1"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("body %s, want %v", body, want)
		}
		invocation(t, h, "order", engine.StatusSucceeded)
		if took, err := time.ParseDuration(h.Get("X-Sluice-Duration")); err != nil || took <= 0 {
			t.Fatalf("X-Sluice-Duration %q: want the invocation's time", h.Get("X-Sluice-Duration"))
		}
		// a method the route does not take: refused before any invocation
		if status, _, h := request(t, "GET", base+"/orders/42", "", http.Header{}); status != 405 || h.Get("X-Sluice-Invocation") != "" {
			t.Fatalf("GET: %d %v", status, h)
		}
	})

	t.Run("an empty body is an empty string", func(t *testing.T) {
		status, body, h := request(t, "DELETE", base+"/mirror/a%2Fb/c?x=1", "", http.Header{})
		var in map[string]any
		if err := json.Unmarshal([]byte(body), &in); err != nil || status != 200 {
			t.Fatalf("%d %s: %v", status, body, err)
		}
		if b, ok := in["body"]; !ok || b != "" || in["method"] != "DELETE" || in["rest"] != "a/b/c" || in["path"] != "/mirror/a/b/c" || in["raw_path"] != "/mirror/a%2Fb/c" {
			t.Fatalf("input %s", body)
		}
		inv := invocation(t, h, "mirror", engine.StatusSucceeded)
		var stored map[string]any
		if err := json.Unmarshal(inv.Input, &stored); err != nil || stored["body"] != "" {
			t.Fatalf("stored input %s: %v", inv.Input, err)
		}
	})

	t.Run("a binary body reaches a function byte for byte", func(t *testing.T) {
		every := make([]byte, 256)
		for i := range every {
			every[i] = byte(255 - i)
		}
		status, body, h := request(t, "PUT", base+"/bytes", string(every), http.Header{"Content-Type": {"application/octet-stream"}})
		if status != 200 || body != string(every) || h.Get("X-Hex") != hex.EncodeToString(every) || h.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("%d %v %q", status, h, body)
		}
	})

	t.Run("a request over the input limit, base64 counted", func(t *testing.T) {
		// under the limit as a body, over it in base64
		big := strings.Repeat("\xff", o.MaxValue*7/8)
		status, body, h := request(t, "PUT", base+"/bytes", big, http.Header{})
		if status != 413 || !strings.Contains(body, `"code": "input_too_large"`) || !strings.Contains(body, "a binary body in base64") {
			t.Fatalf("%d %s", status, body)
		}
		if _, err := c.Invocation(ctx, h.Get("X-Sluice-Invocation")); err == nil {
			t.Fatal("a refused request started an invocation")
		}
	})

	t.Run("a failed workflow is a 502 that names its invocation", func(t *testing.T) {
		status, body, h := request(t, "POST", base+"/fails", "x", http.Header{})
		id := h.Get("X-Sluice-Invocation")
		var e struct{ Error, Code string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || status != 502 || e.Code != "workflow_failed" {
			t.Fatalf("%d %s", status, body)
		}
		for _, s := range []string{`workflow "fails"`, "invocation " + id, "task boom", "out of stock", "sluice wf status " + id} {
			if !strings.Contains(e.Error, s) {
				t.Fatalf("error %q does not say %q", e.Error, s)
			}
		}
		invocation(t, h, "fails", engine.StatusFailed)
	})

	t.Run("a canceled workflow is a 502 of its own", func(t *testing.T) {
		type answer struct {
			status int
			body   string
			h      http.Header
		}
		done := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest("POST", base+"/naps", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- answer{body: err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			done <- answer{resp.StatusCode, string(b), resp.Header}
		}()
		var running []*engine.Invocation
		testutil.Eventually(t, 30*time.Second, "the request's invocation running", func() bool {
			running, _ = c.Invocations(ctx, "naps")
			return len(running) == 1
		})
		if _, err := c.CancelInvocation(ctx, running[0].ID); err != nil {
			t.Fatal(err)
		}
		a := <-done
		if a.status != 502 || !strings.Contains(a.body, `"code": "workflow_canceled"`) || a.h.Get("X-Sluice-Invocation") != running[0].ID {
			t.Fatalf("%d %v %s", a.status, a.h, a.body)
		}
		invocation(t, a.h, "naps", engine.StatusCanceled)
	})

	t.Run("an output that is not a response is the body", func(t *testing.T) {
		status, body, h := request(t, "POST", base+"/plain", `{"status": 500, "n": 12}`, http.Header{})
		if status != 200 || !sameJSON(body, `{"status": 500, "n": 12}`) {
			t.Fatalf("without --http-request: %d %s", status, body)
		}
		invocation(t, h, "mirror", engine.StatusSucceeded)
		status, body, h = request(t, "GET", base+"/status", "", http.Header{})
		if status != 200 || !sameJSON(body, `{"status": 201, "body": "made"}`) {
			t.Fatalf("without --http-request: %d %s", status, body)
		}
		invocation(t, h, "status", engine.StatusSucceeded)
		status, body, _ = request(t, "GET", base+"/status-req", "", http.Header{})
		if status != 201 || body != "made" {
			t.Fatalf("with --http-request: %d %s", status, body)
		}
	})

	t.Run("a response that cannot be sent", func(t *testing.T) {
		status, body, h := request(t, "GET", base+"/split", "", http.Header{})
		if status != 502 || !strings.Contains(body, `"code": "invalid_response"`) || !strings.Contains(body, "header X-A") || h.Get("Set-Cookie") != "" {
			t.Fatalf("%d %v %s", status, h, body)
		}
		invocation(t, h, "split", engine.StatusSucceeded)
	})

	t.Run("a workflow that is not there", func(t *testing.T) {
		if err := c.DeleteWorkflow(ctx, "gone", client.Force(true)); err != nil {
			t.Fatal(err)
		}
		status, body, _ := request(t, "GET", base+"/gone", "", http.Header{})
		if status != 404 || !strings.Contains(body, `"code": "not_found"`) || !strings.Contains(body, `no workflow \"gone\"`) {
			t.Fatalf("%d %s", status, body)
		}
	})

	t.Run("the option is a workflow trigger's and shows", func(t *testing.T) {
		_, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "fn-req", Function: "echo", HTTP: &catalog.HTTPSpec{Path: "/fn-req", Request: true}})
		apiError(t, err, 400, "invalid_argument", `trigger "fn-req": --http-request gives a workflow the whole request`)
		tr, err := c.Trigger(ctx, "order")
		if err != nil || tr.HTTP == nil || !tr.HTTP.Request {
			t.Fatalf("trigger %+v: %v", tr, err)
		}
	})
}
