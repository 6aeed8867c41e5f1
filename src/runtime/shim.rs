//! `kelp shim`: the single-threaded per-container process. Runs before any tokio runtime exists.

use std::ffi::OsString;

/// Entry point of `kelp shim`; returns the process exit code.
pub fn main(_args: Vec<OsString>) -> i32 {
    eprintln!("kelp shim: not implemented");
    1
}
