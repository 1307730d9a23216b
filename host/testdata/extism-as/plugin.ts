// An Extism plugin built with Extism's own AssemblyScript PDK
// (@extism/as-pdk), unmodified by sluice: the host tests run it to show
// that such plugins run under sluice as they do under Extism. Built by
// `make wasm` (see the Makefile's Extism block).
import { Host, Config, Var, LogLevel, Memory } from "@extism/as-pdk";
import { error_set, http_request } from "@extism/as-pdk/lib/env";

// abort is AssemblyScript's runtime error (a failed assertion, an index
// out of range): it traps instead of importing env.abort.
function myAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  unreachable();
}

// upper answers its input in upper case.
export function upper(): i32 {
  Host.outputString(Host.inputString().toUpperCase());
  return 0;
}

// greet answers the config's greeting and a count of its calls kept in a
// var: "GREETING, INPUT #N".
export function greet(): i32 {
  const g = Config.get("greeting");
  const greeting = g == null ? "hello" : g;
  const prev = Var.getString("count");
  const n = prev == null ? 1 : I32.parseInt(prev) + 1;
  Var.set("count", Uint8Array.wrap(String.UTF8.encode(n.toString())));
  Host.outputString(greeting + ", " + Host.inputString() + " #" + n.toString());
  return 0;
}

// fail reports an error.
export function fail(): i32 {
  const msg = Memory.allocateString("no such order: " + Host.inputString());
  error_set(msg.offset);
  return 1;
}

// logs writes a log line and answers "logged".
export function logs(): i32 {
  Host.log(LogLevel.Info, "hello from the plugin: " + Host.inputString());
  Host.outputString("logged");
  return 0;
}

// boom traps.
export function boom(): i32 {
  unreachable();
  return 0;
}

// spin never returns.
export function spin(): i32 {
  let x: i64 = 0;
  while (true) {
    x++;
  }
  return <i32>x;
}

// fetch sends a GET to the URL in its input.
export function fetch(): i32 {
  const req = Memory.allocateString('{"url":"' + Host.inputString() + '","method":"GET","headers":{}}');
  const off = http_request(req.offset, 0);
  Host.outputString("sent " + off.toString());
  return 0;
}
