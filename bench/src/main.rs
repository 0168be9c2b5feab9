//! `wsgate-bench`: wsgate side by side with nginx and HAProxy (and no proxy at all), on loopback.
//!
//! ```text
//!   all    build wsgate (profile dist), install nginx + HAProxy if missing, start two echo backends and
//!          the four targets, run every workload round by round (direct, nginx, HAProxy, wsgate in turn),
//!          then the reload / route-change workload once, and print one markdown table of medians
//!   smoke  the same workloads for 2 s each against wsgate only (no nginx/HAProxy needed); exits 1 on
//!          any error or dropped connection, asserts nothing about speed
//!   echo   the echo backend (the driver starts two of these)
//! ```
//!
//! Every child process is in its own process group and is killed when the driver exits, on error and
//! on Ctrl-C/SIGTERM too. Traffic goes to 127.0.0.0/8 only.

mod client;
mod echo;
mod load;
mod procs;
mod report;
mod targets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};

use load::Timing;
use report::{Facts, Metric, Results};
use targets::{Backends, Kind, Target, WsgateBinary};

#[derive(Parser, Debug)]
#[command(name = "wsgate-bench", about = "wsgate vs nginx vs HAProxy, side by side on loopback")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The full benchmark: every workload against direct, nginx, HAProxy and wsgate, interleaved.
    All(AllArgs),
    /// A short run of every workload against wsgate alone (CI): fails on errors, not on speed.
    Smoke(CommonArgs),
    /// Run an echo backend on the given addresses (used by the driver).
    Echo { addrs: Vec<SocketAddr> },
    /// One workload against one target for a long window, for profiling (`perf record -p PID`).
    Load(LoadArgs),
}

#[derive(Args, Debug)]
struct LoadArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// upgrades, echo (64 B), large (64 KiB), idle.
    workload: String,
    /// direct, nginx, haproxy or wsgate.
    #[arg(long, default_value = "wsgate")]
    target: String,
    /// Connections (echo workloads), handshakers (upgrades) or WebSockets (idle).
    #[arg(long, default_value_t = 100)]
    conns: usize,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds to wait after the target is up (time to attach a profiler to the printed pid).
    #[arg(long, default_value_t = 2.0)]
    pause: f64,
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// wsgate binary to run; default: build it with cargo (profile dist for `all`, the bench's own profile
    /// for `smoke`) and use target/<profile>/wsgate.
    #[arg(long)]
    wsgate: Option<PathBuf>,
    /// Keep the work folder (configurations, manifests, logs) after the run.
    #[arg(long)]
    keep: bool,
}

#[derive(Args, Debug)]
struct AllArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Interleaved rounds; the table shows medians.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Measured window of each throughput workload, seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Idle WebSockets opened for the memory workload (capped by the open-file limit).
    #[arg(long, default_value_t = 9000)]
    idle: usize,
    /// Targets, comma-separated, from direct,nginx,haproxy,wsgate,wsgate-policy,wsgate-frames.
    #[arg(long, value_delimiter = ',', default_value = "direct,nginx,haproxy,wsgate,wsgate-policy,wsgate-frames")]
    targets: Vec<String>,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Sizes of one run.
#[derive(Debug, Clone)]
struct Plan {
    targets: Vec<Kind>,
    rounds: usize,
    timing: Timing,
    handshakers: usize,
    small_conns: usize,
    many_conns: usize,
    large_conns: usize,
    idle: usize,
    latency_conns: usize,
    latency_rate: u32,
    reload_conns: usize,
    changes: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Echo { addrs } => echo::run(&addrs),
        Command::All(args) => in_runtime(run_all(args)),
        Command::Smoke(args) => in_runtime(run_smoke(args)),
        Command::Load(args) => in_runtime(run_load(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wsgate-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` on the load generator's runtime; Ctrl-C or SIGTERM abandon it (dropping everything it
/// started, which stops the child processes).
fn in_runtime(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = work => result,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = term.recv() => bail!("terminated"),
        }
    })
}

/// The workspace root (bench/..).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The wsgate binary: the one given, or built now with cargo.
fn wsgate_binary(given: Option<PathBuf>, release: bool) -> anyhow::Result<WsgateBinary> {
    if let Some(path) = given {
        return Ok(WsgateBinary { path });
    }
    let root = workspace();
    let mut cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cargo.current_dir(&root).args(["build", "--bin", "wsgate"]);
    // `dist` is the shipped build (release with LTO, see Cargo.toml): the one the image runs.
    let profile = if release { "dist" } else { "dev" };
    cargo.args(["--profile", profile]);
    eprintln!("building wsgate (profile {profile})");
    if !cargo.status().context("running cargo")?.success() {
        bail!("cargo build --bin wsgate failed");
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    Ok(WsgateBinary { path: target_dir.join(if release { "dist" } else { "debug" }).join("wsgate") })
}

/// A fresh work folder under the temp dir, removed on drop unless kept.
struct Work {
    path: PathBuf,
    keep: bool,
}

impl Work {
    fn create(keep: bool) -> anyhow::Result<Work> {
        let path = std::env::temp_dir().join(format!("wsgate-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Work { path, keep })
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("work folder kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

async fn run_all(args: AllArgs) -> anyhow::Result<()> {
    let mut kinds = Vec::new();
    for name in &args.targets {
        kinds.push(Kind::parse(name).with_context(|| format!("unknown target {name:?}"))?);
    }
    kinds.sort();
    kinds.dedup();
    let nofile = procs::raise_nofile();
    // The proxy holds two sockets per WebSocket, plus listeners and a few files.
    let idle_cap = (nofile.saturating_sub(200) / 2) as usize;
    let plan = Plan {
        targets: kinds.clone(),
        rounds: args.rounds.max(1),
        timing: Timing { warmup: Duration::from_millis(500), window: Duration::from_secs_f64(args.seconds.max(0.5)) },
        handshakers: 50,
        small_conns: 100,
        many_conns: 1000,
        large_conns: 10,
        idle: args.idle.min(idle_cap),
        latency_conns: 50,
        latency_rate: 200,
        reload_conns: 1000,
        changes: 100,
    };
    if plan.idle < args.idle {
        eprintln!("open-file limit {nofile}: idle workload capped at {} WebSockets", plan.idle);
    }
    if (kinds.contains(&Kind::Nginx) || kinds.contains(&Kind::Haproxy)) && !targets::proxies_installed() {
        targets::install_proxies()?;
    }
    let wsgate =
        if kinds.iter().any(|k| k.is_wsgate()) { Some(wsgate_binary(args.common.wsgate, true)?) } else { None };
    let results = run(&plan, wsgate.as_ref(), args.common.keep).await?;
    let mut header = vec![("date".to_string(), utc_now())];
    header.extend(targets::describe_machine(wsgate.as_ref()));
    header.push((
        "run".to_string(),
        format!(
            "{} interleaved rounds, {:.0} s windows after {:.1} s warm-up, medians; open-file limit {nofile}",
            plan.rounds,
            plan.timing.window.as_secs_f64(),
            plan.timing.warmup.as_secs_f64()
        ),
    ));
    let table = results.markdown(&header);
    println!("{table}");
    if let Some(out) = args.out {
        std::fs::write(&out, &table).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

async fn run_smoke(args: CommonArgs) -> anyhow::Result<()> {
    let nofile = procs::raise_nofile();
    let plan = Plan {
        targets: vec![Kind::Wsgate, Kind::WsgatePolicy, Kind::WsgateFrames],
        rounds: 1,
        timing: Timing { warmup: Duration::from_millis(200), window: Duration::from_secs(2) },
        handshakers: 50,
        small_conns: 100,
        many_conns: 1000.min((nofile / 4) as usize),
        large_conns: 10,
        idle: 500,
        latency_conns: 50,
        latency_rate: 200,
        reload_conns: 200,
        changes: 10,
    };
    let wsgate = wsgate_binary(args.wsgate, !cfg!(debug_assertions))?;
    let results = run(&plan, Some(&wsgate), args.keep).await?;
    println!("{}", results.markdown(&[("smoke".to_string(), "wsgate only, 2 s per workload".to_string())]));
    let dropped: u64 = results.dropped.values().map(|d| d.0).sum();
    if results.total_errors() > 0 || dropped > 0 {
        bail!("smoke failed: {} errors, {dropped} dropped WebSockets", results.total_errors());
    }
    println!("smoke: every workload ran against wsgate without an error");
    Ok(())
}

async fn run_load(args: LoadArgs) -> anyhow::Result<()> {
    let kind = Kind::parse(&args.target).with_context(|| format!("unknown target {:?}", args.target))?;
    procs::raise_nofile();
    let wsgate = if kind.is_wsgate() { Some(wsgate_binary(args.common.wsgate, true)?) } else { None };
    let work = Work::create(args.common.keep)?;
    let backends = Backends::start(&work.path).await?;
    let mut target = Target::start(kind, &work.path, &backends, wsgate.as_ref()).await?;
    eprintln!("{} pid {}", kind.name(), target.proc.as_ref().map_or(0, procs::Proc::pid));
    tokio::time::sleep(Duration::from_secs_f64(args.pause)).await;
    let timing = Timing { warmup: Duration::from_millis(500), window: Duration::from_secs_f64(args.seconds) };
    let w = match args.workload.as_str() {
        "upgrades" => load::upgrades(&target, args.conns, timing).await,
        "echo" => load::echo(&target, args.conns, 64, timing).await,
        "large" => load::echo(&target, args.conns, 64 * 1024, timing).await,
        "idle" => {
            let idle = load::idle(&mut target, args.conns).await?;
            println!("{} open, {:.0} B RSS each, {} errors", idle.opened, idle.bytes_per_conn, idle.errors);
            return Ok(());
        }
        other => bail!("unknown workload {other:?}"),
    };
    println!("{:.0}/s, {:.2} CPU s per million, {} errors", w.rate(), w.cpu_per_million(), w.errors);
    Ok(())
}

/// Runs every workload of `plan`: round by round, each workload against each target in turn.
async fn run(plan: &Plan, wsgate: Option<&WsgateBinary>, keep: bool) -> anyhow::Result<Results> {
    let work = Work::create(keep)?;
    let started = Instant::now();
    let backends = Backends::start(&work.path).await?;
    let mut targets = Vec::new();
    for kind in &plan.targets {
        targets.push(Target::start(*kind, &work.path, &backends, wsgate).await?);
    }
    let mut results = Results::new(
        plan.targets.clone(),
        Facts {
            handshakers: plan.handshakers,
            small_conns: plan.small_conns,
            many_conns: plan.many_conns,
            large_conns: plan.large_conns,
            idle_opened: 0,
            latency_load: format!("64 B, {} connections × {} msgs/s", plan.latency_conns, plan.latency_rate),
        },
    );
    let timing = plan.timing;
    for round in 1..=plan.rounds {
        eprintln!("round {round}/{} ({:.0} s so far)", plan.rounds, started.elapsed().as_secs_f64());
        for target in &mut targets {
            if target.kind == Kind::Direct {
                continue;
            }
            let idle = load::idle(target, plan.idle).await?;
            eprintln!(
                "  {:8} idle: {} open, {:.0} B each, {} errors",
                target.kind.name(),
                idle.opened,
                idle.bytes_per_conn,
                idle.errors
            );
            results.add(Metric::Rss, target.kind, idle.bytes_per_conn / 1024.0);
            results.add_errors(target.kind, idle.errors);
            results.facts.idle_opened = results.facts.idle_opened.max(idle.opened);
        }
        for target in &targets {
            let w = load::upgrades(target, plan.handshakers, timing).await;
            eprintln!(
                "  {:8} upgrades/s {:.0}, {:.0} CPU µs each ({} errors)",
                target.kind.name(),
                w.rate(),
                w.cpu_per_million(),
                w.errors
            );
            results.add(Metric::Upgrades, target.kind, w.rate());
            if target.kind != Kind::Direct {
                results.add(Metric::CpuUpgrade, target.kind, w.cpu_per_million());
            }
            results.add_errors(target.kind, w.errors);
        }
        for (conns, metric, cpu_metric) in
            [(plan.small_conns, Metric::Echo100, Metric::Cpu100), (plan.many_conns, Metric::Echo1000, Metric::Cpu1000)]
        {
            for target in &targets {
                let w = load::echo(target, conns, 64, timing).await;
                eprintln!(
                    "  {:8} 64 B x {conns}: {:.0} msgs/s, {:.2} CPU s/M ({} errors)",
                    target.kind.name(),
                    w.rate(),
                    w.cpu_per_million(),
                    w.errors
                );
                results.add(metric, target.kind, w.rate());
                if target.kind != Kind::Direct {
                    results.add(cpu_metric, target.kind, w.cpu_per_million());
                }
                results.add_errors(target.kind, w.errors);
            }
        }
        for target in &targets {
            let w = load::echo(target, plan.large_conns, 64 * 1024, timing).await;
            let mb = w.rate() * 65536.0 / 1e6;
            eprintln!("  {:8} 64 KiB x {}: {mb:.0} MB/s ({} errors)", target.kind.name(), plan.large_conns, w.errors);
            results.add(Metric::Large, target.kind, mb);
            results.add_errors(target.kind, w.errors);
        }
        for target in &targets {
            let (samples, errors) = load::latency(target, plan.latency_conns, plan.latency_rate, timing).await;
            let (p50, p99, p999) =
                (load::quantile(&samples, 0.5), load::quantile(&samples, 0.99), load::quantile(&samples, 0.999));
            eprintln!(
                "  {:8} latency µs p50 {p50:.0} p99 {p99:.0} p99.9 {p999:.0} ({} samples, {errors} errors)",
                target.kind.name(),
                samples.len()
            );
            results.add(Metric::Lat50, target.kind, p50);
            results.add(Metric::Lat99, target.kind, p99);
            results.add(Metric::Lat999, target.kind, p999);
            results.add_errors(target.kind, errors);
        }
    }
    for target in &targets {
        match target.kind {
            // The route-change workload is the plain wsgate's; policies change nothing in it.
            Kind::Direct | Kind::WsgatePolicy | Kind::WsgateFrames => {}
            Kind::Nginx | Kind::Haproxy => {
                eprintln!("  {:8} reload with {} open WebSockets", target.kind.name(), plan.reload_conns);
                let (dropped, errors) = load::reload_drops(target, plan.reload_conns).await?;
                eprintln!("  {:8} reload dropped {dropped}", target.kind.name());
                results.dropped.insert(target.kind, (dropped, plan.reload_conns));
                results.add_errors(target.kind, errors);
            }
            Kind::Wsgate => {
                let changes = load::wsgate_changes(target, plan.reload_conns, plan.changes).await?;
                let p50 = changes.propagation_ms[changes.propagation_ms.len() / 2];
                let p99 = changes.propagation_ms[(changes.propagation_ms.len() * 99).div_ceil(100).max(1) - 1];
                eprintln!(
                    "  wsgate   {} changes: dropped {}, propagation p50 {p50:.1} ms p99 {p99:.1} ms",
                    plan.changes, changes.dropped
                );
                results.dropped.insert(Kind::Wsgate, (changes.dropped, plan.reload_conns));
                results.propagation = Some((p50, p99, plan.changes));
                results.add_errors(Kind::Wsgate, changes.errors);
            }
        }
    }
    for target in &mut targets {
        if let Some(proc) = target.proc.as_mut()
            && !proc.running()
        {
            bail!("{} exited during the run; see its log in {}", target.kind.name(), target.dir.display());
        }
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(results)
}

/// The current UTC date and time, from the system clock (no time-zone database needed).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02} UTC")
}
