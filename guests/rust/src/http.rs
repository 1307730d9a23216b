//! The HTTP request a trigger received and the response the function
//! answers it with (ABI 1.1), for [`http_handler!`](crate::http_handler).
//!
//! ```no_run
//! use sluice::http::{Request, Response};
//!
//! sluice::http_handler!(handle);
//!
//! fn handle(req: &Request) -> Result<Response, sluice::Error> {
//!     match req.header("authorization") {
//!         Some(_) => Ok(Response::text(201, "created").header("Location", "/items/7")),
//!         None => Ok(Response::text(401, "who are you?")),
//!     }
//! }
//! ```

use crate::{meta, Error};

/// One HTTP request: what the trigger received. Without an HTTP trigger
/// (`sluice fn invoke`, a queue, a workflow) it is a `POST` of the call's
/// input to `/`, without headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method: `GET`, `POST`, ...
    pub method: String,
    /// The path under `/fn`, decoded (`/users/a/b` for `/fn/users/a%2Fb`).
    pub path: String,
    /// The query, raw, without the `?` (`q=a%20b&n=1`); see
    /// [`query_param`](Request::query_param).
    pub query: String,
    /// Every header, one `(Name, value)` per value, names in canonical
    /// form (`Content-Type`) and sorted, the values of a name in the order
    /// sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A request, for tests ([`testing::call_http`](crate::testing::call_http)):
    /// `path` may hold a query (`/search?q=rust`).
    pub fn new(method: &str, path: &str, body: &'a [u8]) -> Request<'a> {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path, ""),
        };
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: Vec::new(),
            body,
        }
    }

    /// The request with one more header value, for tests.
    pub fn with_header(mut self, name: &str, value: &str) -> Request<'a> {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The request of the current call, from its metadata and input.
    pub(crate) fn from_call(input: &'a [u8]) -> Request<'a> {
        let headers = meta("http.headers")
            .map(|block| {
                block
                    .lines()
                    .filter_map(|line| line.split_once(": "))
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Request {
            method: meta("http.method").unwrap_or_else(|| "POST".to_string()),
            path: meta("http.path").unwrap_or_else(|| "/".to_string()),
            query: meta("http.query").unwrap_or_default(),
            headers,
            body: input,
        }
    }

    /// The first value of a header, its name in any case
    /// (`header("content-type")`), or `None`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in the order sent.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter, decoded (`+` and `%20` are a
    /// space), or `None`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if decode_query(k) == name {
                    Some(decode_query(v))
                } else {
                    None
                }
            })
            .next()
    }

    /// The value of the route's parameter `{name}` (a trigger on
    /// `/users/{id}` gives `param("id")`), decoded, or `None`.
    pub fn param(&self, name: &str) -> Option<String> {
        meta(&format!("http.param.{name}"))
    }

    /// The body as UTF-8, or an error saying it is not.
    pub fn text(&self) -> Result<&'a str, Error> {
        std::str::from_utf8(self.body).map_err(|e| Error::new(format!("the request's body is not UTF-8: {e}")))
    }
}

/// Decodes a query's name or value: `+` is a space, `%XX` a byte; bytes
/// that are not UTF-8 become U+FFFD.
fn decode_query(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && hex(b[i + 1]).is_some() && hex(b[i + 2]).is_some() => {
                out.push(hex(b[i + 1]).unwrap_or(0) << 4 | hex(b[i + 2]).unwrap_or(0));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The response: status, headers and body.
///
/// sluice checks the headers (a name must be an HTTP token, a value may
/// hold no CR, LF or NUL, at most 100 values and 64 KiB in all: a bad one
/// fails the call) and drops those the daemon writes itself
/// (`Content-Length`, `Transfer-Encoding`, `Connection`, ...). Without a
/// `Content-Type` the daemon detects one from the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status, 200 to 599 (another fails the call).
    pub status: u16,
    /// The headers, one `(name, value)` per value (`Set-Cookie` twice for
    /// two cookies).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response with `status` and `body`.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// The response with one more header value.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The response with `body` as its body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }
}
