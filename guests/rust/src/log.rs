//! Log records, written to the function's logs (`sluice fn logs NAME`)
//! with the call's invocation id.
//!
//! ```no_run
//! sluice::log::info(format_args!("resized {} images", 3));
//! sluice::log::warn("the cache is cold");
//! ```

use std::fmt::Display;

use crate::sys;

/// The level of a log record, as in the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Detail for debugging.
    Debug = 0,
    /// What the function did.
    Info = 1,
    /// Something that may need attention.
    Warn = 2,
    /// Something that went wrong.
    Error = 3,
}

impl Level {
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn from_i32(n: i32) -> Level {
        match n {
            0 => Level::Debug,
            1 => Level::Info,
            2 => Level::Warn,
            _ => Level::Error,
        }
    }
}

/// Writes one log record at `level`: a `&str`, a `String`, or
/// `format_args!(...)` (formatted without an intermediate allocation by
/// the caller).
pub fn write(level: Level, msg: impl Display) {
    sys::log(level as i32, &msg.to_string());
}

/// Writes one debug record.
pub fn debug(msg: impl Display) {
    write(Level::Debug, msg)
}

/// Writes one info record.
pub fn info(msg: impl Display) {
    write(Level::Info, msg)
}

/// Writes one warning record.
pub fn warn(msg: impl Display) {
    write(Level::Warn, msg)
}

/// Writes one error record.
pub fn error(msg: impl Display) {
    write(Level::Error, msg)
}
