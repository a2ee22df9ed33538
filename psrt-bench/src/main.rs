//! `psrt-bench`: runs the loopback workloads against each given `psrtd`
//! binary and prints (and optionally writes) a markdown report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use psrt_bench::floor::latency_floor;
use psrt_bench::machine::Machine;
use psrt_bench::report::{self, Floor, Run};
use psrt_bench::rounds;
use psrt_bench::server::Server;
use psrt_bench::tls::{ClientTls, Endpoint, Pki};
use psrt_bench::workloads::{self, Failure, Results, Security, Setup, Target, Workload};
use psrt_bench::{BenchError, Scale};

/// Benchmark PSRT servers on loopback: fan-in and fan-out (plain and
/// TLS), latency, 1 MiB payloads, many subscriptions, idle-client memory.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A server to measure, as NAME=PATH_TO_PSRTD (repeatable). The binary
    /// must accept `-C CONFIG.yml` in the PSRT config format.
    #[arg(long = "server", value_parser = parse_server, required = true)]
    servers: Vec<(String, PathBuf)>,
    /// Name of the server the targets are checked against.
    #[arg(long)]
    baseline: Option<String>,
    /// Small, short workloads (a smoke run, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Also write the report (with machine and date) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only these workloads (comma-separated; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
    /// Measure every server this many times, rotating their order each
    /// round, and report medians and per-round ratios to the baseline.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

/// Every selected workload against `binary`, each on a fresh server.
fn run_server(
    binary: &Path,
    pki: &Pki,
    client_tls: &ClientTls,
    scale: &Scale,
    only: &[Workload],
) -> Results {
    let mut start = |setup: Setup| -> Result<Target, BenchError> {
        let (server, endpoint) = match setup.security {
            Security::Plain => {
                let server = Server::start(binary, None, setup.data_queue)?;
                let endpoint = Endpoint::plain(server.addr());
                (server, endpoint)
            }
            Security::Tls => {
                let server = Server::start(binary, Some(pki), setup.data_queue)?;
                let endpoint = Endpoint::tls(server.addr(), client_tls.clone());
                (server, endpoint)
            }
        };
        Ok(Target {
            endpoint,
            pid: Some(server.pid()),
            process: Some(server),
        })
    };
    workloads::run_selected(scale, only, &mut start)
}

fn parse_server(spec: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = spec
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PATH, got {spec:?}"))?;
    if name.is_empty() || path.is_empty() {
        return Err(format!("expected NAME=PATH, got {spec:?}"));
    }
    Ok((name.to_owned(), PathBuf::from(path)))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let scale = if args.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    let with_latency = args.only.is_empty() || args.only.contains(&Workload::Latency);
    let floor = |when: &str| Floor {
        when: when.to_owned(),
        latency: latency_floor(&scale).map_err(Failure::from),
    };
    let pki = match Pki::generate() {
        Ok(pki) => pki,
        Err(err) => {
            eprintln!("cannot make the TLS certificates: {err}");
            return ExitCode::FAILURE;
        }
    };
    let client_tls = match pki.client() {
        Ok(client_tls) => client_tls,
        Err(err) => {
            eprintln!("cannot make the TLS client settings: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut floors = Vec::new();
    if with_latency {
        floors.push(floor("before the servers"));
    }
    let mut rounds = Vec::new();
    for round in 0..args.rounds as usize {
        let mut runs: Vec<Option<Run>> = vec![None; args.servers.len()];
        for at in rounds::order(args.servers.len(), round) {
            let (name, binary) = &args.servers[at];
            eprintln!(
                "round {} of {}: benchmarking {name} ({})",
                round + 1,
                args.rounds,
                binary.display()
            );
            let results = run_server(binary, &pki, &client_tls, &scale, &args.only);
            runs[at] = Some(Run {
                name: name.clone(),
                results,
            });
        }
        rounds.push(runs.into_iter().flatten().collect::<Vec<_>>());
    }
    if with_latency {
        floors.push(floor("after the servers"));
    }
    let machine = Machine::describe();
    let document = report::document(
        &machine,
        &scale,
        args.quick,
        &rounds,
        &floors,
        args.baseline.as_deref(),
    );
    println!("{document}");
    if let Some(path) = &args.out
        && let Err(err) = std::fs::write(path, &document)
    {
        eprintln!("cannot write {}: {err}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
