//! The host's side: the `sluice` imports in WebAssembly, a recording of
//! what the handler did in a native build (for `testing`).

#[cfg(target_arch = "wasm32")]
pub use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

/// The exit code of a panicking guest: Rust's own for a panicking process.
#[cfg(target_arch = "wasm32")]
const PANIC_EXIT_CODE: i32 = 101;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::io::Write;

    #[link(wasm_import_module = "sluice")]
    extern "C" {
        #[link_name = "output"]
        fn host_output(ptr: *const u8, len: usize);
        #[link_name = "fail"]
        fn host_fail(ptr: *const u8, len: usize);
        #[link_name = "error_code"]
        fn host_error_code(ptr: *const u8, len: usize);
        #[link_name = "log"]
        fn host_log(level: i32, ptr: *const u8, len: usize);
        #[link_name = "meta_get"]
        fn host_meta_get(key: *const u8, key_len: usize, buf: *mut u8, cap: usize) -> i32;
        #[link_name = "http_status"]
        fn host_http_status(code: i32);
        #[link_name = "http_header"]
        fn host_http_header(name: *const u8, name_len: usize, value: *const u8, value_len: usize);
    }

    pub fn output(b: &[u8]) {
        // SAFETY: the host reads len bytes at ptr and copies them at once.
        unsafe { host_output(b.as_ptr(), b.len()) }
    }

    pub fn fail(msg: &str) {
        unsafe { host_fail(msg.as_ptr(), msg.len()) }
    }

    pub fn error_code(code: &str) {
        unsafe { host_error_code(code.as_ptr(), code.len()) }
    }

    pub fn log(level: i32, msg: &str) {
        unsafe { host_log(level, msg.as_ptr(), msg.len()) }
    }

    pub fn http_status(code: u16) {
        unsafe { host_http_status(code as i32) }
    }

    pub fn http_header(name: &str, value: &str) {
        unsafe { host_http_header(name.as_ptr(), name.len(), value.as_ptr(), value.len()) }
    }

    pub fn meta_get(key: &str) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 128];
        loop {
            // SAFETY: the host writes at most buf.len() bytes to buf.
            let n = unsafe { host_meta_get(key.as_ptr(), key.len(), buf.as_mut_ptr(), buf.len()) };
            if n < 0 {
                return None;
            }
            let n = n as usize;
            if n <= buf.len() {
                buf.truncate(n);
                return Some(buf);
            }
            buf = vec![0u8; n];
        }
    }

    /// In WebAssembly a panic aborts (there is no unwinding): the hook
    /// writes the panic's message to stderr as `panic: MESSAGE at
    /// FILE:LINE:COL`, which the host puts in the function's logs and in
    /// the call's error, and exits with Rust's panic code, 101. The host
    /// throws the instance away; the next call gets a fresh one.
    pub fn install_panic_hook() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let msg = crate::__rt::payload_message(info.payload());
                let _ = match info.location() {
                    Some(l) => writeln!(std::io::stderr(), "panic: {msg} at {}:{}:{}", l.file(), l.line(), l.column()),
                    None => writeln!(std::io::stderr(), "panic: {msg}"),
                };
                std::process::exit(super::PANIC_EXIT_CODE);
            }))
        });
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::cell::RefCell;

    /// What a native call did, recorded for `testing`.
    #[derive(Default)]
    pub struct Recording {
        pub meta: Vec<(String, String)>,
        pub output: Vec<u8>,
        pub fail: Option<String>,
        pub code: Option<String>,
        pub logs: Vec<(i32, String)>,
        pub status: Option<u16>,
        pub headers: Vec<(String, String)>,
    }

    thread_local! {
        static CALL: RefCell<Option<Recording>> = RefCell::new(None);
    }

    /// Runs f with a recording of the calls into the host it makes.
    pub fn record<T>(meta: Vec<(String, String)>, f: impl FnOnce() -> T) -> (T, Recording) {
        CALL.with(|c| {
            *c.borrow_mut() = Some(Recording {
                meta,
                ..Recording::default()
            })
        });
        let res = f();
        let rec = CALL.with(|c| c.borrow_mut().take()).unwrap_or_default();
        (res, rec)
    }

    fn with(f: impl FnOnce(&mut Recording)) {
        CALL.with(|c| {
            if let Some(r) = c.borrow_mut().as_mut() {
                f(r)
            }
        })
    }

    pub fn output(b: &[u8]) {
        with(|r| r.output = b.to_vec())
    }

    pub fn fail(msg: &str) {
        with(|r| r.fail = Some(msg.to_string()))
    }

    pub fn error_code(code: &str) {
        with(|r| r.code = Some(code.to_string()))
    }

    /// Outside a test's call, logs go to stderr.
    pub fn log(level: i32, msg: &str) {
        let mut recorded = false;
        with(|r| {
            r.logs.push((level, msg.to_string()));
            recorded = true
        });
        if !recorded {
            eprintln!("[{level}] {msg}");
        }
    }

    /// Natively a panic unwinds, and `testing` catches it.
    pub fn install_panic_hook() {}

    pub fn http_status(code: u16) {
        with(|r| r.status = Some(code))
    }

    pub fn http_header(name: &str, value: &str) {
        with(|r| r.headers.push((name.to_string(), value.to_string())))
    }

    pub fn meta_get(key: &str) -> Option<Vec<u8>> {
        let mut v = None;
        with(|r| {
            v = r
                .meta
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_bytes().to_vec())
        });
        v
    }
}
