// A topic's page (its message count, last sequence, the triggers it
// feeds or that answer on it, its last messages, and its dead letters if
// it is an error topic) and a trigger's page (what feeds it, what it
// calls, where its results and errors go).
import { ndjson, get } from "../api.js";
import { enc, h, link, preview, table, time } from "../dom.js";

// tailCount is how many of a topic's last messages the page shows, and
// tailWait how long it waits for them: a page is not a tail -f.
const tailCount = 10;
const tailWait = "2s";

export async function topic(c, name) {
  c.root.append(h("h1", {}, "Topic ", h("code", {}, name)));
  const [topics, triggers] = await Promise.all([
    get("/v1/topics", { signal: c.signal }).catch(() => []),
    get("/v1/triggers", { signal: c.signal }),
  ]);
  const t = topics.find((x) => x.name === name) || { messages: 0, last_sequence: 0 };
  const feeds = triggers.filter((x) => x.queue && x.queue.topic === name);
  const results = triggers.filter((x) => (x.queue && x.queue.resp_topic === name) || (x.cron && x.cron.resp_topic === name));
  const errors = triggers.filter((x) => x.queue && x.queue.error_topic === name);
  const names = (ts) => ts.flatMap((x, i) => [i ? ", " : "", link("#/triggers/" + enc(x.name), x.name)]);
  c.root.append(h("dl", { class: "facts" },
    h("dt", {}, "Messages"), h("dd", { id: "topic-messages" }, String(t.messages)),
    h("dt", {}, "Last sequence"), h("dd", {}, String(t.last_sequence || "—")),
    h("dt", {}, "Feeds"), h("dd", {}, feeds.length ? names(feeds) : "no trigger"),
    h("dt", {}, "Results of"), h("dd", {}, results.length ? names(results) : "no trigger"),
    h("dt", {}, "Errors of"), h("dd", {}, errors.length ? names(errors) : "no trigger")));
  if (errors.length) {
    const page = await get("/v1/topics/" + enc(name) + "/dead-letters?limit=20", { signal: c.signal });
    c.root.append(h("h2", {}, "Dead letters"),
      table(["Seq", "Time", "Function", "Error", "Redriven"], (page.letters || []).map((d) => [
        String(d.sequence), time(d.time), d.function || d.workflow || "", d.error || d.problem || "", d.redrive && d.redrive.done ? "yes" : ""]),
      "No dead letter."),
      h("p", {}, link("#/dead-letters/" + enc(name), "Redrive them on the Dead letters page →")));
  }
  const rows = h("tbody", {});
  c.root.append(h("h2", {}, "Last messages"),
    t.messages ? h("table", { id: "topic-tail" }, h("thead", {}, h("tr", {}, ["Seq", "Time", "Data"].map((x) => h("th", {}, x)))), rows)
      : h("p", { class: "muted" }, "No message is stored on this topic."));
  if (!t.messages) return;
  const n = Math.min(tailCount, t.messages);
  await ndjson("/v1/topics/" + enc(name) + "/tail?tail=" + n + "&count=" + n + "&timeout=" + tailWait, (m) => {
    if (m.sequence === undefined) return; // an error line: the table says what it has
    rows.append(h("tr", {}, h("td", {}, String(m.sequence)), h("td", {}, time(m.time)), h("td", {}, h("code", {}, preview(text(m.data), 300)))));
  }, c.signal);
}

// text is a message's data (base64 in JSON) as text when it is UTF-8.
function text(b64) {
  try {
    const bytes = Uint8Array.from(atob(b64 || ""), (ch) => ch.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    return "base64: " + b64;
  }
}

export async function trigger(c, name) {
  const t = await get("/v1/triggers/" + enc(name), { signal: c.signal });
  c.root.append(h("h1", {}, "Trigger ", h("code", {}, t.name)));
  const target = t.workflow ? link("#/workflows/" + enc(t.workflow), "workflow " + t.workflow) : link("#/functions/" + enc(t.function), "function " + t.function);
  const topicLink = (x) => (x ? link("#/topics/" + enc(x), x) : "—");
  const facts = [h("dt", {}, "Calls"), h("dd", {}, target)];
  if (t.http) facts.push(h("dt", {}, "HTTP route"), h("dd", {}, h("code", {}, (t.http.method || "any method") + " /fn" + t.http.path)));
  if (t.queue) {
    facts.push(h("dt", {}, "Topic"), h("dd", {}, topicLink(t.queue.topic)),
      h("dt", {}, "Response topic"), h("dd", {}, topicLink(t.queue.resp_topic)),
      h("dt", {}, "Error topic"), h("dd", {}, topicLink(t.queue.error_topic)));
  }
  if (t.cron) facts.push(h("dt", {}, "Schedule"), h("dd", {}, h("code", {}, t.cron.schedule)), h("dt", {}, "Response topic"), h("dd", {}, topicLink(t.cron.resp_topic)));
  c.root.append(h("dl", { class: "facts" }, facts), h("h2", {}, "Definition"), h("pre", { class: "source" }, JSON.stringify(t, null, 2)));
}
