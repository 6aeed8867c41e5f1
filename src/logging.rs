//! Logging: tracing-subscriber's fmt layer on stderr, filtered by level.
//!
//! The level is `--log-level` raised one step per `-v` (error < warn < info < debug <
//! trace). If `RUST_LOG` is set and holds valid directives, it overrides both.

use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// Log level names from least to most verbose.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// The level `level` raised by `verbosity` steps, capped at trace. An unknown `level`
/// counts as `info`.
pub fn effective_level(level: &str, verbosity: u8) -> Level {
    let base = LEVELS.iter().position(|l| l.eq_ignore_ascii_case(level.trim())).unwrap_or(2);
    match base.saturating_add(usize::from(verbosity)) {
        0 => Level::ERROR,
        1 => Level::WARN,
        2 => Level::INFO,
        3 => Level::DEBUG,
        _ => Level::TRACE,
    }
}

/// The filter for `level` and `verbosity`; `rust_log` (the value of `RUST_LOG`), when it
/// holds any valid directive, replaces the level. Invalid directives are ignored.
pub fn filter(level: &str, verbosity: u8, rust_log: Option<&str>) -> EnvFilter {
    let default = LevelFilter::from_level(effective_level(level, verbosity));
    EnvFilter::builder().with_default_directive(default.into()).parse_lossy(rust_log.unwrap_or(""))
}

/// Installs the global subscriber: fmt to stderr (ANSI colours only on a terminal) with
/// [`filter`] using `RUST_LOG`. Idempotent: later calls (and calls after another
/// subscriber was installed, e.g. in tests) do nothing.
pub fn init(level: &str, verbosity: u8) {
    use std::io::IsTerminal;
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    // Unit tests write through the test harness so their output is captured.
    #[cfg(test)]
    let writer = tracing_subscriber::fmt::TestWriter::new();
    #[cfg(not(test))]
    let writer = std::io::stderr;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(level, verbosity, rust_log.as_deref()))
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_verbosity() {
        assert_eq!(effective_level("info", 0), Level::INFO);
        assert_eq!(effective_level("info", 1), Level::DEBUG);
        assert_eq!(effective_level("info", 2), Level::TRACE);
        assert_eq!(effective_level("info", 200), Level::TRACE);
        assert_eq!(effective_level("error", 0), Level::ERROR);
        assert_eq!(effective_level("error", 1), Level::WARN);
        assert_eq!(effective_level("WARN", 0), Level::WARN);
        assert_eq!(effective_level("bogus", 0), Level::INFO);
    }

    #[test]
    fn rust_log_overrides() {
        assert_eq!(filter("info", 1, None).to_string(), "debug");
        assert_eq!(filter("info", 0, Some("")).to_string(), "info");
        assert_eq!(filter("info", 0, Some("kelp=trace")).to_string(), "kelp=trace");
        // Nothing valid in RUST_LOG: the level applies.
        assert_eq!(filter("warn", 0, Some("=")).to_string(), "warn");
    }

    #[test]
    fn init_is_idempotent() {
        init("info", 0);
        init("debug", 3);
        tracing::info!("logging initialised twice without panicking");
    }
}
