//! What the exports the macros define call: not part of the API.

use crate::http::{Request, Response};
use crate::{sys, Error};

/// Return values of `sluice_handle`.
const STATUS_OK: u32 = 0;
const STATUS_FAILED: u32 = 1;

/// `sluice_alloc`: `size` bytes the host writes inputs into, until it
/// frees them with `sluice_free`. Null if there is no memory left.
pub fn alloc(size: usize) -> *mut u8 {
    match layout(size) {
        // SAFETY: the layout's size is not zero.
        Some(l) => unsafe { std::alloc::alloc(l) },
        None => std::ptr::null_mut(),
    }
}

/// `sluice_free`: gives back a buffer from `alloc`, with the size asked for.
///
/// # Safety
/// `ptr` is what `alloc(size)` returned and has not been freed.
pub unsafe fn free(ptr: *mut u8, size: usize) {
    if let Some(l) = layout(size) {
        if !ptr.is_null() {
            std::alloc::dealloc(ptr, l)
        }
    }
}

fn layout(size: usize) -> Option<std::alloc::Layout> {
    std::alloc::Layout::from_size_align(size.max(1), 1).ok()
}

/// `sluice_handle`: runs one call with the `len` bytes at `ptr` as input.
///
/// # Safety
/// `ptr` points to `len` readable bytes (the host's input buffer).
pub unsafe fn handle(ptr: *const u8, len: usize, run: impl FnOnce(&[u8]) -> u32) -> u32 {
    sys::install_panic_hook();
    let input: &[u8] = if len == 0 || ptr.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    };
    run(input)
}

/// Runs a bytes handler and gives the host its output or its failure.
pub fn run_bytes<F, O, E>(input: &[u8], handler: F) -> u32
where
    F: FnOnce(&[u8]) -> Result<O, E>,
    O: AsRef<[u8]>,
    E: Into<Error>,
{
    match handler(input) {
        Ok(out) => {
            sys::output(out.as_ref());
            STATUS_OK
        }
        Err(err) => failed(err.into()),
    }
}

/// Runs an HTTP handler over the request the call's metadata and input
/// make, and gives the host its response or its failure.
pub fn run_http<F>(input: &[u8], handler: F) -> u32
where
    F: FnOnce(&Request) -> Result<Response, Error>,
{
    let req = Request::from_call(input);
    match handler(&req) {
        Ok(resp) => {
            if resp.status != 200 {
                sys::http_status(resp.status);
            }
            for (name, value) in &resp.headers {
                sys::http_header(name, value);
            }
            sys::output(&resp.body);
            STATUS_OK
        }
        Err(err) => failed(err),
    }
}

fn failed(err: Error) -> u32 {
    sys::fail(err.message());
    if let Some(code) = err.code() {
        sys::error_code(code);
    }
    STATUS_FAILED
}

/// The message a panic was given (`panic!("...")`, `expect`, an index out
/// of bounds).
pub fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
