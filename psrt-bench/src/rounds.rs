//! Several rounds of the same servers, summarised by medians.
//!
//! On a shared 2-core machine one run's ratios move by 5–15 % between
//! servers measured seconds apart, and a server measured always first (or
//! always right after the same neighbour) carries that position's bias.
//! `psrt-bench --rounds N` therefore measures every server N times,
//! rotating the order each round ([`order`]), and [`summary`] reports for
//! each headline measure the median over the rounds and, against the
//! baseline, the median of the per-round ratios (each ratio taken within
//! one round, servers seconds apart) with their range.

use std::fmt::Write as _;

use crate::report::{Run, idle_kib, millis, p99, rate, thousands};
use crate::workloads::{Outcome, Results, Throughput};

/// The order in which `servers` servers are measured in round `round`
/// (from 0): the given order rotated by `round`, so each server takes
/// each position once every `servers` rounds.
pub fn order(servers: usize, round: usize) -> Vec<usize> {
    (0..servers).map(|i| (i + round) % servers).collect()
}

/// A measure summarised over rounds: its label, its value in one
/// server's results (if that workload ran and succeeded), and the
/// decimals shown (0: grouped thousands).
type Measure = (&'static str, fn(&Results) -> Option<f64>, usize);

const MEASURES: &[Measure] = &[
    ("1. fan-in (msg/s)", |r| rate(&r.fan_in), 0),
    ("1. fan-in over TLS (msg/s)", |r| rate(&r.fan_in_tls), 0),
    ("2. fan-out (deliveries/s)", |r| rate(&r.fan_out), 0),
    (
        "2. fan-out over TLS (deliveries/s)",
        |r| rate(&r.fan_out_tls),
        0,
    ),
    ("3. latency p99 (µs)", p99, 0),
    ("4. 1 MiB, 1 -> 1 (MB/s)", |r| megabytes(&r.large), 0),
    ("4. 64 KiB, 1 -> 1 (MB/s)", |r| megabytes(&r.medium), 0),
    ("4. 1 MiB, 2 -> 2 (MB/s)", |r| megabytes(&r.large_duo), 0),
    (
        "5. subscribe (ms)",
        |r| Some(millis(r.subscriptions.as_ref().ok()?.subscribe_time)),
        0,
    ),
    (
        "5. then publish (msg/s)",
        |r| Some(r.subscriptions.as_ref().ok()?.publish.rate()),
        0,
    ),
    ("6. idle client (KiB)", idle_kib, 1),
];

fn megabytes(outcome: &Outcome<Throughput>) -> Option<f64> {
    outcome.as_ref().ok().map(Throughput::megabytes)
}

/// The median of `values` (the mean of the middle two for an even
/// count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The summary table over `rounds` (each round's runs in the same server
/// order): one row per measure that has a value for some server, one
/// column per server. A cell is the median over the rounds; for a server
/// other than `baseline`, followed by the median of its per-round ratios
/// to the baseline and their range, as `2,692 (1.07x; 0.96–1.31x)`.
/// Rounds where a server's workload failed are left out of its cell.
pub fn summary(rounds: &[Vec<Run>], baseline: Option<&str>) -> String {
    let Some(first) = rounds.first() else {
        return String::new();
    };
    let names: Vec<&str> = first.iter().map(|run| run.name.as_str()).collect();
    let base_at = baseline.and_then(|b| names.iter().position(|n| *n == b));
    let mut out = String::from("| measure |");
    for name in &names {
        let _ = write!(out, " {name} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(names.len()));
    out.push('\n');
    for &(label, measure, decimals) in MEASURES {
        let value = |round: &Vec<Run>, at: usize| round.get(at).and_then(|r| measure(&r.results));
        let cells: Vec<String> = (0..names.len())
            .map(|at| {
                let values: Vec<f64> = rounds.iter().filter_map(|round| value(round, at)).collect();
                let Some(mid) = median(&values) else {
                    return "–".to_owned();
                };
                let mut text = show(mid, decimals);
                let ratios: Vec<f64> = base_at
                    .filter(|b| *b != at)
                    .map(|b| {
                        rounds
                            .iter()
                            .filter_map(|round| {
                                Some(value(round, at)? / value(round, b).filter(|v| *v > 0.0)?)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(ratio) = median(&ratios) {
                    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                    let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let _ = write!(text, " ({ratio:.2}x; {low:.2}–{high:.2}x)");
                }
                text
            })
            .collect();
        if cells.iter().all(|c| c == "–") {
            continue;
        }
        let _ = write!(out, "| {label} |");
        for cell in cells {
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

fn show(value: f64, decimals: usize) -> String {
    if decimals == 0 {
        thousands(value)
    } else {
        format!("{value:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::workloads::{Failure, IdleMemory};

    /// Results where only the 1 MiB 2 -> 2 workload and the idle one ran,
    /// at `megabytes` MB/s (`None`: the workload failed).
    fn results(megabytes: Option<u64>, idle_kib: f64) -> Results {
        let duo = megabytes.map_or(Err(Failure::Error("reset".into())), |mb| {
            Ok(Throughput {
                published: mb,
                expected: mb,
                delivered: mb,
                misrouted: 0,
                elapsed: Duration::from_secs(1),
                payload: 1_000_000,
                cpu: None,
            })
        });
        Results {
            fan_in: Err(Failure::NotRun),
            fan_in_tls: Err(Failure::NotRun),
            fan_out: Err(Failure::NotRun),
            fan_out_tls: Err(Failure::NotRun),
            latency: Err(Failure::NotRun),
            large: Err(Failure::NotRun),
            medium: Err(Failure::NotRun),
            large_duo: duo,
            subscriptions: Err(Failure::NotRun),
            idle: Ok(IdleMemory {
                clients: 10,
                bytes_per_client: Some(idle_kib * 1024.0),
            }),
        }
    }

    fn round(ours: Option<u64>, base: u64) -> Vec<Run> {
        vec![
            Run {
                name: "ours".into(),
                results: results(ours, 5.0),
            },
            Run {
                name: "original".into(),
                results: results(Some(base), 25.0),
            },
        ]
    }

    #[test]
    fn every_server_takes_every_position_once_per_cycle() {
        assert_eq!(order(3, 0), [0, 1, 2]);
        assert_eq!(order(3, 1), [1, 2, 0]);
        assert_eq!(order(3, 2), [2, 0, 1]);
        assert_eq!(order(3, 3), order(3, 0));
        for position in 0..3 {
            let mut first: Vec<usize> = (0..3).map(|r| order(3, r)[position]).collect();
            first.sort_unstable();
            assert_eq!(first, [0, 1, 2]);
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn ratios_are_taken_within_each_round() {
        // Our median (1,200) over the baseline's (1,000) would be 1.20x;
        // the per-round ratios are 0.90, 1.50 and 1.00.
        let rounds = [
            round(Some(900), 1000),
            round(Some(1200), 800),
            round(Some(1500), 1500),
        ];
        let table = summary(&rounds, Some("original"));
        assert!(
            table.starts_with("| measure | ours | original |"),
            "{table}"
        );
        assert!(
            table.contains("| 4. 1 MiB, 2 -> 2 (MB/s) | 1,200 (1.00x; 0.90–1.50x) | 1,000 |"),
            "{table}"
        );
        assert!(
            table.contains("| 6. idle client (KiB) | 5.0 (0.20x; 0.20–0.20x) | 25.0 |"),
            "{table}"
        );
        assert!(
            !table.contains("fan-in"),
            "measures with no value are left out"
        );
    }

    #[test]
    fn failed_rounds_are_left_out_and_no_baseline_means_no_ratio() {
        let rounds = [round(None, 1000), round(Some(700), 1000), round(None, 1000)];
        let table = summary(&rounds, None);
        assert!(
            table.contains("| 4. 1 MiB, 2 -> 2 (MB/s) | 700 | 1,000 |"),
            "{table}"
        );
        let all_failed = [round(None, 1000)];
        assert!(
            summary(&all_failed, Some("original"))
                .contains("| 4. 1 MiB, 2 -> 2 (MB/s) | – | 1,000 |")
        );
        assert!(summary(&[], Some("original")).is_empty());
    }
}
