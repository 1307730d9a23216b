// Workflows: the list, and a workflow's page (its definition drawn as a
// flowchart by the daemon's dot, its source, revisions, recent
// invocations, an invoke form).
import { get, post, request } from "../api.js";
import { clear, enc, h, link, status, table, time } from "../dom.js";

export async function list(c) {
  c.root.append(h("h1", {}, "Workflows"));
  const wfs = await get("/v1/workflows", { signal: c.signal });
  c.root.append(table(["Name", "Version", "Revision", "Created", "Triggers"],
    wfs.map((w) => [link("#/workflows/" + enc(w.name), w.name), "v" + w.version, h("code", {}, w.revision.slice(0, 12)), time(w.created), (w.triggers || []).join(", ")]),
    "No workflow is defined (sluice wf create FILE.yaml)."));
}

export async function one(c, name) {
  const [wf, invs, revisions] = await Promise.all([
    get("/v1/workflows/" + enc(name), { signal: c.signal }),
    get("/v1/invocations?workflow=" + enc(name) + "&limit=20", { signal: c.signal }).then(items, () => []),
    get("/v1/workflows/" + enc(name) + "/revisions", { signal: c.signal }).catch(() => []),
  ]);
  const chart = h("div", { class: "flowchart", id: "flowchart" }, h("p", { class: "muted" }, "Drawing…"));
  c.root.append(
    h("h1", {}, "Workflow ", h("code", {}, wf.name)),
    h("dl", { class: "facts" },
      h("dt", {}, "Version"), h("dd", {}, "v" + wf.version + " (created " + time(wf.created) + ")"),
      h("dt", {}, "Revision"), h("dd", {}, h("code", {}, wf.revision)),
      h("dt", {}, "Functions"), h("dd", {}, (wf.functions || []).flatMap((f, i) => [i ? ", " : "", link("#/functions/" + enc(f), f)])),
      h("dt", {}, "Child workflows"), h("dd", {}, (wf.workflows || []).flatMap((w, i) => [i ? ", " : "", link("#/workflows/" + enc(w), w)])),
      h("dt", {}, "Triggers"), h("dd", {}, (wf.triggers || []).join(", ") || "none")),
    h("h2", {}, "Flowchart"), chart);
  drawFlowchart(c, name, chart);
  c.root.append(invokeForm(c, name));
  const revs = new Map();
  for (const inv of invs) revs.set(inv.revision, (revs.get(inv.revision) || 0) + 1);
  c.root.append(h("h2", {}, "Revisions"),
    table(["Version", "Revision", "Created", "Recent invocations"], revisions.map((r) => [
      "v" + r.version, h("code", {}, r.revision.slice(0, 12) + (r.revision === wf.revision ? " (current)" : "")), time(r.created), String(revs.get(r.revision) || 0),
    ]), "Current revision " + wf.revision.slice(0, 12) + "."));
  c.root.append(h("h2", {}, "Recent invocations"), invocationTable(invs),
    h("p", {}, link("#/invocations?workflow=" + enc(name), "All invocations of " + name + " →")));
  c.root.append(h("h2", {}, "Definition"), h("pre", { class: "source" }, wf.source));
}

// items reads a listing of invocations: a plain list, or a page
// ({items, next_cursor}) once the API pages.
export function items(v) {
  if (Array.isArray(v)) return v;
  return (v && (v.items || v.invocations)) || [];
}

export function invocationTable(invs) {
  return table(["Invocation", "Workflow", "Status", "Created", "Finished", "Error"],
    invs.map((i) => [link("#/invocations/" + enc(i.id), i.id), i.workflow, status(i.status), time(i.created), time(i.finished), i.error || ""]),
    "No invocation.");
}

// drawFlowchart shows the daemon's SVG: parsed as SVG (never as HTML),
// its boxes linking to the console's pages.
async function drawFlowchart(c, name, box) {
  try {
    const res = await request("/v1/workflows/" + enc(name) + "/flowchart", { signal: c.signal });
    const doc = new DOMParser().parseFromString(await res.text(), "image/svg+xml");
    const svg = doc.documentElement;
    if (svg.nodeName !== "svg") throw new Error("the flowchart is not SVG");
    for (const s of svg.querySelectorAll("script, foreignObject")) s.remove();
    clear(box).append(document.importNode(svg, true));
  } catch (err) {
    clear(box);
    c.fail(err);
  }
}

// invokeForm starts an invocation (POST /v1/workflows/NAME/invoke, as
// sluice wf invoke does) and opens its page.
function invokeForm(c, name) {
  const input = h("textarea", { id: "wf-input", rows: 3, placeholder: "input (JSON)" }, "{}");
  const note = h("p", { class: "muted" });
  const form = h("form", { class: "invoke", id: "wf-invoke" }, h("h2", {}, "Invoke"), input, h("button", { type: "submit" }, "Invoke"), note);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const { json } = await post("/v1/workflows/" + enc(name) + "/invoke", input.value, { headers: { "Content-Type": "application/json" }, signal: c.signal });
      location.hash = "#/invocations/" + enc(json.id);
    } catch (err) {
      clear(note).append(h("span", { class: "error" }, err.message));
    }
  });
  return form;
}
