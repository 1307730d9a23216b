//! Calling a handler natively, in `cargo test`, as sluice would call it in
//! a guest: the output or error, the log records, the HTTP status and
//! headers it set. Native builds only.
//!
//! ```
//! fn handle(input: &[u8]) -> Result<Vec<u8>, sluice::Error> {
//!     sluice::log::info("called");
//!     Ok(input.to_ascii_uppercase())
//! }
//!
//! let call = sluice::testing::call(handle, b"abc");
//! assert_eq!(call.result, Ok(b"ABC".to_vec()));
//! assert_eq!(call.logs, vec![(sluice::log::Level::Info, "called".to_string())]);
//! ```

#![cfg(not(target_arch = "wasm32"))]

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::http::{Request, Response};
use crate::log::Level;
use crate::{__rt, sys, Error};

/// What a native call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The output, or the error the call failed with (with its code). A
    /// panic is an error whose message starts with `panic: `.
    pub result: Result<Vec<u8>, Error>,
    /// The log records it wrote, in order.
    pub logs: Vec<(Level, String)>,
    /// The HTTP status it set, if it set one.
    pub status: Option<u16>,
    /// The HTTP headers it set, one `(name, value)` per value.
    pub headers: Vec<(String, String)>,
}

impl Outcome {
    /// The call's HTTP response as the trigger would answer it: the status
    /// (200 if none was set), the headers and the output. Panics if the
    /// call failed.
    pub fn response(&self) -> Response {
        match &self.result {
            Ok(body) => Response {
                status: self.status.unwrap_or(200),
                headers: self.headers.clone(),
                body: body.clone(),
            },
            Err(e) => panic!("the call failed: {e:?}"),
        }
    }
}

/// Calls a bytes handler with `input`.
pub fn call<F, O, E>(handler: F, input: &[u8]) -> Outcome
where
    F: FnOnce(&[u8]) -> Result<O, E>,
    O: AsRef<[u8]>,
    E: Into<Error>,
{
    call_with_meta(handler, input, &[])
}

/// Calls a bytes handler with `input` and call metadata
/// (`&[("trigger", "nightly"), ("redelivered", "true")]`), which
/// [`meta`](crate::meta) reads.
pub fn call_with_meta<F, O, E>(handler: F, input: &[u8], meta: &[(&str, &str)]) -> Outcome
where
    F: FnOnce(&[u8]) -> Result<O, E>,
    O: AsRef<[u8]>,
    E: Into<Error>,
{
    let meta = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    run(meta, || __rt::run_bytes(input, handler))
}

/// Calls an HTTP handler with `req`, the way an HTTP trigger does: the
/// handler gets the request back from the call's metadata and input.
/// `params` are the route's parameters (`&[("id", "7")]` for
/// `/users/{id}`).
pub fn call_http<F>(handler: F, req: &Request<'_>, params: &[(&str, &str)]) -> Outcome
where
    F: FnOnce(&Request) -> Result<Response, Error>,
{
    let mut meta = vec![
        ("http.method".to_string(), req.method.clone()),
        ("http.path".to_string(), req.path.clone()),
        ("http.query".to_string(), req.query.clone()),
    ];
    let mut block = String::new();
    for (n, v) in &req.headers {
        block.push_str(&format!("{n}: {v}\n"));
    }
    meta.push(("http.headers".to_string(), block));
    for (k, v) in params {
        meta.push((format!("http.param.{k}"), v.to_string()));
    }
    let body = req.body;
    run(meta, || __rt::run_http(body, handler))
}

fn run(meta: Vec<(String, String)>, f: impl FnOnce() -> u32) -> Outcome {
    let (status, rec) = sys::record(meta, || catch_unwind(AssertUnwindSafe(f)));
    let result = match status {
        Ok(0) => Ok(rec.output),
        Ok(_) => Err(Error {
            message: rec.fail.unwrap_or_default(),
            code: rec.code,
        }),
        Err(payload) => Err(Error::new(format!("panic: {}", __rt::payload_message(payload.as_ref())))),
    };
    Outcome {
        result,
        logs: rec.logs.into_iter().map(|(l, m)| (Level::from_i32(l), m)).collect(),
        status: rec.status,
        headers: rec.headers,
    }
}
