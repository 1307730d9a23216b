// sluice-sdk: write a sluice function in AssemblyScript.
//
// A function is a handler and nothing else:
//
//   import { handle, fail, log, bytes, concat } from "sluice-sdk";
//   export * from "sluice-sdk/exports"; // sluice_alloc and sluice_handle
//
//   handle((input: Uint8Array): Uint8Array => {
//     if (input.length == 0) return fail("empty input", "empty_input");
//     log.info("greeting " + input.length.toString() + " bytes");
//     return concat(bytes("hello, "), input);
//   });
//
// or, behind an HTTP trigger, handleHTTP((req: Request): Response => ...).
// Build with the SDK's asconfig.json (it routes AssemblyScript's abort,
// trace and seed into the SDK, so the module imports nothing the host
// lacks): see the README beside this file.

import * as abi from "./abi";

// Handler handles one call: the input's bytes in, the output's bytes out.
// The input is a view of the host's buffer, valid during the call only:
// copy (slice) what you keep across calls.
export type Handler = (input: Uint8Array) => Uint8Array;

// HTTPHandler handles one call behind an HTTP trigger.
export type HTTPHandler = (req: Request) => Response;

let handler: Handler | null = null;
let httpHandler: HTTPHandler | null = null;
let failed = false;

// handle registers the function's handler. Call it once, at the top level
// of the module's entry file.
export function handle(h: Handler): void {
  handler = h;
}

// handleHTTP registers an HTTP handler instead: it gets the request (the
// call's input is the body) and returns the response, whose status and
// headers an HTTP trigger answers with.
export function handleHTTP(h: HTTPHandler): void {
  httpHandler = h;
}

// fail fails the call with a message and, optionally, a code of the
// function's own (ABI 1.2: a lowercase letter, then up to 63 of a-z, 0-9,
// _ . -) that a workflow's retry.on and catch see instead of
// function_error. It returns an empty array so that a handler can write
//   return fail("card declined", "card_declined");
// The call fails whatever the handler returns after calling it.
export function fail(message: string, code: string = ""): Uint8Array {
  failed = true;
  const m = String.UTF8.encode(message);
  abi.fail(changetype<usize>(m), m.byteLength);
  if (code.length > 0) {
    const c = String.UTF8.encode(code);
    abi.error_code(changetype<usize>(c), c.byteLength);
  }
  return new Uint8Array(0);
}

// Log levels, as in the ABI.
export enum Level {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
}

// write writes one record to the function's logs (`sluice fn logs`).
function write(level: Level, message: string): void {
  const m = String.UTF8.encode(message);
  abi.log(level, changetype<usize>(m), m.byteLength);
}

// log writes one record to the function's logs: log.info("...").
export namespace log {
  export function debug(message: string): void { write(Level.Debug, message); }
  export function info(message: string): void { write(Level.Info, message); }
  export function warn(message: string): void { write(Level.Warn, message); }
  export function error(message: string): void { write(Level.Error, message); }
}

// META_BUFFER is the first buffer meta tries: most values (a method, a
// path, a trigger's name) fit, and a longer one costs a second call.
const META_BUFFER = 256;

// meta returns the call's metadata under key (abi/README.md lists the
// keys: "function", "invocation", "trigger", "http.method", ...), or null
// if the call has none.
export function meta(key: string): string | null {
  const k = String.UTF8.encode(key);
  let cap = META_BUFFER;
  while (true) {
    const buf = new ArrayBuffer(cap);
    const n = abi.meta_get(changetype<usize>(k), k.byteLength, changetype<usize>(buf), cap);
    if (n < 0) return null;
    if (n <= cap) return String.UTF8.decodeUnsafe(changetype<usize>(buf), n);
    cap = n;
  }
}

// setStatus sets the HTTP status (200 to 599) an HTTP trigger answers the
// call's request with; any other fails the call. Without it, 200.
export function setStatus(code: i32): void {
  abi.http_status(code);
}

// addHeader adds one value of an HTTP response header; call it again for
// several values of one name (Set-Cookie). A name that is not an HTTP
// token or a value with CR, LF or NUL fails the call.
export function addHeader(name: string, value: string): void {
  const n = String.UTF8.encode(name);
  const v = String.UTF8.encode(value);
  abi.http_header(changetype<usize>(n), n.byteLength, changetype<usize>(v), v.byteLength);
}

// bytes returns a string's UTF-8 bytes.
export function bytes(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

// text decodes UTF-8 bytes (an invalid sequence becomes U+FFFD).
export function text(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, b.byteLength);
}

// concat returns a followed by b, in a new array.
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// Header is one value of a request's or a response's header.
export class Header {
  constructor(public name: string, public value: string) {}
}

// Request is the HTTP request behind an HTTP trigger, rebuilt from the
// call's metadata; body is the call's input. A call that did not come
// through HTTP (fn invoke, a queue, a workflow) has method "POST" and an
// empty path.
export class Request {
  method: string = "POST";
  path: string = "";
  query: string = "";
  body: Uint8Array = new Uint8Array(0);

  // header returns the values of a request header, by name in any case,
  // joined with ", "; null if the request has none.
  header(name: string): string | null {
    return meta("http.header." + name.toLowerCase());
  }

  // headers returns every request header value, names in canonical form
  // (Content-Type), sorted, the values of a name in the order sent.
  headers(): Header[] {
    const out = new Array<Header>();
    const all = meta("http.headers");
    if (all == null) return out;
    const lines = all.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(": ");
      if (colon > 0) out.push(new Header(line.substring(0, colon), line.substring(colon + 2)));
    }
    return out;
  }

  // param returns the value of the route's parameter {name}, or null.
  param(name: string): string | null {
    return meta("http.param." + name);
  }

  // text returns the body decoded as UTF-8.
  text(): string {
    return text(this.body);
  }
}

// Response is what an HTTP handler answers.
export class Response {
  headers: Header[] = new Array<Header>();

  constructor(public status: i32 = 200, public body: Uint8Array = new Uint8Array(0)) {}

  // text answers status with a UTF-8 body and Content-Type text/plain.
  static text(status: i32, body: string): Response {
    return new Response(status, bytes(body)).header("Content-Type", "text/plain; charset=utf-8");
  }

  // header adds one header value and returns the response.
  header(name: string, value: string): Response {
    this.headers.push(new Header(name, value));
    return this;
  }
}

// Exported for sluice-sdk/exports only: runs one call, and tells whether
// it succeeded.
export function __sluice_call(input: Uint8Array): bool {
  failed = false;
  const h = handler;
  if (h != null) {
    const out = h(input);
    if (failed) return false;
    abi.output(out.dataStart, out.byteLength);
    return true;
  }
  const hh = httpHandler;
  if (hh != null) {
    const req = new Request();
    const method = meta("http.method");
    if (method != null) req.method = method;
    const path = meta("http.path");
    if (path != null) req.path = path;
    const query = meta("http.query");
    if (query != null) req.query = query;
    req.body = input;
    const resp = hh(req);
    if (failed) return false;
    if (resp.status != 200) setStatus(resp.status);
    for (let i = 0; i < resp.headers.length; i++) addHeader(resp.headers[i].name, resp.headers[i].value);
    abi.output(resp.body.dataStart, resp.body.byteLength);
    return true;
  }
  // without a code: a module imports error_code only if it uses codes
  const m = String.UTF8.encode("no handler: call handle(...) or handleHTTP(...) at the top level of the module's entry file");
  abi.fail(changetype<usize>(m), m.byteLength);
  return false;
}

// Where AssemblyScript's own imports go (asconfig.json's "use"), so that
// the module imports only what sluice provides.

// sluiceAbort replaces AssemblyScript's abort (a failed assert, a throw,
// an index out of range): it writes "panic: MESSAGE at FILE:LINE:COLUMN"
// to stderr, which goes to the function's logs and the call's error, and
// exits with code 2, as a Go guest's panic does. The instance is thrown
// away; the next call gets a fresh one.
export function sluiceAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let s = "panic: " + (message != null ? message : "abort");
  if (fileName != null) s += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  writeFd(2, bytes(s + "\n"));
  abi.proc_exit(2);
}

// sluiceTrace replaces AssemblyScript's trace: a debug log record.
export function sluiceTrace(message: string, n: i32 = 0, a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0, a4: f64 = 0): void {
  let s = message;
  if (n > 0) s += " " + a0.toString();
  if (n > 1) s += ", " + a1.toString();
  if (n > 2) s += ", " + a2.toString();
  if (n > 3) s += ", " + a3.toString();
  if (n > 4) s += ", " + a4.toString();
  write(Level.Debug, s);
}

// sluiceSeed replaces AssemblyScript's seed (Math.random's) with 8 bytes
// of the host's cryptographic randomness.
export function sluiceSeed(): f64 {
  const buf = new ArrayBuffer(8);
  abi.random_get(changetype<usize>(buf), 8);
  return <f64>load<u64>(changetype<usize>(buf));
}

// writeFd writes all of b to a WASI file descriptor (1 stdout, 2 stderr).
export function writeFd(fd: u32, b: Uint8Array): void {
  const iov = new ArrayBuffer(12);
  const p = changetype<usize>(iov);
  let off = 0;
  while (off < b.byteLength) {
    store<u32>(p, b.dataStart + off);
    store<u32>(p, b.byteLength - off, 4);
    if (abi.fd_write(fd, p, 1, p + 8) != 0) return;
    const n = load<u32>(p, 8);
    if (n == 0) return;
    off += n;
  }
}

// now returns the wall clock in milliseconds since the Unix epoch
// (Date.now() imports env.Date.now, which sluice does not provide).
export function now(): i64 {
  const buf = new ArrayBuffer(8);
  abi.clock_time_get(0, 1000, changetype<usize>(buf));
  return <i64>(load<u64>(changetype<usize>(buf)) / 1000000);
}
