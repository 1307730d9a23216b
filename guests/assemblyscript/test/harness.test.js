// The SDK's tests, under node through the harness (sluice's own tests run
// them: cmd/sluice/assemblyscript_test.go). SLUICE_AS_WASM is the
// directory of the built modules (make wasm: build/wasm).

import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { load } from "../harness.js";

const dir = process.env.SLUICE_AS_WASM || new URL("../../../build/wasm", import.meta.url).pathname;
const module = (name) => load(join(dir, name + ".wasm"));

test("bytes in, the same bytes out, not UTF-8 ones too", async () => {
  const fn = await module("asguest");
  const input = new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0x41]);
  const r = fn.call(input);
  assert.equal(r.ok, true, r.error);
  assert.deepEqual(r.output, input);
  const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => i * 7);
  assert.deepEqual(fn.call(big).output, big);
});

test("fail gives a message and a code", async () => {
  const fn = await module("asguest");
  let r = fn.call("fail:card declined");
  assert.deepEqual([r.ok, r.kind, r.error, r.code, r.text], [false, "function_error", "card declined", "guest_failed", ""]);
  r = fn.call("failnocode:no code");
  assert.deepEqual([r.ok, r.error, r.code], [false, "no code", ""]);
  assert.equal(fn.call("calls").text, "3", "a failure keeps the instance");
});

test("an assertion, a throw and an index out of range exit with their message", async () => {
  const fn = await module("asguest");
  for (const [input, want] of [
    ["abort:the sky fell", /^panic: the sky fell at .*asguest\.ts:\d+:\d+$/],
    ["throw:oops", /^panic: oops at .*asguest\.ts:\d+:\d+$/],
    ["oob", /^panic: Index out of range at ~lib\/array\.ts:\d+:\d+$/],
  ]) {
    fn.call("x");
    const r = fn.call(input);
    assert.equal(r.kind, "exit", input);
    assert.equal(r.exitCode, 2);
    assert.match(r.error, want);
    assert.equal(fn.call("calls").text, "1", "the instance is gone after " + input);
  }
});

test("unreachable traps", async () => {
  const fn = await module("asguest");
  const r = fn.call("unreachable");
  assert.deepEqual([r.ok, r.kind], [false, "trap"]);
  assert.match(r.error, /unreachable/);
});

test("logs at every level, metadata, Math.random, trace, the clock", async () => {
  const fn = await module("asguest");
  let r = fn.call("log:x");
  assert.deepEqual(r.logs, [
    { level: "debug", message: "d x" }, { level: "info", message: "i x" },
    { level: "warn", message: "w x" }, { level: "error", message: "e x" },
  ]);
  assert.equal(fn.call("meta:trigger", { trigger: "tick" }).text, "tick");
  assert.equal(fn.call("meta:function").text, "test");
  assert.equal(fn.call("meta:trigger").text, "<absent>");
  const long = "é".repeat(1000);
  assert.equal(fn.call("meta:long", { long }).text, long);
  assert.equal(fn.call("random").text, "ok");
  assert.deepEqual(fn.call("trace").logs, [{ level: "debug", message: "traced 1.5, 2.0" }]);
  const ms = Number(fn.call("now").text);
  assert.ok(Math.abs(ms - Date.now()) < 60000, `now() = ${ms}`);
});

test("garbage is collected across calls of one instance", async () => {
  const fn = await module("asguest");
  for (let i = 0; i < 20; i++) assert.equal(fn.call("garbage:16").text, "256");
  const pages = fn.instance.exports.memory.buffer.byteLength / 65536;
  assert.ok(pages < 1024, `320 MiB of garbage left ${pages} pages of memory`);
});

test("hello-as: the greeting, its log line, empty input", async () => {
  const fn = await module("hello-as");
  let r = fn.call("Ada");
  assert.deepEqual([r.ok, r.text, r.logs], [true, "hello, Ada", [{ level: "info", message: "greeting 3 bytes" }]]);
  r = fn.call("");
  assert.deepEqual([r.ok, r.error, r.code], [false, "empty input", "empty_input"]);
});

test("http-as: status, headers and body", async () => {
  const fn = await module("http-as");
  let r = fn.call("Ada", { "http.method": "PUT", "http.header.accept-language": "fr" });
  assert.equal(r.ok, true, r.error);
  assert.equal(r.text, "hello, Ada");
  assert.equal(r.status, 0, "200 is the default: not set");
  assert.deepEqual(r.headers, [["Content-Type", "text/plain; charset=utf-8"], ["Content-Language", "fr"], ["X-Method", "PUT"]]);
  r = fn.call("");
  assert.deepEqual([r.ok, r.status, r.text], [true, 400, "empty input"]);
});
