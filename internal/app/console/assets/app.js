// The console's shell: hash routes (#/functions/NAME, ...), the login a
// 401 shows, and each page's lifetime (its streams end when it is left).
import { AuthError, get, setToken, token } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import * as functions from "./pages/functions.js";
import * as workflows from "./pages/workflows.js";
import * as invocations from "./pages/invocations.js";
import * as invocation from "./pages/invocation.js";
import * as topology from "./pages/topology.js";
import * as deadletters from "./pages/deadletters.js";
import * as topic from "./pages/topic.js";

const view = document.getElementById("view");
const logout = document.getElementById("logout");
let current = null; // the AbortController of the page shown

// routes: the first segment of the hash, and whether a second is given.
function route(path) {
  const [page, ...rest] = path.split("/").filter((s) => s !== "");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : "";
  switch (page || "functions") {
    case "functions":
      return arg ? ["functions", (c) => functions.one(c, arg)] : ["functions", functions.list];
    case "workflows":
      return arg ? ["workflows", (c) => workflows.one(c, arg)] : ["workflows", workflows.list];
    case "invocations":
      return arg ? ["invocations", (c) => invocation.show(c, arg)] : ["invocations", invocations.list];
    case "topology":
      return ["topology", topology.show];
    case "topics":
      return ["topology", arg ? (c) => topic.topic(c, arg) : topology.show];
    case "triggers":
      return ["topology", arg ? (c) => topic.trigger(c, arg) : topology.show];
    case "dead-letters":
      return ["dead-letters", arg ? (c) => deadletters.one(c, arg) : deadletters.list];
  }
  return [null, (c) => c.root.append(h("h1", {}, "Not found"), h("p", {}, "No console page " + path + "."))];
}

async function render() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  const hash = location.hash.replace(/^#/, "") || "/functions";
  const [path, qs] = hash.split("?");
  const [name, page] = route(path);
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === name);
  }
  logout.hidden = token() === "";
  clear(view);
  const root = h("div", { class: "page" });
  view.append(root);
  const ctx = {
    root,
    signal,
    query: new URLSearchParams(qs || ""),
    // refresh draws the page again, as its address says
    refresh: () => render(),
    // fail shows an error, or the login for a 401; an aborted page is quiet
    fail: (err) => {
      if (signal.aborted) return;
      if (err instanceof AuthError) return login(err.message);
      root.append(errorBox(err));
    },
  };
  try {
    await page(ctx);
  } catch (err) {
    ctx.fail(err);
  }
}

// login asks for the token; it is tried on the API before it is kept.
function login(message) {
  if (current) current.abort();
  current = new AbortController();
  clear(view);
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "current-password", required: true, placeholder: "bearer token" });
  const note = h("p", { class: "muted", id: "login-note" }, token() ? "The daemon refused this token: " + message : "This daemon needs its API token (sluice daemon --token-file).");
  const form = h("form", { id: "login", class: "login" },
    h("h1", {}, "Log in"),
    note,
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit" }, "Log in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    try {
      await get("/v1/functions");
      render();
    } catch (err) {
      if (err instanceof AuthError) setToken("");
      clear(note).append(err instanceof AuthError ? "Refused: wrong token." : String(err.message));
      note.className = "error";
    }
  });
  view.append(form);
  logout.hidden = true;
  input.focus();
}

logout.addEventListener("click", () => {
  setToken("");
  login("");
});

window.addEventListener("hashchange", render);
render();
