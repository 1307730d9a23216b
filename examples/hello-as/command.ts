// greet-as: a WASI command in AssemblyScript (no sluice imports): it reads
// stdin, writes stdout and stderr, and sets its exit code, as a command
// built by any toolchain does. It behaves the same under sluice as under
// any WASI runtime given the same stdin and environment.
//
//   sluice fn deploy greet-as build/wasm/greet-as.wasm --env GREETING=Hi
//   sluice fn invoke greet-as --data Ada      # Hi, Ada

import { readAll, write, writeBytes, environ, exit } from "sluice-sdk/wasi";

export function _start(): void {
  const input = readAll();
  if (input.length == 0) {
    write(2, "nobody to greet: send a name\n");
    exit(3);
  }
  let greeting = "hello";
  let others = "";
  const env = environ();
  for (let i = 0; i < env.length; i++) {
    const kv = env[i];
    if (kv.startsWith("GREETING=")) greeting = kv.substring(9);
    // sluice's own metadata variables differ per call: list the others
    else if (!kv.startsWith("SLUICE_")) others += "env " + kv + "\n";
  }
  write(2, "greeting " + input.length.toString() + " bytes\n");
  write(1, greeting + ", ");
  writeBytes(1, input);
  write(1, "\n" + others);
}
