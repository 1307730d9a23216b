//! hello-rust: a Rust reactor over bytes (guests/rust). It greets its
//! input, and shows what an error, a panic and an endless loop do:
//!
//!   ""             fails with code empty_input: "empty input"
//!   "panic WORDS"  panics with WORDS: the call fails with exit code 101
//!                  and "panic: WORDS at src/lib.rs:...", the instance is
//!                  thrown away
//!   "spin"         loops until the function's --timeout stops it
//!   anything else  "hello, " and the input, byte for byte; logs
//!                  "greeting N bytes"
//!
//!   cargo build --release --target wasm32-wasip1    (wasm32-wasi before Rust 1.78)
//!   sluice fn deploy hello target/wasm32-wasip1/release/hello_rust.wasm
//!   sluice fn invoke hello --data world

use std::sync::atomic::{AtomicU64, Ordering};

sluice::handler!(handle);

fn handle(input: &[u8]) -> Result<Vec<u8>, sluice::Error> {
    if input.is_empty() {
        return Err(sluice::Error::with_code("empty_input", "empty input"));
    }
    if let Some(words) = input.strip_prefix(b"panic ") {
        panic!("{}", String::from_utf8_lossy(words));
    }
    if input == b"spin" {
        spin();
    }
    sluice::log::info(format_args!("greeting {} bytes", input.len()));
    let mut out = b"hello, ".to_vec();
    out.extend_from_slice(input);
    Ok(out)
}

/// Loops for ever, without a call into the host: only the timeout stops it.
fn spin() -> ! {
    static TURNS: AtomicU64 = AtomicU64::new(0);
    loop {
        TURNS.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::handle;
    use sluice::log::Level;
    use sluice::testing::call;

    #[test]
    fn greets_any_bytes() {
        let c = call(handle, b"\xffworld");
        assert_eq!(c.result, Ok(b"hello, \xffworld".to_vec()));
        assert_eq!(c.logs, vec![(Level::Info, "greeting 6 bytes".to_string())]);
    }

    #[test]
    fn fails_on_empty_input() {
        let err = call(handle, b"").result.unwrap_err();
        assert_eq!((err.code(), err.message()), (Some("empty_input"), "empty input"));
    }

    #[test]
    fn a_panic_fails_the_call() {
        let err = call(handle, b"panic at the disco").result.unwrap_err();
        assert_eq!(err.message(), "panic: at the disco");
    }
}
