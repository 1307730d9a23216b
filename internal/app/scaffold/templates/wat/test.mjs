// The module's test (make test): it runs {{.Name}}.wasm under Node.js's
// WebAssembly, with the sluice imports as stubs that record what the
// handler did, and checks the answers. WebAssembly text has no native
// form: this runs the very module that sluice runs.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

const text = new TextDecoder();
let memory, call;

// The host's side of the ABI, recording into call.
const sluice = {
  output: (ptr, len) => { call.output = text.decode(new Uint8Array(memory.buffer, ptr, len)); },
  fail: (ptr, len) => { call.error = text.decode(new Uint8Array(memory.buffer, ptr, len)); },
  error_code: (ptr, len) => { call.code = text.decode(new Uint8Array(memory.buffer, ptr, len)); },
  log: (level, ptr, len) => { call.logs.push([level, text.decode(new Uint8Array(memory.buffer, ptr, len))]); },
  meta_get: () => -1,
  http_status: (code) => { call.status = code; },
  http_header: (n, nl, v, vl) => {
    call.headers.push(text.decode(new Uint8Array(memory.buffer, n, nl)) + ": " + text.decode(new Uint8Array(memory.buffer, v, vl)));
  },
};

const { instance } = await WebAssembly.instantiate(await readFile("{{.Name}}.wasm"), { sluice });
memory = instance.exports.memory;

// invoke runs one call as the host does: the input in a buffer from
// sluice_alloc, then sluice_handle.
function invoke(input) {
  call = { output: "", error: "", code: "", logs: [], status: 0, headers: [] };
  const bytes = new TextEncoder().encode(input);
  const ptr = instance.exports.sluice_alloc(Math.max(bytes.length, 1024));
  assert.notEqual(ptr, 0, "sluice_alloc failed");
  new Uint8Array(memory.buffer, ptr, bytes.length).set(bytes);
  call.rc = instance.exports.sluice_handle(ptr, bytes.length);
  return call;
}

let r = invoke("Ada");
assert.equal(r.rc, 0, "the call succeeds: " + r.error);
assert.equal(r.output, "hello, Ada");
assert.deepEqual(r.logs, [[1, "greeting 3 bytes"]]);
{{- if .HTTP}}
assert.ok(r.status === 0 || r.status === 200, "status " + r.status);
assert.deepEqual(r.headers, ["Content-Type: text/plain; charset=utf-8"]);

r = invoke("");
assert.equal(r.rc, 0);
assert.equal(r.status, 400);
assert.equal(r.output, "empty input");
{{- else}}

r = invoke("");
assert.equal(r.rc, 1, "an empty input fails");
assert.equal(r.error, "empty input");
assert.equal(r.code, "empty_input");
{{- end}}

// a long input: the scratch buffer grows the memory, and is given back
const long = "x".repeat(200000);
r = invoke(long);
assert.equal(r.output, "hello, " + long);
assert.deepEqual(r.logs, [[1, "greeting 200000 bytes"]]);
console.log("ok");
