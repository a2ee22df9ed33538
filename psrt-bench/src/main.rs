//! `psrt-bench`: runs the loopback workloads against each given `psrtd`
//! binary and prints (and optionally writes) a markdown report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use psrt_bench::floor::latency_floor;
use psrt_bench::machine::Machine;
use psrt_bench::report::{self, Floor, Run};
use psrt_bench::server::Server;
use psrt_bench::tls::{Endpoint, Pki};
use psrt_bench::workloads::{self, Failure, Security, Setup, Target, Workload};
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
    let mut runs = Vec::new();
    for (name, binary) in &args.servers {
        eprintln!("benchmarking {name} ({})", binary.display());
        let mut start = |setup: Setup| -> Result<Target, BenchError> {
            let (server, endpoint) = match setup.security {
                Security::Plain => {
                    let server = Server::start(binary, None, setup.data_queue)?;
                    let endpoint = Endpoint::plain(server.addr());
                    (server, endpoint)
                }
                Security::Tls => {
                    let server = Server::start(binary, Some(&pki), setup.data_queue)?;
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
        let results = workloads::run_selected(&scale, &args.only, &mut start);
        runs.push(Run {
            name: name.clone(),
            results,
        });
    }
    if with_latency {
        floors.push(floor("after the servers"));
    }
    let machine = Machine::describe();
    let document = report::document(
        &machine,
        &scale,
        args.quick,
        &runs,
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
