//! Child processes the driver starts (echo backends, nginx, HAProxy, wsgate) and what /proc says about
//! them.
//!
//! ```text
//!   Proc::spawn ─► own process group, SIGKILL if the driver dies, output to WORK/<name>.log
//!   Proc::cpu_seconds / rss_bytes ─► summed over every live process of that group (nginx's master and
//!                                    workers, HAProxy's master and worker, wsgate's one process)
//!   drop ─► SIGTERM to the group, up to 3 s, then SIGKILL: nothing outlives the driver, error or not
//! ```

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A running child process (and its process group), ended when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
}

impl Proc {
    /// Starts `command` in its own process group, logging to `work/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, work: &Path) -> anyhow::Result<Proc> {
        let log = File::create(work.join(format!("{name}.log"))).context("creating a log file")?;
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // SAFETY: only async-signal-safe calls (setpgid, prctl) run between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // If the driver is killed outright, its children go too.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Proc { child })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether the group leader still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` to the group leader (nginx's or HAProxy's master).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we own.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Live processes of the group.
    fn members(&self) -> Vec<Stat> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
            .filter_map(Stat::read)
            .filter(|s| s.pgrp == self.pid())
            .collect()
    }

    /// User + system CPU seconds used so far by the live processes of the group.
    pub fn cpu_seconds(&self) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        self.members().iter().map(|s| (s.utime + s.stime) as f64 / ticks).sum()
    }

    /// Resident memory of the live processes of the group, in bytes (kernel socket buffers not included).
    pub fn rss_bytes(&self) -> u64 {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        self.members().iter().map(|s| s.rss_pages * page).sum()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let group = -self.pid();
        // SAFETY: kill(2) on the process group this Proc created.
        unsafe {
            libc::kill(group, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && self.running() {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Workers of a master that already exited are still in the group: always make sure.
        // SAFETY: as above.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The fields of /proc/PID/stat the driver uses.
#[derive(Debug)]
struct Stat {
    pgrp: i32,
    utime: u64,
    stime: u64,
    rss_pages: u64,
}

impl Stat {
    fn read(pid: i32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        let rest = &text[text.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): field N is rest[N - 3].
        Some(Stat {
            pgrp: fields.get(2)?.parse().ok()?,
            utime: fields.get(11)?.parse().ok()?,
            stime: fields.get(12)?.parse().ok()?,
            rss_pages: fields.get(21)?.parse().ok()?,
        })
    }
}

/// Raises this process's soft open-file limit to the hard limit (children inherit it); returns it.
pub fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}
