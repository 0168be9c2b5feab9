//! Logging: a `tracing` subscriber writing to stderr, as text for people or JSON for log pipelines.
//!
//! The filter comes from `RUST_LOG` when set (e.g. `RUST_LOG=wsgate=debug`), else from `--log-level`.
//! With `--access-log on`, access lines (target `wsgate::access`) pass whatever the level, unless the
//! filter names that target itself (e.g. `warn,wsgate::access=off`).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The tracing target of the dataplane's access lines (`--access-log on`).
pub const ACCESS_TARGET: &str = "wsgate::access";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. Call once, early in `main`. With `access_log`, access lines (target
/// `wsgate::access`, at `info`) are written whatever the level, unless the filter names that target.
pub fn init(format: LogFormat, level: &str, access_log: bool) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let names_access = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string()).contains(ACCESS_TARGET);
    if access_log && !names_access {
        filter = filter.add_directive(format!("{ACCESS_TARGET}=info").parse().expect("a valid directive"));
    }
    // why not always coloured: log collectors (kubectl logs, files) would keep the escape codes.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // A second call (tests, embedding) keeps the first subscriber: that is fine, not an error.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
