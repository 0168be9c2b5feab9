//! File mode: a folder of Kubernetes YAML manifests is the source, watched for changes.
//!
//! ```text
//!   DIR/*.yaml ──inotify──► debounce ──► load_dir ──► compile ──► Publisher
//!                                           │
//!                                           ├─ a broken document: report file, document and reason;
//!                                           │  publish nothing, the last good table keeps serving
//!                                           └─ an unknown field: warn with its path; the object is
//!                                              served without it (no strict rejection: see README)
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use super::compile::{CompileOptions, Severity, compile};
use super::manifests::load_dir;
use super::publish::{Published, Publisher};

/// Changes that arrive within this window after the first one are folded into one rebuild: editors write
/// a file in several steps, and `kubectl`-style tools write several files at once.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Why file mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum FileModeError {
    #[error("cannot watch {dir}: {source}")]
    Watch { dir: PathBuf, source: notify::Error },
    #[error("{dir} is not a readable directory: {source}")]
    NotADirectory { dir: PathBuf, source: std::io::Error },
}

/// Loads, compiles and publishes `dir` now and after every change, until `shutdown` resolves.
pub async fn run(
    dir: PathBuf,
    options: CompileOptions,
    mut publisher: Publisher,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FileModeError> {
    std::fs::read_dir(&dir).map_err(|source| FileModeError::NotADirectory { dir: dir.clone(), source })?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match event {
            Ok(event) => !event.kind.is_access(),
            Err(_) => true,
        };
        if relevant {
            // A full channel already holds a pending rebuild: dropping this signal loses nothing.
            let _ = tx.try_send(());
        }
    })
    .map_err(|source| FileModeError::Watch { dir: dir.clone(), source })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| FileModeError::Watch { dir: dir.clone(), source })?;
    tracing::info!(dir = %dir.display(), "file mode: watching manifests");

    let mut reported = BTreeSet::new();
    rebuild(&dir, &options, &mut publisher, &mut reported);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            signal = rx.recv() => {
                if signal.is_none() {
                    return Ok(());
                }
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                rebuild(&dir, &options, &mut publisher, &mut reported);
            }
            _ = &mut shutdown => return Ok(()),
        }
    }
}

/// One build. `reported` holds the diagnostics already logged, so an unchanged problem is logged once,
/// not on every rebuild.
fn rebuild(dir: &Path, options: &CompileOptions, publisher: &mut Publisher, reported: &mut BTreeSet<String>) {
    let loaded = match load_dir(dir) {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::warn!(%error, "cannot read manifests; keeping the last good route table");
            publisher.reject(1);
            return;
        }
    };
    // why: logged on every reload that finds them, like load errors (and before them, so a reload that
    // is rejected still names them); they are not configuration errors, so no metric counts them.
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "unknown manifest field ignored; the object is still served");
    }
    if !loaded.errors.is_empty() {
        for error in &loaded.errors {
            tracing::warn!(%error, "manifest rejected; keeping the last good route table");
        }
        publisher.reject(loaded.errors.len());
        reported.clear();
        return;
    }
    let started = Instant::now();
    let compiled = compile(&loaded.snapshot, options);
    publisher.metrics().config_compile_duration_seconds.observe(started.elapsed().as_secs_f64());

    let mut now_reported = BTreeSet::new();
    let mut errors = 0;
    for diagnostic in &compiled.report.diagnostics {
        let line = diagnostic.to_string();
        if diagnostic.severity == Severity::Error {
            errors += 1;
        }
        if !reported.contains(&line) {
            match diagnostic.severity {
                Severity::Error => tracing::warn!(diagnostic = %line, "configuration error"),
                Severity::Warning => tracing::warn!(diagnostic = %line, "configuration warning"),
            }
        }
        now_reported.insert(line);
    }
    *reported = now_reported;
    publisher.record_errors(errors);
    if let Published::Swapped(generation) = publisher.publish(compiled.table) {
        tracing::debug!(generation, elapsed_ms = started.elapsed().as_millis() as u64, "file mode rebuild");
    }
}
