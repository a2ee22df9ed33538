//! The results as markdown: a table (workload x server), the targets
//! against a baseline server, and the document `--out` writes.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Scale;
use crate::machine::Machine;
use crate::workloads::{Failure, Latency, Outcome, Results, Throughput};

/// One server's results under its display name.
#[derive(Debug, Clone)]
pub struct Run {
    /// Display name (`tokio`, `original`, ...).
    pub name: String,
    /// Its results.
    pub results: Results,
}

/// A table row: its label and how to show one server's result.
type Row = (String, fn(&Results) -> String);

/// The results table: one row per measure, one column per server. Cells
/// show `error: ...` for a failed workload, `n/a (no TLS: ...)` for a TLS
/// workload the server cannot serve, and the loss next to a count when
/// deliveries went missing.
pub fn table(runs: &[Run], scale: &Scale) -> String {
    let mut out = String::from("| workload |");
    for run in runs {
        let _ = write!(out, " {} |", run.name);
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(runs.len()));
    out.push('\n');
    for (label, cell) in rows(scale) {
        let _ = write!(out, "| {label} |");
        for run in runs {
            let _ = write!(out, " {} |", cell(&run.results));
        }
        out.push('\n');
    }
    out
}

fn rows(scale: &Scale) -> Vec<Row> {
    let subs = scale.subscription_clients * scale.subscriptions_per_client;
    vec![
        (
            format!(
                "1. fan-in {} pub -> 1 sub, 32 B (msg/s)",
                scale.fan_in_publishers
            ),
            |r| rate_cell(&r.fan_in),
        ),
        ("1. fan-in over TLS, same shape (msg/s)".into(), |r| {
            rate_cell(&r.fan_in_tls)
        }),
        (
            "1. CPU cores busy, server (bench): plain / TLS".into(),
            |r| cpu_cell(&r.fan_in, &r.fan_in_tls),
        ),
        (
            format!(
                "2. fan-out 1 pub -> {} subs, 32 B (deliveries/s)",
                scale.fan_out_subscribers
            ),
            |r| rate_cell(&r.fan_out),
        ),
        (
            "2. fan-out over TLS, same shape (deliveries/s)".into(),
            |r| rate_cell(&r.fan_out_tls),
        ),
        (
            "2. CPU cores busy, server (bench): plain / TLS".into(),
            |r| cpu_cell(&r.fan_out, &r.fan_out_tls),
        ),
        (
            format!("3. latency p50 at {} msg/s (µs)", scale.latency_rate),
            |r| latency_cell(r, |l| l.p50),
        ),
        ("3. latency p99 (µs)".into(), |r| {
            latency_cell(r, |l| l.p99)
        }),
        ("3. latency p99.9 (µs)".into(), |r| {
            latency_cell(r, |l| l.p999)
        }),
        ("3. latency max (µs)".into(), |r| {
            latency_cell(r, |l| l.max)
        }),
        ("4. 1 MiB payloads, 1 pub -> 1 sub (msg/s)".into(), |r| {
            rate_cell(&r.large)
        }),
        ("4. 1 MiB, 1 -> 1 (MB/s, server CPU cores)".into(), |r| {
            megabytes_cell(&r.large)
        }),
        ("4. 64 KiB, 1 -> 1 (MB/s, server CPU cores)".into(), |r| {
            megabytes_cell(&r.medium)
        }),
        (
            "4. 1 MiB, 2 pub -> 2 subs (MB/s, server CPU cores)".into(),
            |r| megabytes_cell(&r.large_duo),
        ),
        (
            format!(
                "5. subscribe {subs} filters over {} clients (ms)",
                scale.subscription_clients
            ),
            |r| {
                cell(&r.subscriptions, |s| {
                    format!("{:.0}", millis(s.subscribe_time))
                })
            },
        ),
        ("5. then publish, 1 match each (msg/s)".into(), |r| {
            cell(&r.subscriptions, |s| throughput_text(&s.publish))
        }),
        (
            format!(
                "6. {} idle clients: memory per client (KiB)",
                scale.idle_clients
            ),
            |r| {
                cell(&r.idle, |m| {
                    m.bytes_per_client
                        .map_or_else(|| "n/a".to_owned(), |b| format!("{:.1}", b / 1024.0))
                })
            },
        ),
    ]
}

fn cell<T>(outcome: &Outcome<T>, show: impl FnOnce(&T) -> String) -> String {
    match outcome {
        Ok(value) => show(value),
        Err(Failure::NotRun) => "–".to_owned(),
        Err(Failure::NoTls(reason)) => format!("n/a (no TLS: {})", one_line(reason)),
        Err(Failure::Error(err)) => format!("error: {}", one_line(err)),
    }
}

/// An error message fit for a table cell: one line, no `|`, at most
/// [`ERROR_CHARS`] characters.
fn one_line(err: &str) -> String {
    let flat: String = err
        .chars()
        .map(|c| match c {
            '|' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    let mut short: String = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = short.char_indices().nth(ERROR_CHARS) {
        short.truncate(cut);
        short.push('…');
    }
    short
}

/// Longest error shown in a cell.
const ERROR_CHARS: usize = 160;

fn rate_cell(outcome: &Outcome<Throughput>) -> String {
    cell(outcome, throughput_text)
}

/// CPU use in a plain and a TLS flow, server (bench), as
/// `1.85 (0.12) / 1.97 (0.20)`.
fn cpu_cell(plain: &Outcome<Throughput>, tls: &Outcome<Throughput>) -> String {
    let show = |outcome: &Outcome<Throughput>| match outcome {
        Err(Failure::NotRun) => "–".to_owned(),
        Ok(Throughput { cpu: Some(cpu), .. }) => {
            format!("{:.2} ({:.2})", cpu.server, cpu.bench)
        }
        _ => "n/a".to_owned(),
    };
    format!("{} / {}", show(plain), show(tls))
}

/// MB/s delivered and the server's CPU cores busy, as `2,105 (0.92)`,
/// with any loss.
fn megabytes_cell(outcome: &Outcome<Throughput>) -> String {
    cell(outcome, |t| {
        let mut text = thousands(t.megabytes());
        if let Some(cpu) = t.cpu {
            let _ = write!(text, " ({:.2})", cpu.server);
        }
        if t.lost() > 0 {
            let _ = write!(text, " (lost {} of {})", t.lost(), t.expected);
        }
        text
    })
}

fn throughput_text(t: &Throughput) -> String {
    let mut text = thousands(t.rate());
    if t.lost() > 0 {
        let _ = write!(text, " (lost {} of {})", t.lost(), t.expected);
    }
    if t.misrouted > 0 {
        let _ = write!(text, " ({} misrouted)", t.misrouted);
    }
    text
}

fn latency_cell(r: &Results, pick: fn(&Latency) -> Duration) -> String {
    cell(&r.latency, |l| {
        let mut text = format!("{:.0}", micros(pick(l)));
        if l.delivered < l.published {
            let _ = write!(
                text,
                " (lost {} of {})",
                l.published - l.delivered,
                l.published
            );
        }
        text
    })
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `1234567.8` as `1,234,568`.
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The targets for each of our servers against `baseline`: at
/// least 3x its fan-in and fan-out, at most a third of its p99, at least
/// its 1 MiB throughput, and under 8 KiB per idle client; the TLS fan-in
/// and fan-out ratios next to their plain ones, without a target. `None`
/// when the baseline is not among the runs.
pub fn targets(runs: &[Run], baseline: &str) -> Option<String> {
    let base = &runs.iter().find(|run| run.name == baseline)?.results;
    let mut out = format!(
        "| server | fan-in vs {baseline} (>= 3x) | fan-in TLS | fan-out (>= 3x) | fan-out TLS | p99 (<= 0.33x) | 1 MiB (>= 1x) | idle KiB/client (< 8) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for run in runs.iter().filter(|run| run.name != baseline) {
        let r = &run.results;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            run.name,
            ratio(rate(&r.fan_in), rate(&base.fan_in), |x| x >= 3.0),
            bare_ratio(rate(&r.fan_in_tls), rate(&base.fan_in_tls)),
            ratio(rate(&r.fan_out), rate(&base.fan_out), |x| x >= 3.0),
            bare_ratio(rate(&r.fan_out_tls), rate(&base.fan_out_tls)),
            ratio(p99(r), p99(base), |x| x <= 1.0 / 3.0),
            ratio(rate(&r.large), rate(&base.large), |x| x >= 1.0),
            idle_kib(r).map_or_else(
                || "n/a".to_owned(),
                |kib| mark(format!("{kib:.1}"), kib < 8.0)
            ),
        );
    }
    Some(out)
}

pub(crate) fn rate(outcome: &Outcome<Throughput>) -> Option<f64> {
    outcome.as_ref().ok().map(Throughput::rate)
}

pub(crate) fn p99(r: &Results) -> Option<f64> {
    r.latency.as_ref().ok().map(|l| micros(l.p99))
}

pub(crate) fn idle_kib(r: &Results) -> Option<f64> {
    r.idle.as_ref().ok()?.bytes_per_client.map(|b| b / 1024.0)
}

fn ratio(ours: Option<f64>, base: Option<f64>, met: fn(f64) -> bool) -> String {
    match ours.zip(base.filter(|b| *b > 0.0)) {
        Some((ours, base)) => mark(format!("{:.2}x", ours / base), met(ours / base)),
        None => "n/a".to_owned(),
    }
}

/// A ratio with no target to meet.
fn bare_ratio(ours: Option<f64>, base: Option<f64>) -> String {
    match ours.zip(base.filter(|b| *b > 0.0)) {
        Some((ours, base)) => format!("{:.2}x", ours / base),
        None => "n/a".to_owned(),
    }
}

fn mark(text: String, met: bool) -> String {
    format!("{text} {}", if met { "✓" } else { "✗" })
}

/// The latency floor (see [`crate::floor`]) measured at one moment of
/// the run.
#[derive(Debug, Clone)]
pub struct Floor {
    /// When it was taken (`before the servers`, ...).
    pub when: String,
    /// What it measured, or why it failed.
    pub latency: Outcome<Latency>,
}

/// The floor section: one row per measurement, and what it means for the
/// p99 target when the baseline's p99 is known.
pub fn floor_section(floors: &[Floor], runs: &[Run], baseline: Option<&str>) -> String {
    let mut out = String::from(
        "| latency floor | p50 (µs) | p99 (µs) | p99.9 (µs) | max (µs) |\n|---|---:|---:|---:|---:|\n",
    );
    for floor in floors {
        let show = |pick: fn(&Latency) -> Duration| {
            cell(&floor.latency, |l| format!("{:.0}", micros(pick(l))))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            floor.when,
            show(|l| l.p50),
            show(|l| l.p99),
            show(|l| l.p999),
            show(|l| l.max)
        );
    }
    let base_p99 = baseline
        .and_then(|b| runs.iter().find(|run| run.name == b))
        .and_then(|run| p99(&run.results));
    let lowest_floor = floors
        .iter()
        .filter_map(|f| f.latency.as_ref().ok().map(|l| micros(l.p99)))
        .reduce(f64::min);
    if let (Some(base), Some(floor)) = (base_p99, lowest_floor) {
        let _ = writeln!(
            out,
            "\nThe p99 target, a third of the baseline's {base:.0} µs, is {:.0} µs; the lowest floor p99 above is {floor:.0} µs.",
            base / 3.0
        );
    }
    out
}

/// The whole report: machine, date, method, results, latency floor and
/// targets. `rounds` holds each round's runs in the same server order;
/// with one round the targets follow its table, with several the medians
/// over the rounds ([`crate::rounds::summary`]) come first and every
/// round's table after them.
pub fn document(
    machine: &Machine,
    scale: &Scale,
    quick: bool,
    rounds: &[Vec<Run>],
    floors: &[Floor],
    baseline: Option<&str>,
) -> String {
    let runs = rounds.first().map_or(&[][..], Vec::as_slice);
    let mut out = String::from("# Benchmarks: runtimes compared\n\n");
    let _ = writeln!(
        out,
        "Measured by `psrt-bench`{} (`scripts/bench-runtimes.sh`).\n\n- Date: {}\n- Machine: {} CPUs, {}, {} RAM, Linux {}\n",
        if quick { " --quick" } else { "" },
        machine.date,
        machine.cpus,
        machine.cpu_model,
        machine.memory,
        machine.kernel,
    );
    out.push_str(METHOD);
    let _ = writeln!(
        out,
        "\nWindows: {:?} per throughput workload, {:?} of latency samples.\n",
        scale.window, scale.latency_window
    );
    if rounds.len() > 1 {
        let _ = writeln!(
            out,
            "## Medians over {} rounds\n\n{ROUNDS_METHOD}",
            rounds.len()
        );
        out.push_str(&crate::rounds::summary(rounds, baseline));
        for (i, runs) in rounds.iter().enumerate() {
            let _ = writeln!(out, "\n## Round {}\n", i + 1);
            out.push_str(&table(runs, scale));
        }
    } else {
        out.push_str("## Results\n\n");
        out.push_str(&table(runs, scale));
    }
    if !floors.is_empty() {
        out.push_str("\n## Latency floor of this machine\n\n");
        out.push_str(FLOOR_METHOD);
        if rounds.len() > 1 {
            out.push_str("The p99 target below is the first round's baseline p99.\n\n");
        }
        out.push_str(&floor_section(floors, runs, baseline));
    }
    if let ([_], Some(targets)) = (rounds, baseline.and_then(|b| targets(runs, b))) {
        out.push_str("\n## Targets against the original server, same run\n\n");
        out.push_str(&targets);
    }
    out
}

const ROUNDS_METHOD: &str = "\
Every server was measured once per round, the order rotated each round \
(each server first once every as many rounds as there are servers). A \
cell is the median over the rounds; next to it, for each server but the \
baseline, the median of its per-round ratios to the baseline (each within \
one round) and their range.
";

const METHOD: &str = "\
Every server runs as its own process on a free loopback port with the same \
config (`workers: 2`, anonymous access, `data_queue: 1024`, the default of both, except \
`data_queue: 8192` for fan-in, fan-out and the subscriptions workload, so their publishers can run far \
enough ahead that the server, not the benchmark's pipeline, is the bottleneck) and is restarted \
for each workload. The benchmark client shares the machine's cores with the \
server: blocking std sockets on one thread per client, publishes pipelined \
(at most 1,024 unanswered; 16 to 32 per publisher for 1 MiB and 64 KiB \
payloads, so the server always has a frame to read) and paused while the \
slowest subscriber lags by more than a bounded backlog (6,144 small messages, below `data_queue`), \
so a server is measured at the rate it delivers, not the rate it accepts. \
Every delivery is counted: a cell shows `lost N of M` when messages went \
missing. Rates are deliveries divided by the time from the first publish \
to the last delivery. Latency: one publisher at a fixed rate, each publish \
waiting for its reply, timed from just before the write to the subscriber \
having read the whole message. CPU cores busy: a process's CPU time (all \
threads) over the flow's wall time, for the server and, in brackets, for \
the benchmark's clients; it shows whether a server spreads its work, \
crypto included, over its workers, and how much of the machine the \
clients took. Memory: growth of the server's VmRSS after \
connecting the idle clients (control and data socket each), divided by \
their number. The TLS rows repeat fan-in and fan-out with every socket \
(control and data) in TLS: for them only, the server's config adds \
`tls_cert`/`tls_key`, a certificate made for the run (ECDSA P-256, issued \
by a CA the clients trust); the clients use rustls (ring) and pay for \
their side of the crypto on the same cores. A server that cannot serve \
TLS shows `n/a`.
";

const FLOOR_METHOD: &str = "\
The latency workload's own threads (a publisher waiting for each reply, a \
subscriber blocked in `read`) over loopback TCP through a relay thread that \
only reads each message, writes a 5-byte reply and writes the message on: \
no framing, no routing, no runtime. No broker can go below it on this \
machine; it is measured before the first server and after the last, to \
show how quiet the machine stayed.

";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::{CpuUse, IdleMemory, Latency, Subscriptions};

    fn throughput(rate: u64) -> Throughput {
        Throughput {
            published: rate,
            expected: rate,
            delivered: rate,
            misrouted: 0,
            elapsed: Duration::from_secs(1),
            payload: 32,
            cpu: Some(CpuUse {
                server: 1.5,
                bench: 0.25,
            }),
        }
    }

    fn results(rate: u64, p99_us: u64, idle: f64) -> Results {
        Results {
            fan_in: Ok(throughput(rate)),
            fan_in_tls: Ok(throughput(rate / 2)),
            fan_out: Ok(throughput(rate)),
            fan_out_tls: Err(Failure::NoTls("exited".into())),
            latency: Ok(Latency {
                published: 10,
                delivered: 10,
                p50: Duration::from_micros(p99_us / 2),
                p99: Duration::from_micros(p99_us),
                p999: Duration::from_micros(p99_us),
                max: Duration::from_micros(p99_us),
            }),
            large: Err(Failure::Error("boom | bang".into())),
            medium: Ok(throughput(rate)),
            large_duo: Err(Failure::NotRun),
            subscriptions: Ok(Subscriptions {
                count: 10,
                subscribe_time: Duration::from_millis(5),
                publish: throughput(rate),
            }),
            idle: Ok(IdleMemory {
                clients: 10,
                bytes_per_client: Some(idle),
            }),
        }
    }

    #[test]
    fn megabytes_cells_show_the_server_cpu_and_loss() {
        let mut t = throughput(1000);
        t.payload = 1 << 20;
        assert_eq!(megabytes_cell(&Ok(t)), "1,049 (1.50)");
        t.delivered = 900;
        t.cpu = None;
        assert_eq!(megabytes_cell(&Ok(t)), "944 (lost 100 of 1000)");
        assert_eq!(megabytes_cell(&Err(Failure::NotRun)), "–");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
    }

    #[test]
    fn errors_fit_one_cell() {
        assert_eq!(one_line("a | b\nc"), "a / b c");
        assert_eq!(one_line(&"x".repeat(500)).chars().count(), ERROR_CHARS + 1);
    }

    #[test]
    fn table_has_a_column_per_server_and_escapes_errors() {
        let runs = [
            Run {
                name: "tokio".into(),
                results: results(400_000, 27, 4096.0),
            },
            Run {
                name: "original".into(),
                results: results(100_000, 90, 26_000.0),
            },
        ];
        let table = table(&runs, &Scale::full());
        assert!(table.starts_with("| workload | tokio | original |"));
        assert!(table.contains("| 400,000 | 100,000 |"));
        assert!(table.contains("error: boom / bang"));
        assert!(table.contains("| 1. fan-in over TLS, same shape (msg/s) | 200,000 | 50,000 |"));
        assert!(table.contains("n/a (no TLS: exited)"));
        assert!(table.contains(
            "| 1. CPU cores busy, server (bench): plain / TLS | 1.50 (0.25) / 1.50 (0.25) |"
        ));
        assert!(
            table
                .contains("| 2. CPU cores busy, server (bench): plain / TLS | 1.50 (0.25) / n/a |")
        );
        assert!(table.contains("| 4. 1 MiB, 2 pub -> 2 subs (MB/s, server CPU cores) | – | – |"));
        assert_eq!(table.lines().count(), 2 + 17);
    }

    #[test]
    fn targets_compare_with_the_baseline() {
        let runs = [
            Run {
                name: "tokio".into(),
                results: results(400_000, 27, 4096.0),
            },
            Run {
                name: "smol".into(),
                results: results(200_000, 60, 9000.0),
            },
            Run {
                name: "original".into(),
                results: results(100_000, 90, 26_000.0),
            },
        ];
        let found = targets(&runs, "original").expect("baseline present");
        let tokio = found
            .lines()
            .find(|l| l.starts_with("| tokio"))
            .expect("tokio row");
        assert_eq!(
            tokio,
            "| tokio | 4.00x ✓ | 4.00x | 4.00x ✓ | n/a | 0.30x ✓ | n/a | 4.0 ✓ |"
        );
        let smol = found
            .lines()
            .find(|l| l.starts_with("| smol"))
            .expect("smol row");
        assert!(smol.contains("2.00x ✗") && smol.contains("8.8 ✗"));
        assert!(targets(&runs, "absent").is_none());
    }

    #[test]
    fn floor_section_rows_and_target_in_proportion() {
        let latency = |p99_us: u64| Latency {
            published: 10,
            delivered: 10,
            p50: Duration::from_micros(30),
            p99: Duration::from_micros(p99_us),
            p999: Duration::from_micros(p99_us + 10),
            max: Duration::from_micros(p99_us + 20),
        };
        let floors = [
            Floor {
                when: "before".into(),
                latency: Ok(latency(60)),
            },
            Floor {
                when: "after".into(),
                latency: Ok(latency(55)),
            },
            Floor {
                when: "broken".into(),
                latency: Err(Failure::Error("refused".into())),
            },
        ];
        let runs = [Run {
            name: "original".into(),
            results: results(100_000, 90, 26_000.0),
        }];
        let section = floor_section(&floors, &runs, Some("original"));
        assert!(section.contains("| before | 30 | 60 | 70 | 80 |"));
        assert!(section.contains("| broken | error: refused |"));
        assert!(section.contains("is 30 µs; the lowest floor p99 above is 55 µs"));
        assert!(!floor_section(&floors, &runs, None).contains("target"));
    }

    #[test]
    fn several_rounds_show_medians_then_each_round_and_no_single_run_targets() {
        let machine = Machine {
            cpus: 2,
            cpu_model: "test cpu".into(),
            memory: "1 GiB".into(),
            kernel: "6".into(),
            date: "2026-12-07T00:00:00Z".into(),
        };
        let round = |ours: u64| {
            vec![
                Run {
                    name: "tokio".into(),
                    results: results(ours, 27, 4096.0),
                },
                Run {
                    name: "original".into(),
                    results: results(100_000, 90, 26_000.0),
                },
            ]
        };
        let scale = Scale::full();
        let one = document(
            &machine,
            &scale,
            false,
            &[round(400_000)],
            &[],
            Some("original"),
        );
        assert!(one.contains("## Results") && one.contains("## Targets against"));
        assert!(!one.contains("Medians over"));
        let three = [round(400_000), round(300_000), round(500_000)];
        let several = document(&machine, &scale, false, &three, &[], Some("original"));
        let medians = several.find("## Medians over 3 rounds").expect("medians");
        let last = several.find("## Round 3").expect("every round's table");
        assert!(medians < last && several.contains("## Round 1"));
        assert!(several.contains("| 1. fan-in (msg/s) | 400,000 (4.00x; 3.00–5.00x) | 100,000 |"));
        assert!(!several.contains("## Targets against"));
    }

    #[test]
    fn workloads_not_run_show_a_dash() {
        let mut r = results(1, 1, 1.0);
        r.large = Err(Failure::NotRun);
        assert_eq!(rate_cell(&r.large), "–");
    }
}
