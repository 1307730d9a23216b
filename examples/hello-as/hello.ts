// hello-as: a sluice function in AssemblyScript, over bytes.
// Build: make build/wasm/hello-as.wasm (see guests/assemblyscript).
//
//   sluice fn deploy hello-as build/wasm/hello-as.wasm
//   sluice fn invoke hello-as --data Ada      # hello, Ada

import { handle, fail, log, bytes, concat } from "sluice-sdk";
export * from "sluice-sdk/exports";

const HELLO = bytes("hello, ");

handle((input: Uint8Array): Uint8Array => {
  if (input.length == 0) return fail("empty input", "empty_input");
  log.info("greeting " + input.length.toString() + " bytes");
  return concat(HELLO, input);
});
