// A test harness for sluice functions written with sluice-sdk: it runs
// the compiled module under node the way sluice runs it (the sluice guest
// ABI's reactor calls, its "sluice" imports, WASI preview 1 without a
// filesystem), so that a handler is tested without a daemon:
//
//   import { load } from "sluice-sdk/harness";
//   const fn = await load("hello.wasm");
//   const r = fn.call("Ada");                 // or a Uint8Array
//   assert.equal(r.text, "hello, Ada");
//   const h = fn.call("", { "http.method": "GET" }); // with metadata
//
// A result is { ok, output (Uint8Array), text, error, code, kind,
// exitCode, logs: [{ level, message }], stderr, status, headers }.
// kind is "" on success, else what sluice reports: "function_error" (the
// handler failed), "trap", or "exit" (an abort: the instance is gone and
// the next call gets a fresh one, as under sluice).

import { readFile } from "node:fs/promises";
import { randomFillSync } from "node:crypto";

const LEVELS = ["debug", "info", "warn", "error"];
const ENOSYS = 52;
const MIN_INPUT = 1024; // the host's smallest input buffer

class Exit extends Error {
  constructor(code) {
    super(`exit ${code}`);
    this.code = code;
  }
}

/**
 * load compiles a module (a path or a file: URL, or its bytes) and returns
 * a function to call it with. options.env: the environment variables a deployment's
 * --env would give.
 */
export async function load(module, options = {}) {
  const bytes = typeof module === "string" || module instanceof URL ? await readFile(module) : module;
  const compiled = await WebAssembly.compile(bytes);
  return new Fn(compiled, options.env || {});
}

class Fn {
  constructor(compiled, env) {
    this.compiled = compiled;
    this.env = env;
    this.instance = null;
  }

  instantiate() {
    const self = this;
    const mem = () => new Uint8Array(self.instance.exports.memory.buffer);
    const view = () => new DataView(self.instance.exports.memory.buffer);
    const str = (ptr, len) => new TextDecoder().decode(mem().subarray(ptr, ptr + len));
    const sluice = {
      output(ptr, len) { self.call_.output = mem().slice(ptr, ptr + len); },
      fail(ptr, len) { self.call_.error = str(ptr, len); },
      log(level, ptr, len) { self.call_.logs.push({ level: LEVELS[level] || "info", message: str(ptr, len) }); },
      meta_get(kp, kl, bp, cap) {
        const v = self.call_.meta[str(kp, kl)];
        if (v === undefined) return -1;
        const b = new TextEncoder().encode(String(v));
        mem().set(b.subarray(0, Math.min(b.length, cap)), bp);
        return b.length;
      },
      http_status(code) { self.call_.status = code; },
      http_header(np, nl, vp, vl) { self.call_.headers.push([str(np, nl), str(vp, vl)]); },
      error_code(ptr, len) { self.call_.code = str(ptr, len); },
    };
    const envBytes = Object.entries(this.env).map(([k, v]) => new TextEncoder().encode(`${k}=${v}\0`));
    const wasi = {
      fd_write(fd, iovs, n, written) {
        let total = 0;
        for (let i = 0; i < n; i++) {
          const p = view().getUint32(iovs + 8 * i, true), l = view().getUint32(iovs + 8 * i + 4, true);
          const chunk = str(p, l);
          if (fd === 1) self.call_.stdout += chunk;
          else if (fd === 2) self.call_.stderr += chunk;
          else return 8; // EBADF
          total += l;
        }
        view().setUint32(written, total, true);
        return 0;
      },
      fd_read(fd, iovs, n, read) { view().setUint32(read, 0, true); return fd === 0 ? 0 : 8; },
      proc_exit(code) { throw new Exit(code); },
      random_get(buf, len) { randomFillSync(mem(), buf, len); return 0; },
      clock_time_get(id, precision, out) { view().setBigUint64(out, BigInt(Date.now()) * 1000000n, true); return 0; },
      environ_sizes_get(count, size) {
        view().setUint32(count, envBytes.length, true);
        view().setUint32(size, envBytes.reduce((s, b) => s + b.length, 0), true);
        return 0;
      },
      environ_get(environ, buf) {
        for (const [i, b] of envBytes.entries()) {
          view().setUint32(environ + 4 * i, buf, true);
          mem().set(b, buf);
          buf += b.length;
        }
        return 0;
      },
    };
    const imports = {};
    for (const imp of WebAssembly.Module.imports(this.compiled)) {
      if (imp.kind !== "function") throw new Error(`the module imports ${imp.kind} ${imp.module}.${imp.name}: sluice provides functions only`);
      const table = imp.module === "sluice" ? sluice : imp.module === "wasi_snapshot_preview1" ? wasi : null;
      if (table === null) throw new Error(`the module imports ${imp.module}.${imp.name}: sluice provides only "sluice" and "wasi_snapshot_preview1" (build with sluice-sdk's asconfig.json)`);
      if (!(imp.name in table) && imp.module === "sluice") throw new Error(`the module imports sluice.${imp.name}, which is not in the sluice ABI`);
      imports[imp.module] ||= {};
      imports[imp.module][imp.name] = table[imp.name] || (() => ENOSYS);
    }
    this.call_ = newCall({});
    this.instance = new WebAssembly.Instance(this.compiled, imports);
    if (this.instance.exports._initialize) this.instance.exports._initialize();
    this.inPtr = 0;
    this.inCap = 0;
  }

  /** call runs one call with input (a string or bytes) and metadata. */
  call(input, meta = {}) {
    const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
    const c = newCall({ function: "test", version: "1", invocation: "test-1", ...meta });
    let ok = false;
    try {
      if (this.instance === null) this.instantiate();
      this.call_ = c;
      const ex = this.instance.exports;
      if (bytes.length > this.inCap) {
        if (this.inCap > 0 && ex.sluice_free) ex.sluice_free(this.inPtr, this.inCap);
        let size = MIN_INPUT;
        while (size < bytes.length) size *= 2;
        this.inPtr = ex.sluice_alloc(size) >>> 0;
        this.inCap = size;
      }
      new Uint8Array(ex.memory.buffer).set(bytes, this.inPtr);
      const status = ex.sluice_handle(this.inPtr, bytes.length);
      ok = status === 0;
      if (!ok) {
        c.kind = "function_error";
        c.error ||= `sluice_handle returned status ${status} without a message`;
      }
    } catch (e) {
      this.instance = null; // as under sluice: a trap or an exit throws the instance away
      if (e instanceof Exit) {
        c.kind = "exit";
        c.exitCode = e.code;
        c.error = c.stderr.trim().split("\n").pop() || `exit ${e.code}`;
      } else if (e instanceof WebAssembly.RuntimeError) {
        c.kind = "trap";
        c.error = e.message;
      } else {
        throw e;
      }
    }
    if (!ok) {
      c.output = new Uint8Array(0);
      if (c.kind !== "function_error") c.code = "";
    }
    c.ok = ok;
    c.text = new TextDecoder().decode(c.output);
    delete c.meta;
    return c;
  }
}

function newCall(meta) {
  return {
    ok: false, output: new Uint8Array(0), text: "", error: "", code: "", kind: "", exitCode: 0,
    logs: [], stdout: "", stderr: "", status: 0, headers: [], meta,
  };
}
