// Invocations: filtered by workflow, status and time, a page at a time
// (GET /v2/invocations). The filters are in the page's address
// (#/invocations?status=failed), so a view can be kept or shared; the
// counts per status are the daemon's, for the filters but the status.
import { get } from "../api.js";
import { h } from "../dom.js";
import { invocationTable } from "./workflows.js";

const statuses = ["running", "succeeded", "failed", "canceled", "compensating", "compensated", "catching"];
const periods = [["", "any time"], ["15m", "last 15 min"], ["1h", "last hour"], ["24h", "last day"], ["168h", "last week"]];
const pageSize = 50;

export async function list(c) {
  const q = c.query;
  const api = new URLSearchParams({ limit: String(pageSize) });
  for (const k of ["workflow", "status", "since", "cursor"]) if (q.get(k)) api.set(k, q.get(k));
  if (q.get("top")) api.set("top", "true");
  const [wfs, res] = await Promise.all([
    get("/v1/workflows", { signal: c.signal }),
    get("/v2/invocations?" + api, { signal: c.signal }),
  ]);
  const counts = res.counts || {};
  const form = h("form", { class: "filters", id: "filters" },
    select("workflow", [["", "every workflow"], ...wfs.map((w) => [w.name, w.name])], q.get("workflow") || ""),
    select("status", [["", "any status"], ...statuses.map((s) => [s, counts[s] === undefined ? s : `${s} (${counts[s]})`])], q.get("status") || ""),
    select("since", periods, q.get("since") || ""),
    h("label", {}, h("input", { type: "checkbox", name: "top", id: "filter-top", checked: Boolean(q.get("top")) }), " top-level only"),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const k of ["workflow", "status", "since"]) {
      const v = form.elements[k].value;
      if (v) p.set(k, v);
    }
    if (form.elements.top.checked) p.set("top", "1");
    location.hash = "#/invocations" + (p.toString() ? "?" + p : "");
  });
  c.root.append(h("h1", {}, "Invocations"), form);
  c.root.append(invocationTable(res.invocations || []));
  const nav = h("p", { class: "pager" });
  if (q.get("cursor")) {
    const first = new URLSearchParams(q);
    first.delete("cursor");
    nav.append(h("a", { href: "#/invocations" + (first.toString() ? "?" + first : ""), id: "first-page" }, "← Newest"), " ");
  }
  if (res.next_cursor) {
    const p = new URLSearchParams(q);
    p.set("cursor", res.next_cursor);
    nav.append(h("a", { href: "#/invocations?" + p, id: "next-page" }, "Older →"));
  }
  if (nav.firstChild) c.root.append(nav);
}

function select(name, options, value) {
  return h("label", {}, name + " ",
    h("select", { name, id: "filter-" + name }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
}
