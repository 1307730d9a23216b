// The function's tests: node runs {{.Name}}.wasm as sluice does (the
// harness in sluice-sdk), no daemon needed. Run them with make test.

import { test } from "node:test";
import assert from "node:assert/strict";
import { load } from "sluice-sdk/harness";

const fn = await load(new URL("../{{.Name}}.wasm", import.meta.url));
{{if .HTTP}}
test("greets the body", () => {
  const r = fn.call("Ada", { "http.method": "POST", "http.path": "/hello" });
  assert.equal(r.ok, true, r.error);
  assert.equal(r.text, "hello, Ada");
  assert.equal(r.status || 200, 200);
  assert.deepEqual(r.headers, [["Content-Type", "text/plain; charset=utf-8"]]);
  assert.deepEqual(r.logs, [{ level: "info", message: "greeting 3 bytes" }]);
});

test("answers 400 to an empty body", () => {
  const r = fn.call("", { "http.method": "POST" });
  assert.equal(r.status, 400);
  assert.equal(r.text, "empty input");
});
{{else}}
test("greets its input", () => {
  const r = fn.call("Ada");
  assert.equal(r.ok, true, r.error);
  assert.equal(r.text, "hello, Ada");
  assert.deepEqual(r.logs, [{ level: "info", message: "greeting 3 bytes" }]);
});

test("fails on an empty input", () => {
  const r = fn.call("");
  assert.equal(r.ok, false);
  assert.equal(r.error, "empty input");
  assert.equal(r.code, "empty_input");
});
{{end -}}
