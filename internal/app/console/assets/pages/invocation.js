// An invocation: a timeline (Gantt) of its tasks and their attempts, the
// child workflows nested under the task that started them, each task's
// input, output and error; updated live from the daemon's stream while it
// runs; cancel and redrive buttons, through the same API as the CLI.
import { AuthError, events, get, post } from "../api.js";
import { clear, duration, enc, h, link, preview, status, time } from "../dom.js";

export async function show(c, id) {
  const head = h("div", { id: "inv-head" });
  const actions = h("div", { class: "actions", id: "inv-actions" });
  const chart = h("div", { class: "gantt", id: "gantt" });
  const detail = h("div", { id: "inv-detail" });
  c.root.append(h("h1", {}, "Invocation ", h("code", {}, id)), head, actions, h("h2", {}, "Timeline"), chart, detail);
  const st = { tree: null, attempts: new Map(), open: new Set(), live: false };
  const draw = () => {
    if (!st.tree) return;
    drawHead(head, st);
    drawActions(c, actions, st, id, follow);
    drawGantt(chart, st, () => draw());
  };
  // the attempts come from the invocation's events, read again at most
  // every eventsEvery while it changes
  let lastEvents = 0;
  let pending = null;
  const eventsEvery = 2000;
  const readAttempts = async () => {
    try {
      st.attempts = attemptsOf(await get("/v1/invocations/" + enc(id) + "/events", { signal: c.signal }));
      lastEvents = Date.now();
      draw();
    } catch (err) {
      if (err instanceof AuthError) c.fail(err);
    }
  };
  const maybeAttempts = (final) => {
    if (final) return readAttempts();
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      readAttempts();
    }, Math.max(0, lastEvents + eventsEvery - Date.now()));
  };
  const tick = setInterval(() => st.live && draw(), 1000); // bars of running tasks grow
  c.signal.addEventListener("abort", () => {
    clearInterval(tick);
    clearTimeout(pending);
  });
  async function follow() {
    st.live = true;
    try {
      await events("/v1/invocations/" + enc(id) + "/stream", (name, data) => {
        if (name === "invocation") {
          st.tree = data;
          draw();
          maybeAttempts(false);
        } else if (name === "end") {
          st.live = false;
          maybeAttempts(true);
        } else if (name === "error") {
          c.fail(new Error(data.error));
        }
      }, c.signal);
    } catch (err) {
      c.fail(err);
    }
    st.live = false;
    draw();
  }
  await follow();
}

function drawHead(head, st) {
  const inv = st.tree.invocation;
  const end = inv.finished ? new Date(inv.finished) : new Date();
  clear(head).append(h("dl", { class: "facts" },
    h("dt", {}, "Workflow"), h("dd", {}, link("#/workflows/" + enc(inv.workflow), inv.workflow), " ", h("code", {}, inv.revision.slice(0, 12))),
    h("dt", {}, "Status"), h("dd", { id: "inv-status" }, status(inv.status), inv.compensation ? " (" + inv.compensation + ")" : "", st.live ? h("span", { class: "muted" }, " live") : ""),
    h("dt", {}, "Created"), h("dd", {}, time(inv.created)),
    h("dt", {}, "Took"), h("dd", {}, duration(end - new Date(inv.created)) + (inv.finished ? "" : " so far")),
    inv.parent ? [h("dt", {}, "Parent"), h("dd", {}, link("#/invocations/" + enc(inv.parent.split("/")[0]), inv.parent))] : null,
    inv.redrives ? [h("dt", {}, "Redrives"), h("dd", {}, String(inv.redrives))] : null,
    inv.error ? [h("dt", {}, "Error"), h("dd", { class: "error" }, (inv.failed_task ? inv.failed_task + ": " : "") + inv.error + (inv.error_code ? " [" + inv.error_code + "]" : ""))] : null,
    (inv.pending_signals || []).length ? [h("dt", {}, "Pending signals"), h("dd", {}, inv.pending_signals.join(", "))] : null));
}

// drawActions shows cancel while it runs and redrive once a root has
// failed or was canceled; each asks to be confirmed with a second click.
function drawActions(c, box, st, id, follow) {
  const inv = st.tree.invocation;
  clear(box);
  const act = (label, path, after) => {
    const armed = st.armed === label; // kept across redraws
    const b = h("button", { type: "button", id: "btn-" + label.toLowerCase(), class: armed ? "armed" : "" },
      armed ? "Really " + label.toLowerCase() + "?" : label);
    b.disabled = st.busy === label;
    b.addEventListener("click", async () => {
      if (!armed) {
        st.armed = label;
        drawActions(c, box, st, id, follow);
        return;
      }
      st.armed = null;
      st.busy = label;
      b.disabled = true;
      try {
        await post("/v1/invocations/" + enc(id) + path);
        if (after) after();
      } catch (err) {
        st.error = err.message;
        if (err instanceof AuthError) c.fail(err);
      }
      st.busy = null;
      drawActions(c, box, st, id, follow);
    });
    return b;
  };
  if (inv.status === "running") box.append(act("Cancel", "/cancel"));
  if (st.error) box.append(h("span", { class: "error" }, " " + st.error));
  if (!inv.parent && (inv.status === "failed" || inv.status === "canceled") && !st.live) {
    box.append(act("Redrive", "/redrive", () => follow()));
  }
}

// attemptsOf reads the attempts of each task from an invocation's events:
// by task id, [{attempt, start, end, outcome, error}].
function attemptsOf(evs) {
  const out = new Map();
  for (const ev of evs) {
    if (!ev.task) continue;
    const list = out.get(ev.task) || [];
    out.set(ev.task, list);
    if (ev.type === "TaskStarted") list.push({ attempt: ev.attempt, start: ev.time });
    const cur = list[list.length - 1];
    if (!cur || cur.end) continue;
    if (ev.type === "TaskSucceeded" || ev.type === "TaskFailed" || ev.type === "TaskRetrying") {
      cur.end = ev.time;
      cur.outcome = ev.type === "TaskSucceeded" ? "succeeded" : "failed";
      cur.error = ev.error;
    }
  }
  return out;
}

// rows lists the tasks of an invocation in the order they started, each
// followed by the rows of the child it started, indented.
function rows(tree, inv, depth, out) {
  const tasks = Object.entries(inv.tasks || {}).sort(([a, x], [b, y]) => {
    const sa = x.started || x.finished || "9", sb = y.started || y.finished || "9";
    return sa < sb ? -1 : sa > sb ? 1 : a < b ? -1 : 1;
  });
  for (const [tid, t] of tasks) {
    out.push({ inv, tid, t, depth });
    for (const [cid, child] of Object.entries(tree.children || {})) {
      if (child.parent === inv.id + "/" + tid) rows(tree, child, depth + 1, out);
    }
  }
  return out;
}

function drawGantt(box, st, redraw) {
  const tree = st.tree;
  const inv = tree.invocation;
  const t0 = new Date(inv.created).getTime();
  const list = rows(tree, inv, 0, []);
  let t1 = inv.finished ? new Date(inv.finished).getTime() : Date.now();
  for (const r of list) if (r.t.finished) t1 = Math.max(t1, new Date(r.t.finished).getTime());
  const span = Math.max(1, t1 - t0);
  const pct = (t) => (100 * (new Date(t).getTime() - t0)) / span + "%";
  // a bar without an end runs to the chart's end (now, while it runs)
  const width = (a, b) => {
    const from = new Date(a).getTime();
    const to = Math.min(b ? new Date(b).getTime() : t1, t1);
    return Math.max(0.4, Math.min((100 * (to - from)) / span, (100 * (t1 - from)) / span)) + "%";
  };
  clear(box);
  box.append(h("div", { class: "gantt-axis" }, h("span", {}, "0"), h("span", {}, duration(span))));
  if (list.length === 0) box.append(h("p", { class: "muted" }, "No task has been scheduled yet."));
  for (const r of list) {
    const key = r.inv.id + "/" + r.tid;
    const bar = h("div", { class: "gantt-track" });
    const atts = r.inv.id === inv.id ? st.attempts.get(r.tid) || [] : [];
    if (atts.length > 0) {
      for (const [i, a] of atts.entries()) {
        // the events may be older than the snapshot: a task that has
        // finished ended its last attempt
        if (!a.end && i === atts.length - 1 && r.t.finished) a.end = r.t.finished;
        const seg = h("div", { class: "gantt-bar attempt-" + (a.outcome || (r.t.finished ? r.t.status : "running")), title: "attempt " + a.attempt + (a.error ? ": " + a.error : "") });
        seg.style.left = pct(a.start);
        seg.style.width = width(a.start, a.end);
        bar.append(seg);
      }
    } else if (r.t.started) {
      const seg = h("div", { class: "gantt-bar attempt-" + r.t.status });
      seg.style.left = pct(r.t.started);
      seg.style.width = width(r.t.started, r.t.finished);
      bar.append(seg);
    }
    const label = h("div", { class: "gantt-label" },
      h("span", { class: "indent" }, "  ".repeat(r.depth)),
      h("span", { class: "task-id" }, r.tid), " ", h("span", { class: "muted" }, r.t.run),
      r.t.attempts > 1 ? h("span", { class: "muted" }, " ×" + r.t.attempts) : "");
    const row = h("div", { class: "gantt-row", "data-task": key, "data-status": r.t.status }, label, status(r.t.status), bar);
    row.addEventListener("click", () => {
      if (st.open.has(key)) st.open.delete(key);
      else st.open.add(key);
      redraw();
    });
    box.append(row);
    if (st.open.has(key)) box.append(taskDetail(r.t));
  }
  if (tree.more) box.append(h("p", { class: "muted" }, "More child invocations than are shown here."));
}

function taskDetail(t) {
  const part = (name, v) => (v === undefined || v === null ? null : [h("dt", {}, name), h("dd", {}, h("pre", {}, preview(v)))]);
  return h("dl", { class: "facts task-detail" },
    h("dt", {}, "Started"), h("dd", {}, time(t.started) + (t.finished ? " · took " + duration(new Date(t.finished) - new Date(t.started)) : "")),
    t.version ? [h("dt", {}, "Function version"), h("dd", {}, "v" + t.version)] : null,
    t.waiting ? [h("dt", {}, "Waits for"), h("dd", {}, "signal " + t.waiting)] : null,
    part("Input", t.input),
    part("Output", t.output),
    t.error ? [h("dt", {}, "Error"), h("dd", { class: "error" }, t.error + (t.error_code ? " [" + t.error_code + "]" : "") + (t.caught ? " (caught)" : ""))] : null);
}
