//! Collecting per-round figures and printing one markdown table of medians, with ratios to nginx.
//!
//! ```text
//!   Results::add(metric, target, value)   once per round (interleaved A B C D)
//!   Results::markdown() ─► | workload | direct | nginx | HAProxy | wsgate | wsgate ÷ nginx | HAProxy ÷ nginx |
//!                          + one-off rows (reload drops, propagation) + errors + per-round values
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::targets::Kind;

/// A figure measured once per round and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    Upgrades,
    Echo100,
    Echo1000,
    Large,
    Rss,
    Lat50,
    Lat99,
    Lat999,
    Cpu100,
    Cpu1000,
    CpuUpgrade,
}

impl Metric {
    fn label(self, facts: &Facts) -> String {
        match self {
            Metric::Upgrades => format!("upgrades/s, {} concurrent handshakers", facts.handshakers),
            Metric::Echo100 => format!("64 B echo msgs/s, {} connections", group(facts.small_conns as f64)),
            Metric::Echo1000 => format!("64 B echo msgs/s, {} connections", group(facts.many_conns as f64)),
            Metric::Large => format!("64 KiB echo MB/s each way, {} connections", facts.large_conns),
            Metric::Rss => format!(
                "process RSS per idle WebSocket, KiB ({} open; kernel socket memory not included)",
                group(facts.idle_opened as f64)
            ),
            Metric::Lat50 => format!("p50 round trip µs (added vs direct), {}", facts.latency_load),
            Metric::Lat99 => format!("p99 round trip µs (added vs direct), {}", facts.latency_load),
            Metric::Lat999 => format!("p99.9 round trip µs (added vs direct), {}", facts.latency_load),
            Metric::Cpu100 => {
                format!("proxy CPU s per million 64 B msgs, {} connections", group(facts.small_conns as f64))
            }
            Metric::CpuUpgrade => {
                format!("proxy CPU µs per upgrade (CPU s per million), {} concurrent handshakers", facts.handshakers)
            }
            Metric::Cpu1000 => {
                format!("proxy CPU s per million 64 B msgs, {} connections", group(facts.many_conns as f64))
            }
        }
    }

    fn is_latency(self) -> bool {
        matches!(self, Metric::Lat50 | Metric::Lat99 | Metric::Lat999)
    }

    fn decimals(self) -> usize {
        match self {
            Metric::Rss => 1,
            Metric::Cpu100 | Metric::Cpu1000 => 2,
            _ => 0,
        }
    }
}

/// Workload parameters the labels mention.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub handshakers: usize,
    pub small_conns: usize,
    pub many_conns: usize,
    pub large_conns: usize,
    pub idle_opened: usize,
    pub latency_load: String,
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Results {
    pub targets: Vec<Kind>,
    pub facts: Facts,
    rounds: BTreeMap<Metric, BTreeMap<Kind, Vec<f64>>>,
    pub errors: BTreeMap<Kind, u64>,
    /// Of the open WebSockets, how many a reload (nginx, HAProxy) or the route changes (wsgate) dropped.
    pub dropped: BTreeMap<Kind, (u64, usize)>,
    /// wsgate: milliseconds from a manifest change to the new route answering (p50, p99, changes).
    pub propagation: Option<(f64, f64, usize)>,
}

impl Results {
    pub fn new(targets: Vec<Kind>, facts: Facts) -> Results {
        Results { targets, facts, ..Results::default() }
    }

    pub fn add(&mut self, metric: Metric, kind: Kind, value: f64) {
        self.rounds.entry(metric).or_default().entry(kind).or_default().push(value);
    }

    pub fn add_errors(&mut self, kind: Kind, errors: u64) {
        *self.errors.entry(kind).or_default() += errors;
    }

    pub fn median(&self, metric: Metric, kind: Kind) -> Option<f64> {
        median(self.rounds.get(&metric)?.get(&kind)?)
    }

    /// The median over rounds of `f(a, b)`, with a and b measured in the same round: rounds are minutes
    /// apart and a shared machine drifts, so ratios are taken within a round before the median.
    fn paired(&self, metric: Metric, a: Kind, b: Kind, f: impl Fn(f64, f64) -> Option<f64>) -> Option<f64> {
        let by_kind = self.rounds.get(&metric)?;
        let (xs, ys) = (by_kind.get(&a)?, by_kind.get(&b)?);
        let values: Vec<f64> = xs.iter().zip(ys).filter_map(|(x, y)| f(*x, *y)).collect();
        median(&values)
    }

    /// Median of the per-round ratios `kind ÷ nginx`; for latency, of the latency each adds to direct.
    fn ratio_to_nginx(&self, metric: Metric, kind: Kind) -> Option<f64> {
        if metric.is_latency() {
            let by_kind = self.rounds.get(&metric)?;
            let (ours, nginx, direct) = (by_kind.get(&kind)?, by_kind.get(&Kind::Nginx)?, by_kind.get(&Kind::Direct)?);
            let values: Vec<f64> = ours
                .iter()
                .zip(nginx)
                .zip(direct)
                .filter(|((_, b), d)| **b - **d > 0.0)
                .map(|((a, b), d)| (a - d) / (b - d))
                .collect();
            return median(&values);
        }
        self.paired(metric, kind, Kind::Nginx, |a, b| (b > 0.0).then(|| a / b))
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The table, with a header of facts (date, machine, versions).
    pub fn markdown(&self, header: &[(String, String)]) -> String {
        let mut out = String::new();
        for (key, value) in header {
            let _ = writeln!(out, "- {key}: {value}");
        }
        out.push('\n');
        let has = |k: Kind| self.targets.contains(&k);
        let mut columns: Vec<Kind> = Kind::all().into_iter().filter(|k| has(*k)).collect();
        columns.dedup();
        let ratio_columns: Vec<Kind> = if has(Kind::Nginx) {
            [Kind::Wsgate, Kind::Haproxy].into_iter().filter(|k| has(*k)).collect()
        } else {
            vec![]
        };

        out.push_str("| workload |");
        for kind in &columns {
            let _ = write!(out, " {} |", kind.title());
        }
        for kind in &ratio_columns {
            let _ = write!(out, " {} ÷ nginx |", kind.title());
        }
        // The cost of a wsgate variant beside the plain route.
        let costs: Vec<(Kind, &str)> = [(Kind::WsgatePolicy, "policies"), (Kind::WsgateFrames, "frame layer")]
            .into_iter()
            .filter(|(kind, _)| has(Kind::Wsgate) && has(*kind))
            .collect();
        for (_, name) in &costs {
            let _ = write!(out, " {name} ÷ plain wsgate |");
        }
        out.push_str("\n|---|");
        for _ in 0..columns.len() + ratio_columns.len() + costs.len() {
            out.push_str("---:|");
        }
        out.push('\n');

        for &metric in self.rounds.keys() {
            let _ = write!(out, "| {} |", metric.label(&self.facts));
            let direct = self.median(metric, Kind::Direct);
            for kind in &columns {
                let cell = match self.median(metric, *kind) {
                    None => "—".to_string(),
                    Some(value) if metric.is_latency() && *kind != Kind::Direct => match direct {
                        Some(d) => format!("{} (+{})", group(value), group(value - d)),
                        None => group(value),
                    },
                    Some(value) => fixed(value, metric.decimals()),
                };
                let _ = write!(out, " {cell} |");
            }
            for kind in &ratio_columns {
                let cell = match self.ratio_to_nginx(metric, *kind) {
                    Some(ratio) => format!("{ratio:.2}×"),
                    None => "—".to_string(),
                };
                let _ = write!(out, " {cell} |");
            }
            for (kind, _) in &costs {
                let ratio = self.paired(metric, *kind, Kind::Wsgate, |a, b| (b > 0.0).then(|| a / b));
                let cell = ratio.map_or_else(|| "—".to_string(), |r| format!("{r:.3}×"));
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }

        if !self.dropped.is_empty() {
            let _ = write!(
                out,
                "| of open WebSockets, dropped by a config reload (nginx, HAProxy: checked after the 10 s drain limit) or by route changes (wsgate) |"
            );
            for kind in &columns {
                let cell = match self.dropped.get(kind) {
                    Some((dropped, open)) if *kind == Kind::Wsgate => {
                        let changes = self.propagation.map_or(0, |p| p.2);
                        format!("{dropped} of {} across {changes} changes", group(*open as f64))
                    }
                    Some((dropped, open)) => format!("{dropped} of {} (1 reload)", group(*open as f64)),
                    None => "—".to_string(),
                };
                let _ = write!(out, " {cell} |");
            }
            for _ in 0..ratio_columns.len() + costs.len() {
                out.push_str(" |");
            }
            out.push('\n');
        }
        if let Some((p50, p99, changes)) = self.propagation {
            let _ = write!(out, "| route change → new route answering, ms p50 / p99 ({changes} changes, file mode) |");
            for kind in &columns {
                let cell = if *kind == Kind::Wsgate { format!("{p50:.0} / {p99:.0}") } else { "—".to_string() };
                let _ = write!(out, " {cell} |");
            }
            for _ in 0..ratio_columns.len() + costs.len() {
                out.push_str(" |");
            }
            out.push('\n');
        }
        out.push_str("| errors (failed handshakes, wrong or missing echoes), all workloads |");
        for kind in &columns {
            let _ = write!(out, " {} |", self.errors.get(kind).copied().unwrap_or(0));
        }
        for _ in 0..ratio_columns.len() + costs.len() {
            out.push_str(" |");
        }
        out.push('\n');

        out.push_str(
            "\nValues are medians over the rounds. A ratio column is the median of the per-round ratios (both \
             figures from the same round); for latency it compares the latency each proxy adds to direct. Higher \
             is better for rates, lower for memory, latency and CPU.\n",
        );
        out.push_str("\nPer round (in the order measured):\n\n");
        for (metric, by_kind) in &self.rounds {
            let _ = write!(out, "- {}:", metric.label(&self.facts));
            for (kind, values) in by_kind {
                let list: Vec<String> = values.iter().map(|v| fixed(*v, metric.decimals())).collect();
                let _ = write!(out, " {} [{}];", kind.name(), list.join(", "));
            }
            out.push('\n');
        }
        out
    }
}

pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 })
}

/// A number with thousands separators and no decimals.
pub fn group(value: f64) -> String {
    if !value.is_finite() {
        return "—".to_string();
    }
    let negative = value < 0.0;
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if negative { format!("-{out}") } else { out }
}

fn fixed(value: f64, decimals: usize) -> String {
    if decimals == 0 { group(value) } else { format!("{value:.decimals$}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_grouping() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(group(1234567.4), "1,234,567");
        assert_eq!(group(-1500.0), "-1,500");
        assert_eq!(group(999.0), "999");
    }

    #[test]
    fn table_shows_medians_and_ratios_to_nginx() {
        let mut results = Results { targets: vec![Kind::Direct, Kind::Nginx, Kind::Wsgate], ..Results::default() };
        for (kind, values) in [
            (Kind::Direct, [200.0, 210.0, 190.0]),
            (Kind::Nginx, [100.0, 90.0, 110.0]),
            (Kind::Wsgate, [150.0, 160.0, 140.0]),
        ] {
            for v in values {
                results.add(Metric::Echo100, kind, v);
            }
        }
        let table = results.markdown(&[]);
        let row = table.lines().find(|l| l.starts_with("| 64 B echo")).expect("echo row");
        assert_eq!(row, "| 64 B echo msgs/s, 0 connections | 200 | 100 | 150 | 1.50× |");
    }
}
