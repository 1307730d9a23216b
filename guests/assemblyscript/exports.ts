// The reactor's exports of the sluice ABI. A function's entry file
// re-exports them, and nothing else is needed:
//
//   export * from "sluice-sdk/exports";

import { __sluice_call } from "./index";

// The host's input buffers, by address: held here so that the garbage
// collector keeps them, and never moved (AssemblyScript's allocator does
// not move objects), as the ABI requires.
const buffers = new Map<usize, ArrayBuffer>();

// sluice_alloc returns size writable bytes for the host's input.
export function sluice_alloc(size: usize): usize {
  const buf = new ArrayBuffer(<i32>size);
  const ptr = changetype<usize>(buf);
  buffers.set(ptr, buf);
  return ptr;
}

// sluice_free drops a buffer the host no longer uses.
export function sluice_free(ptr: usize, size: usize): void {
  if (buffers.has(ptr)) buffers.delete(ptr);
}

// sluice_handle runs one call on the len bytes at ptr: 0 if it succeeded.
export function sluice_handle(ptr: usize, len: usize): u32 {
  let input: Uint8Array;
  if (buffers.has(ptr)) {
    input = Uint8Array.wrap(buffers.get(ptr), 0, <i32>len);
  } else {
    // not a buffer of ours (an empty input may come without one): copy
    input = new Uint8Array(<i32>len);
    memory.copy(input.dataStart, ptr, len);
  }
  return __sluice_call(input) ? 0 : 1;
}
