// WASI preview 1 for a command (a module that exports _start, which
// sluice runs once per call): stdin is the call's input, stdout its
// output, stderr its logs, the exit code its success (0) or failure.
// A reactor does not need these: its handler gets the input and returns
// the output.

import * as abi from "./abi";
import { bytes, writeFd } from "./index";

// READ_CHUNK is how much readAll asks for at a time.
const READ_CHUNK = 64 * 1024;

// readAll reads stdin to its end.
export function readAll(): Uint8Array {
  let out = new Uint8Array(0);
  const chunk = new Uint8Array(READ_CHUNK);
  const iov = new ArrayBuffer(12);
  const p = changetype<usize>(iov);
  while (true) {
    store<u32>(p, chunk.dataStart);
    store<u32>(p, READ_CHUNK, 4);
    if (abi.fd_read(0, p, 1, p + 8) != 0) break;
    const n = load<u32>(p, 8);
    if (n == 0) break;
    const next = new Uint8Array(out.length + n);
    next.set(out);
    next.set(chunk.subarray(0, n), out.length);
    out = next;
  }
  return out;
}

// write writes a string, UTF-8, to fd (1 stdout, 2 stderr).
export function write(fd: u32, s: string): void {
  writeFd(fd, bytes(s));
}

// writeBytes writes bytes to fd (1 stdout, 2 stderr).
export function writeBytes(fd: u32, b: Uint8Array): void {
  writeFd(fd, b);
}

// environ returns the environment, one "KEY=VALUE" per variable: the
// deployment's --env, and sluice's metadata variables (SLUICE_*).
export function environ(): string[] {
  const out = new Array<string>();
  const sizes = new ArrayBuffer(8);
  const sp = changetype<usize>(sizes);
  if (abi.environ_sizes_get(sp, sp + 4) != 0) return out;
  const count = <usize>load<u32>(sp), size = <usize>load<u32>(sp, 4);
  if (count == 0) return out;
  const ptrs = new ArrayBuffer(<i32>count * 4);
  const buf = new ArrayBuffer(<i32>size);
  const pp = changetype<usize>(ptrs), bp = changetype<usize>(buf);
  if (abi.environ_get(pp, bp) != 0) return out;
  for (let i: usize = 0; i < count; i++) {
    const start = <usize>load<u32>(pp + i * 4);
    let end = start;
    while (end < bp + size && load<u8>(end) != 0) end++;
    out.push(String.UTF8.decodeUnsafe(start, end - start));
  }
  return out;
}

// exit ends the command with code: 0 succeeds, any other fails the call.
export function exit(code: u32): void {
  abi.proc_exit(code);
  unreachable();
}
