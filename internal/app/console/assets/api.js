// The console's only way to the daemon: the HTTP API, with the bearer
// token kept in this tab's sessionStorage (never in a URL), sent as an
// Authorization header. A 401 raises AuthError, which shows the login.

const tokenKey = "sluice.token";

export class AuthError extends Error {}

// APIError is the API's JSON error: {error, code}, with the status.
export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(tokenKey) || "";
}

export function setToken(t) {
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
}

function headers(extra) {
  const h = new Headers(extra || {});
  const t = token();
  if (t) h.set("Authorization", "Bearer " + t);
  return h;
}

async function check(res) {
  if (res.ok) return res;
  let body = {};
  try {
    body = await res.json();
  } catch (e) {
    body = { error: res.statusText };
  }
  if (res.status === 401) throw new AuthError(body.error || "unauthorized");
  throw new APIError(res.status, body.code || "", body.error || res.statusText);
}

// request calls the API and returns the response (checked).
export async function request(path, opts = {}) {
  const res = await fetch(path, {
    method: opts.method || "GET",
    headers: headers(opts.headers),
    body: opts.body,
    signal: opts.signal,
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  return check(res);
}

// get returns the JSON the API answers.
export async function get(path, opts) {
  const res = await request(path, opts);
  return res.json();
}

// post sends a body (a string, or JSON for anything else) and returns the
// answer's JSON, or its text if it is not JSON.
export async function post(path, body, opts = {}) {
  const h = Object.assign({}, opts.headers || {});
  let b = body;
  if (body !== undefined && typeof body !== "string") {
    b = JSON.stringify(body);
    h["Content-Type"] = "application/json";
  }
  const res = await request(path, { method: "POST", body: b, headers: h, signal: opts.signal });
  const text = await res.text();
  try {
    return { res, json: JSON.parse(text), text };
  } catch (e) {
    return { res, json: null, text };
  }
}

// lines reads a streamed answer and calls onChunk with each complete
// piece of text ending in sep, until the stream ends or signal aborts.
async function pieces(path, sep, onPiece, signal) {
  const res = await request(path, { signal });
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf(sep)) >= 0) {
      const piece = buf.slice(0, i);
      buf = buf.slice(i + sep.length);
      onPiece(piece);
    }
  }
  if (buf.trim() !== "") onPiece(buf);
}

// ndjson reads a stream of JSON lines (a function's logs, followed).
export function ndjson(path, onValue, signal) {
  return pieces(path, "\n", (line) => {
    if (line.trim() === "") return;
    try {
      onValue(JSON.parse(line));
    } catch (e) {
      /* a cut line at the end: skipped */
    }
  }, signal);
}

// events reads server-sent events through fetch (EventSource cannot send
// the Authorization header): onEvent(name, data) for each event, data
// parsed as JSON.
export function events(path, onEvent, signal) {
  return pieces(path, "\n\n", (block) => {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue; // a comment: the heartbeat
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (data.length === 0) return;
    let v;
    try {
      v = JSON.parse(data.join("\n"));
    } catch (e) {
      return;
    }
    onEvent(name, v);
  }, signal);
}
