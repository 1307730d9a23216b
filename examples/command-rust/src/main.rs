//! command-rust: a plain WASI command in Rust (standard library only, no
//! sluice SDK), to check that sluice runs a command as any WASI runtime
//! does. It prints its arguments, how many environment variables it sees
//! and their names, and how many bytes it read from stdin; it writes one
//! line to stderr (the function's logs); it exits with the code its input
//! gives ("exit 3"), else 0.
//!
//!   cargo build --release --target wasm32-wasip1    (wasm32-wasi before Rust 1.78)
//!   sluice fn deploy env target/wasm32-wasip1/release/command-rust.wasm --env A=1
//!   sluice fn invoke env --data 'exit 3'

use std::io::{Read, Write};

fn main() {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("reading stdin: {e}");
        std::process::exit(2);
    }
    let args: Vec<String> = std::env::args().collect();
    let mut names: Vec<String> = std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
    names.sort();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "args: {args:?}");
    let _ = writeln!(out, "env: {} {names:?}", names.len());
    let _ = writeln!(out, "stdin: {} bytes", input.len());
    let _ = out.flush();
    eprintln!("command-rust read {} bytes", input.len());
    let code = String::from_utf8_lossy(&input)
        .trim()
        .strip_prefix("exit ")
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    std::process::exit(code);
}
