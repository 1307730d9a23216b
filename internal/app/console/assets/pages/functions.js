// Functions: the list, and a function's page (limits, config with env
// values masked, what uses it, its logs streaming live, an invoke form).
import { AuthError, events, get, ndjson, request } from "../api.js";
import { bytes, clear, enc, h, link, table, time } from "../dom.js";

export async function list(c) {
  c.root.append(h("h1", {}, "Functions"));
  const fns = await get("/v1/functions", { signal: c.signal });
  // calls/s and errors/s over the last minute, from the figures' stream
  const rates = new Map(fns.map((f) => [f.name, [h("span", { class: "rate" }, "0"), h("span", { class: "rate" }, "0")]]));
  c.root.append(table(["Name", "Version", "ABI", "Size", "Deployed", "Triggers", "Calls/s", "Errors/s"],
    fns.map((f) => [link("#/functions/" + enc(f.name), f.name), "v" + f.version, f.abi, bytes(f.size), time(f.deployed), (f.triggers || []).join(", "), ...rates.get(f.name)]),
    "No function is deployed (sluice fn deploy NAME FILE.wasm)."));
  if (fns.length === 0) return;
  events("/v1/figures/stream?window=" + figuresWindow, (name, snap) => {
    if (name !== "figures") return;
    for (const [fn, [calls, errors]] of rates) {
      const f = snap.functions[fn] || {};
      clear(calls).append(rate(f.calls_per_second));
      clear(errors).append(rate(f.errors_per_second));
      errors.classList.toggle("error", (f.errors_per_second || 0) > 0);
    }
  }, c.signal).catch(c.fail);
}

// figuresWindow is the window of the figures the pages show: a minute,
// so that they move soon after a change.
const figuresWindow = "1m";

// rate writes a rate per second: two significant digits below 10.
function rate(v) {
  v = v || 0;
  return v === 0 ? "0" : v < 10 ? v.toPrecision(2) : v.toFixed(0);
}

// ms writes a latency in milliseconds.
function ms(v) {
  return v ? (v < 1 ? v.toPrecision(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) + " ms" : "–";
}

// maxLogLines bounds the log lines a page keeps: a busy function logs
// without end, and the page shows the newest.
const maxLogLines = 500;

export async function one(c, name) {
  const [f, wfs, trs, versions] = await Promise.all([
    get("/v1/functions/" + enc(name), { signal: c.signal }),
    get("/v1/workflows", { signal: c.signal }).catch(() => []),
    get("/v1/triggers", { signal: c.signal }).catch(() => []),
    get("/v1/functions/" + enc(name) + "/versions", { signal: c.signal }).catch(() => []),
  ]);
  c.root.append(
    h("h1", {}, "Function ", h("code", {}, f.name)),
    h("dl", { class: "facts" },
      h("dt", {}, "Version"), h("dd", {}, "v" + f.version + " (deployed " + time(f.deployed) + ")"),
      h("dt", {}, "ABI"), h("dd", {}, f.abi + (f.cgi ? " (CGI)" : "")),
      h("dt", {}, "Module"), h("dd", {}, h("code", {}, f.module.slice(0, 16)), " · " + bytes(f.size)),
      f.stats ? [h("dt", {}, "Calls here"), h("dd", {}, `${f.stats.Calls} calls, ${f.stats.Errors} errors, ${f.stats.ColdStarts} cold starts, ${f.stats.Active} running`)] : null),
    h("h2", {}, "Limits"),
    table(["Memory", "Timeout", "Concurrency", "Max input", "Max output"],
      [[bytes(f.limits.memory), f.limits.timeout, String(f.limits.concurrency), bytes(f.limits.max_input), bytes(f.limits.max_output)]]),
    h("h2", {}, "Config"),
    table(["Env", "Value"], Object.keys(f.env || {}).sort().map((k) => [h("code", {}, k), h("code", { class: "masked" }, f.env[k])]),
      "No env (values are masked; sluice fn get --show-env shows them)."),
    h("h2", {}, "Versions"),
    table(["Version", "Module", "Size", "Memory", "Timeout", "Deployed"], versions.map((v) => [
      "v" + v.version + (v.version === f.version ? " (current)" : ""), h("code", {}, v.module.slice(0, 12)), bytes(v.size),
      bytes(v.limits.memory), v.limits.timeout, time(v.deployed),
    ]), "Only the current version."));
  const triggers = trs.filter((t) => t.function === name);
  const users = wfs.filter((w) => (w.functions || []).includes(name));
  c.root.append(h("h2", {}, "Used by"),
    table(["Kind", "Name", "What"], [
      ...triggers.map((t) => ["trigger", t.name, triggerWhat(t)]),
      ...users.map((w) => ["workflow", link("#/workflows/" + enc(w.name), w.name), "v" + w.version]),
    ], "No trigger or workflow uses it."));
  c.root.append(liveFigures(c, name));
  c.root.append(invokeForm(c, name));
  const logs = h("pre", { class: "logs", id: "logs" });
  const note = h("span", { class: "muted" }, " following…");
  c.root.append(h("h2", {}, "Logs", note), logs);
  ndjson("/v1/functions/" + enc(name) + "/logs?follow=true&tail=50", (rec) => {
    if (rec.error) {
      logs.append(h("div", { class: "log error" }, rec.error));
      return;
    }
    logs.append(h("div", { class: "log log-" + (rec.level || "info").toLowerCase() },
      h("span", { class: "muted" }, time(rec.time) + " v" + rec.version + " "),
      h("span", { class: "stream" }, rec.stream + " "),
      rec.message));
    while (logs.childNodes.length > maxLogLines) logs.removeChild(logs.firstChild);
    logs.scrollTop = logs.scrollHeight;
  }, c.signal).then(() => clear(note).append(" (stream ended)"), c.fail);
}

// liveFigures shows the function's figures over the last minute on this
// daemon (calls/s, errors/s, p50, p99, in flight), updated by the
// figures' stream at each sample.
function liveFigures(c, name) {
  const cells = {
    calls: h("dd", { id: "fig-calls" }, "0"), errors: h("dd", { id: "fig-errors" }, "0"),
    p50: h("dd", { id: "fig-p50" }, "–"), p99: h("dd", { id: "fig-p99" }, "–"), inflight: h("dd", { id: "fig-inflight" }, "0"),
  };
  const at = h("span", { class: "muted" }, "");
  const box = h("section", { id: "figures" },
    h("h2", {}, "Live figures ", h("span", { class: "muted" }, "(last " + figuresWindow + ", this daemon) "), at),
    h("dl", { class: "facts" },
      h("dt", {}, "Calls/s"), cells.calls, h("dt", {}, "Errors/s"), cells.errors,
      h("dt", {}, "p50"), cells.p50, h("dt", {}, "p99"), cells.p99, h("dt", {}, "In flight"), cells.inflight));
  events("/v1/figures/stream?window=" + figuresWindow, (ev, snap) => {
    if (ev !== "figures") return;
    const f = snap.functions[name] || {};
    clear(cells.calls).append(rate(f.calls_per_second));
    clear(cells.errors).append(rate(f.errors_per_second));
    cells.errors.classList.toggle("error", (f.errors_per_second || 0) > 0);
    clear(cells.p50).append(ms(f.p50_ms));
    clear(cells.p99).append(ms(f.p99_ms));
    clear(cells.inflight).append(String(f.in_flight || 0));
    clear(at).append("at " + time(snap.at));
  }, c.signal).catch(c.fail);
  return box;
}

// utf8 reads a header's value as UTF-8 (fetch gives its bytes as
// Latin-1: the µ of "45µs").
function utf8(s) {
  return new TextDecoder().decode(Uint8Array.from(s, (c) => c.charCodeAt(0)));
}

function triggerWhat(t) {
  if (t.http) return (t.http.method || "any") + " /fn" + t.http.path;
  if (t.queue) return "topic " + t.queue.topic + (t.queue.resp_topic ? " → " + t.queue.resp_topic : "");
  if (t.cron) return "cron " + (t.cron.schedule || t.cron.every || "");
  return "";
}

// invokeForm calls the function through the API (POST .../invoke, as
// sluice fn invoke does), with the text given as its input.
function invokeForm(c, name) {
  const input = h("textarea", { id: "invoke-input", rows: 3, placeholder: "input (sent as it is)" });
  const out = h("pre", { class: "output", id: "invoke-output" });
  const form = h("form", { class: "invoke", id: "invoke" }, h("h2", {}, "Invoke"), input, h("button", { type: "submit" }, "Invoke"), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(out).append("…");
    try {
      const res = await request("/v1/functions/" + enc(name) + "/invoke", { method: "POST", body: input.value, signal: c.signal });
      const text = await res.text();
      const took = utf8(res.headers.get("X-Sluice-Duration") || "");
      clear(out).append(h("span", { class: "muted" }, `v${res.headers.get("X-Sluice-Version")} · ${took} · ${res.headers.get("X-Sluice-Invocation")}\n`), text);
    } catch (err) {
      clear(out).append(h("span", { class: "error" }, err.message));
      if (err instanceof AuthError) c.fail(err);
    }
  });
  return form;
}
