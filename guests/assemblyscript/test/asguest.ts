// The SDK's test module: each input is a command that exercises one part
// of the SDK (the harness test and sluice's own tests call it).

import { handle, fail, log, meta, bytes, text, now } from "sluice-sdk";
export * from "sluice-sdk/exports";

let calls = 0;
let spin: u64 = 0;

handle((input: Uint8Array): Uint8Array => {
  calls++;
  const cmd = text(input);
  if (cmd.startsWith("fail:")) return fail(cmd.substring(5), "guest_failed");
  if (cmd.startsWith("failnocode:")) return fail(cmd.substring(11));
  if (cmd.startsWith("abort:")) assert(false, cmd.substring(6));
  if (cmd.startsWith("throw:")) throw new Error(cmd.substring(6));
  if (cmd == "unreachable") unreachable();
  if (cmd == "oob") {
    const a = new Array<i32>(2);
    return bytes(a[input.length].toString());
  }
  if (cmd == "loop") {
    while (true) spin++;
  }
  if (cmd.startsWith("meta:")) {
    const v = meta(cmd.substring(5));
    return bytes(v != null ? v : "<absent>");
  }
  if (cmd.startsWith("log:")) {
    log.debug("d " + cmd.substring(4));
    log.info("i " + cmd.substring(4));
    log.warn("w " + cmd.substring(4));
    log.error("e " + cmd.substring(4));
    return new Uint8Array(0);
  }
  if (cmd == "calls") return bytes(calls.toString());
  if (cmd == "random") {
    const r = Math.random();
    return bytes(r >= 0 && r < 1 ? "ok" : "bad " + r.toString());
  }
  if (cmd == "trace") {
    trace("traced", 2, 1.5, 2);
    return new Uint8Array(0);
  }
  if (cmd == "now") return bytes(now().toString());
  if (cmd.startsWith("garbage:")) {
    // allocate N MiB in 64 KiB pieces, kept nowhere: the collector must
    // give them back, or a pooled instance runs into its memory limit
    const n = I32.parseInt(cmd.substring(8));
    let sum = 0;
    for (let i = 0; i < n * 16; i++) {
      const b = new Uint8Array(64 * 1024);
      b[i % b.length] = 1;
      sum += b[i % b.length];
    }
    return bytes(sum.toString());
  }
  // anything else: echoed back, byte for byte
  return input.slice();
});
