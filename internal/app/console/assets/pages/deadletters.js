// Dead letters: the error topics of the queue triggers, and on each the
// dead letters (GET /v1/topics/{topic}/dead-letters) with their error,
// function, redeliveries and payload preview; redrive a selection or all
// back to their source topic (POST /v1/topics/{topic}/redrive), which
// refuses to redrive a letter twice.
import { get, post } from "../api.js";
import { clear, enc, h, link, table, time } from "../dom.js";

export async function list(c) {
  c.root.append(h("h1", {}, "Dead letters"));
  const trs = await get("/v1/triggers", { signal: c.signal });
  const topics = new Map();
  for (const t of trs) {
    if (t.queue && t.queue.error_topic) topics.set(t.queue.error_topic, [...(topics.get(t.queue.error_topic) || []), t]);
  }
  c.root.append(table(["Error topic", "Triggers"], [...topics.entries()].map(([topic, ts]) => [
    link("#/dead-letters/" + enc(topic), topic), ts.map((t) => t.name + " (" + (t.function || t.workflow) + ")").join(", "),
  ]), "No queue trigger has an error topic (sluice trigger create --error-topic)."));
}

// outcome is the last redrive's answer, shown once the page is drawn again.
let outcome = null;

function showOutcome(note, r) {
  const parts = [`Redriven: ${(r.redriven || []).length}`, `skipped: ${(r.skipped || []).length}`, `failed: ${(r.failed || []).length}`];
  if (r.more) parts.push("more are left: redrive all again");
  note.append(parts.join(", ") + ".");
  for (const s of r.skipped || []) note.append(h("br"), `#${s.sequence}: ${s.reason}`);
  for (const f of r.failed || []) note.append(h("br"), h("span", { class: "error" }, `#${f.sequence}: ${f.error}`));
}

export async function one(c, topic) {
  c.root.append(h("h1", {}, "Dead letters on ", h("code", {}, topic)));
  const after = c.query.get("after") || "";
  const page = await get("/v1/topics/" + enc(topic) + "/dead-letters?limit=100" + (after ? "&after=" + enc(after) : ""), { signal: c.signal });
  const letters = page.letters || [];
  const picked = new Set();
  const note = h("p", { id: "redrive-note", role: "status" });
  if (outcome && outcome.topic === topic) showOutcome(note, outcome.result);
  outcome = null;
  const redrive = async (body) => {
    try {
      const { json } = await post("/v1/topics/" + enc(topic) + "/redrive", body, { signal: c.signal });
      outcome = { topic, result: json || {} };
      c.refresh(); // the letters now say they were redriven
    } catch (err) {
      clear(note).append(h("span", { class: "error" }, err.message));
    }
  };
  c.root.append(
    h("div", { class: "actions" },
      h("button", { type: "button", id: "redrive-selected", onclick: () => picked.size && redrive({ sequences: [...picked] }) }, "Redrive selected"),
      h("button", { type: "button", id: "redrive-all", onclick: () => redrive({ all: true }) }, "Redrive all")),
    note,
    table(["", "Seq", "Time", "Function", "Error", "Code", "Redeliveries", "Source", "Payload", "Redriven"], letters.map((d) => {
      const done = d.redrive && d.redrive.claim;
      const box = h("input", { type: "checkbox", class: "pick", "data-seq": String(d.sequence), disabled: Boolean(done) });
      box.addEventListener("change", () => (box.checked ? picked.add(d.sequence) : picked.delete(d.sequence)));
      const payload = d.payload_text !== undefined ? d.payload_text : d.payload_base64 ? "base64: " + d.payload_base64 : "";
      return [box, String(d.sequence), time(d.time), d.function || d.workflow || "", d.error || d.problem || "", d.code || "",
        String(d.redeliveries ?? ""), d.source_topic ? d.source_topic + " #" + d.source_sequence : "",
        h("code", {}, payload + (d.payload_truncated ? "…" : "")),
        done ? (d.redrive.done ? "yes, " + time(d.redrive.done_at) : "pending since " + time(d.redrive.claim.at)) : ""];
    }), "No dead letter on this topic."));
  if (page.next) c.root.append(h("p", {}, h("a", { href: "#/dead-letters/" + enc(topic) + "?after=" + enc(String(page.next)), id: "next-page" }, "Next page →")));
}
