//! Write [sluice](https://github.com/sluicehq/sluice) functions in Rust.
//!
//! A function is a handler and nothing else: the [`handler!`] macro turns
//! it into a sluice reactor (the guest ABI's exports `sluice_alloc`,
//! `sluice_free` and `sluice_handle`), so that sluice keeps the instance
//! warm and a call costs microseconds.
//!
//! ```no_run
//! sluice::handler!(handle);
//!
//! fn handle(input: &[u8]) -> Result<Vec<u8>, sluice::Error> {
//!     if input.is_empty() {
//!         return Err(sluice::Error::with_code("empty_input", "empty input"));
//!     }
//!     sluice::log::info(format_args!("greeting {} bytes", input.len()));
//!     let mut out = b"hello, ".to_vec();
//!     out.extend_from_slice(input);
//!     Ok(out)
//! }
//! ```
//!
//! Build it as a `cdylib` for WASI preview 1 (`wasm32-wasip1`, called
//! `wasm32-wasi` before Rust 1.78) and deploy the `.wasm`:
//!
//! ```text
//! cargo build --release --target wasm32-wasip1
//! sluice fn deploy hello target/wasm32-wasip1/release/hello.wasm
//! ```
//!
//! Behind an HTTP trigger, [`http_handler!`] takes a [`http::Request`] and
//! returns a [`http::Response`] (status, headers, body).
//!
//! A handler returns an [`Error`] to fail the call with its message (and
//! its code, which a workflow's `retry.on` and `catch` see). A panic fails
//! the call too, with the panic's message and where it happened: in
//! WebAssembly a panic aborts, so the instance is thrown away and the next
//! call gets a fresh one.
//!
//! Built for any other target the crate is a plain library, so handlers are
//! unit tested natively with [`testing::call`] and [`testing::call_http`],
//! which return the output or error, the log records, and the HTTP status
//! and headers the handler set.

#![warn(missing_docs)]

use std::fmt;

pub mod http;
pub mod log;
pub mod testing;

mod sys;

#[doc(hidden)]
pub mod __rt;

/// The failure of a call: a message, and optionally a code.
///
/// The message is what `sluice fn invoke` prints and the API returns. The
/// code (ABI 1.2) is a lowercase letter, then up to 63 of `a-z`, `0-9`,
/// `_`, `.`, `-` (`card_declined`): a workflow's retry filters and `catch`
/// see it instead of `function_error`. The host drops a code that is not
/// one, and says so in the message.
///
/// `?` turns the standard library's common errors (I/O, UTF-8, number
/// parsing) and strings into one.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    code: Option<String>,
}

impl Error {
    /// An error with a message and no code: its code is `function_error`.
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            code: None,
        }
    }

    /// An error with a code of its own and a message.
    pub fn with_code(code: impl Into<String>, message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            code: Some(code.into()),
        }
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error's code, if it has one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "Error({code}: {:?})", self.message),
            None => write!(f, "Error({:?})", self.message),
        }
    }
}

impl std::error::Error for Error {}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::new(message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::new(message)
    }
}

macro_rules! from_std_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(err: $t) -> Error {
                Error::new(err.to_string())
            }
        }
    )*};
}

from_std_error!(
    std::io::Error,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
    std::fmt::Error
);

/// Returns the call's metadata under `key`, or `None` if the call has none
/// by that name: `function`, `version`, `invocation`, `trigger`,
/// `http.method`, `http.param.NAME`, `topic`, `sequence`, `redelivered`,
/// `traceparent`, `workflow.task` and the others listed in sluice's
/// `abi/README.md`. A value that is not UTF-8 has its bad bytes replaced
/// with U+FFFD.
pub fn meta(key: &str) -> Option<String> {
    sys::meta_get(key).map(|v| match String::from_utf8(v) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Tells whether a message-queue trigger delivers this message again after
/// an earlier attempt failed or timed out: a handler with side effects
/// uses it (with `meta("sequence")`) to stay idempotent.
pub fn redelivered() -> bool {
    meta("redelivered").as_deref() == Some("true")
}

/// Makes the crate's function `$handler` the function's handler: it
/// defines the exports sluice calls. Use it once, at the top level of the
/// crate's `lib.rs`.
///
/// The handler takes the call's input and returns the output, anything
/// that is `AsRef<[u8]>` (`Vec<u8>`, `String`, `&'static str`), or an
/// error, anything that is `Into<sluice::Error>`:
///
/// ```no_run
/// sluice::handler!(upper);
///
/// fn upper(input: &[u8]) -> Result<Vec<u8>, sluice::Error> {
///     Ok(input.to_ascii_uppercase())
/// }
/// ```
///
/// In a native build (tests) the macro defines nothing: call the handler
/// with [`testing::call`].
#[macro_export]
macro_rules! handler {
    ($handler:path) => {
        $crate::__exports!(|input: &[u8]| $crate::__rt::run_bytes(input, $handler));
        // natively the handler is called by tests only: not dead code
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        pub fn __sluice_handle(input: &[u8]) -> u32 {
            $crate::__rt::run_bytes(input, $handler)
        }
    };
}

/// Makes the crate's function `$handler` the function's HTTP handler: it
/// takes the request an HTTP trigger received (method, path, query,
/// headers, body: [`http::Request`]) and returns the response
/// ([`http::Response`]: status, headers, body) or an error, which answers
/// sluice's JSON error with its status.
///
/// ```no_run
/// use sluice::http::{Request, Response};
///
/// sluice::http_handler!(handle);
///
/// fn handle(req: &Request) -> Result<Response, sluice::Error> {
///     Ok(Response::new(200)
///         .header("Content-Type", "text/plain; charset=utf-8")
///         .body(format!("{} {}", req.method, req.path)))
/// }
/// ```
///
/// A call that did not come through an HTTP trigger (`sluice fn invoke`, a
/// queue, a workflow) is a `POST` of its input to `/`.
#[macro_export]
macro_rules! http_handler {
    ($handler:path) => {
        $crate::__exports!(|input: &[u8]| $crate::__rt::run_http(input, $handler));
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        pub fn __sluice_handle(input: &[u8]) -> u32 {
            $crate::__rt::run_http(input, $handler)
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __exports {
    ($run:expr) => {
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn sluice_alloc(size: usize) -> *mut u8 {
            $crate::__rt::alloc(size)
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub unsafe extern "C" fn sluice_free(ptr: *mut u8, size: usize) {
            $crate::__rt::free(ptr, size)
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub unsafe extern "C" fn sluice_handle(ptr: *const u8, len: usize) -> u32 {
            $crate::__rt::handle(ptr, len, $run)
        }
    };
}
