// Topology: the system's graph drawn by the daemon (GET
// /v1/graph?format=svg: routes, timers and topics, then triggers, then
// functions and workflows, then the topics they answer on), each node
// linking to its page; live figures (GET /v1/figures, then its stream)
// on each trigger's edge to what it calls, failing parts highlighted.
// The drawing is asked again only when the graph changes: the page reads
// GET /v1/graph every graphPeriod, and when the window gets the focus.
// Below, the graph listed by kind: the drawing's text alternative.
import { APIError, events, get, request } from "../api.js";
import { clear, enc, h, link, table } from "../dom.js";

// graphPeriod is how often an open page asks whether the graph changed:
// deploys are rare, and each ask builds the graph (and asks the broker
// for its topics).
const graphPeriod = 30000;
// focusGap is the least time between two asks on focus: switching
// windows back and forth must not storm the daemon.
const focusGap = 5000;
// figuresWindow is the window of the live figures.
const figuresWindow = "5m";

const order = ["route", "timer", "topic", "trigger", "function", "workflow", "dynamic"];

export async function show(c) {
  c.root.append(h("h1", {}, "Topology"));
  let g;
  try {
    g = await get("/v1/graph", { signal: c.signal });
  } catch (err) {
    if (err instanceof APIError && err.status === 404) {
      c.root.append(h("p", { class: "muted" }, "This daemon does not serve the graph (GET /v1/graph) yet."));
      return;
    }
    throw err;
  }
  const drawing = h("div", { class: "topology", id: "topology" }, h("p", { class: "muted" }, "Drawing…"));
  const note = h("p", { class: "muted", id: "figures-note" }, "Live figures: asking…");
  const list = h("div", { id: "topology-list" });
  c.root.append(note, drawing, h("h2", {}, "By kind"), list);
  let key = structure(g);
  let figures = null;
  const redraw = async () => {
    await draw(c, drawing);
    overlay(drawing, g, figures);
  };
  listByKind(list, g);
  await redraw();
  figuresLive(c, note, (f) => {
    figures = f;
    overlay(drawing, g, figures);
  });
  let asked = Date.now();
  const check = async () => {
    asked = Date.now();
    try {
      const now = await get("/v1/graph", { signal: c.signal });
      g = now;
      listByKind(list, g);
      const k = structure(g);
      if (k !== key) {
        key = k;
        await redraw();
      } else {
        overlay(drawing, g, figures);
      }
    } catch (err) {
      c.fail(err);
    }
  };
  const timer = setInterval(check, graphPeriod);
  const onFocus = () => {
    if (Date.now() - asked >= focusGap) check();
  };
  window.addEventListener("focus", onFocus);
  c.signal.addEventListener("abort", () => {
    clearInterval(timer);
    window.removeEventListener("focus", onFocus);
  });
}

// structure is what the drawing shows of a graph: its nodes and edges,
// not its topics' message counts.
function structure(g) {
  return JSON.stringify([
    (g.nodes || []).map((n) => [n.id, n.missing, n.function && n.function.version, n.workflow && [n.workflow.version, n.workflow.error]]),
    (g.edges || []).map((e) => [e.from, e.to, e.kind]),
  ]);
}

// draw shows the daemon's SVG, parsed as SVG (never as HTML).
async function draw(c, box) {
  try {
    const res = await request("/v1/graph?format=svg", { signal: c.signal });
    const doc = new DOMParser().parseFromString(await res.text(), "image/svg+xml");
    if (doc.querySelector("parsererror")) throw new Error("the daemon's drawing is not SVG");
    clear(box).append(document.importNode(doc.documentElement, true));
  } catch (err) {
    if (c.signal.aborted) return;
    if (err instanceof APIError && err.status === 413) {
      clear(box).append(h("p", { class: "muted" }, err.message + " The graph is listed by kind below."));
      return;
    }
    if (err instanceof APIError && err.status === 400) {
      clear(box).append(h("p", { class: "muted" }, "This daemon does not draw the graph yet; it is listed by kind below."));
      return;
    }
    throw err;
  }
}

// figuresLive reads the figures once, then follows their stream; a
// daemon without them (404) leaves the drawing without figures.
async function figuresLive(c, note, onFigures) {
  try {
    onFigures(await get("/v1/figures?window=" + figuresWindow, { signal: c.signal }));
  } catch (err) {
    if (c.signal.aborted) return;
    clear(note).append(err instanceof APIError && err.status === 404
      ? "No live figures: this daemon does not serve them (GET /v1/figures)."
      : "No live figures: " + err.message);
    return;
  }
  clear(note).append("Live figures over the last " + figuresWindow + ": calls/s and errors/s on each trigger's edge; failing parts in red.");
  events("/v1/figures/stream?window=" + figuresWindow, (name, v) => {
    if (v && (v.functions || v.triggers || v.workflows)) onFigures(v);
  }, c.signal).catch(() => {
    if (!c.signal.aborted) note.append(" (The stream of figures ended; reload to follow them again.)");
  });
}

function rate(x) {
  if (!x) return "0";
  return x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(2);
}

// overlay writes the figures on the edges and marks what fails: a
// function or a trigger with errors, a trigger with dead letters (and
// its error topic), a workflow whose invocations fail.
function overlay(box, g, f) {
  const svg = box.querySelector("svg");
  if (!svg) return;
  for (const el of svg.querySelectorAll(".failing-live")) el.classList.remove("failing-live");
  const fns = (f && f.functions) || {};
  const trs = (f && f.triggers) || {};
  const wfs = (f && f.workflows) || {};
  const mark = (id, why) => {
    const el = svg.querySelector(`g.node[data-id="${CSS.escape(id)}"]`);
    if (!el) return;
    el.classList.add("failing-live");
    const t = el.querySelector("title");
    if (t) t.textContent = t.textContent.split(" — ")[0] + " — " + why;
  };
  for (const [name, x] of Object.entries(fns)) {
    if (x.errors_per_second > 0) mark("function:" + name, rate(x.errors_per_second) + " errors/s");
  }
  for (const [name, x] of Object.entries(wfs)) {
    if (x.failed_per_second > 0) mark("workflow:" + name, rate(x.failed_per_second) + " failed/s");
  }
  for (const [name, x] of Object.entries(trs)) {
    if (x.failures_per_second > 0 || x.dead_letters > 0) {
      mark("trigger:" + name, rate(x.failures_per_second) + " failures/s, " + (x.dead_letters || 0) + " dead letters");
    }
    if (x.dead_letters > 0) {
      for (const e of g.edges || []) {
        if (e.kind === "error" && e.trigger === name) mark(e.to, (x.dead_letters || 0) + " dead letters");
      }
    }
  }
  for (const t of svg.querySelectorAll("text.figure")) {
    const trigger = t.dataset.from.replace(/^trigger:/, "");
    const [kind, name] = splitID(t.dataset.to);
    const x = trs[trigger];
    let calls, errs;
    if (x) [calls, errs] = [x.deliveries_per_second, x.failures_per_second];
    else if (kind === "function" && fns[name]) [calls, errs] = [fns[name].calls_per_second, fns[name].errors_per_second];
    else if (kind === "workflow" && wfs[name]) [calls, errs] = [wfs[name].invocations_per_second, wfs[name].failed_per_second];
    const path = svg.querySelector(`path.edge[data-from="${CSS.escape(t.dataset.from)}"][data-to="${CSS.escape(t.dataset.to)}"]`);
    const failing = errs > 0;
    t.textContent = calls === undefined ? "" : rate(calls) + "/s" + (failing ? " · " + rate(errs) + " err/s" : "");
    t.classList.toggle("failing-live", failing);
    if (path) path.classList.toggle("failing-live", failing);
  }
}

function splitID(id) {
  const i = id.indexOf(":");
  return [id.slice(0, i), id.slice(i + 1)];
}

function listByKind(box, g) {
  const nodes = g.nodes || [];
  const edges = g.edges || [];
  const byID = new Map(nodes.map((n) => [n.id, n]));
  const kinds = [...new Set(nodes.map((n) => n.kind))].sort((a, b) => rank(a) - rank(b));
  clear(box);
  for (const w of g.warnings || []) box.append(h("p", { class: "muted" }, w));
  for (const kind of kinds) {
    const ns = nodes.filter((n) => n.kind === kind);
    box.append(h("h3", {}, kind + "s (" + ns.length + ")"),
      table(["Name", "Feeds", "Fed by", ""], ns.map((n) => [
        nodeLink(n),
        edges.filter((e) => e.from === n.id).map((e) => nodeLink(byID.get(e.to) || { id: e.to })).flatMap((x, i) => [i ? ", " : "", x]),
        edges.filter((e) => e.to === n.id).map((e) => nodeLink(byID.get(e.from) || { id: e.from })).flatMap((x, i) => [i ? ", " : "", x]),
        about(n),
      ])));
  }
  if (nodes.length === 0) box.append(h("p", { class: "muted" }, "Nothing is deployed yet."));
}

function about(n) {
  if (n.missing) return h("span", { class: "error" }, "missing");
  if (n.workflow && n.workflow.error) return h("span", { class: "error" }, n.workflow.error);
  if (n.topic && n.topic.stored) return n.topic.messages + (n.topic.messages === 1 ? " message" : " messages") + ", last #" + n.topic.last_sequence;
  if (n.trigger) return n.trigger.kind + " trigger";
  if (n.timer) return n.timer.schedule;
  return "";
}

function rank(kind) {
  const i = order.indexOf(kind);
  return i < 0 ? order.length : i;
}

function nodeLink(n) {
  const name = n.name || n.id;
  switch (n.kind) {
    case "function":
      return link("#/functions/" + enc(name), name);
    case "workflow":
    case "dynamic":
      return link("#/workflows/" + enc(name), name);
    case "topic":
      return link("#/topics/" + enc(name), name);
    case "trigger":
    case "timer":
      return link("#/triggers/" + enc(name), name);
  }
  return h("span", { title: n.id }, name);
}
