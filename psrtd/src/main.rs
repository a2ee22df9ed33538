//! psrtd: the PSRT broker daemon.
//!
//! Order of start-up: parse the command line, start logging, load and
//! validate the config and every file it names ([`psrtd::setup`]), fork to
//! the background when asked (before any runtime thread exists; the
//! launching process exits once the daemon has bound every listener, with
//! its error if it could not: [`psrtd::startup`]), lock and write the pid
//! file ([`psrtd::pid_file`]), bind, tell the launcher and systemd that
//! the daemon is ready, then serve until SIGTERM/SIGINT. The pid file is
//! removed on exit.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use psrtd::build_info;
use psrtd::pid_file::PidFile;
use psrtd::runtime::{self, BoundAddrs};
use psrtd::setup::{self, Loaded};
use psrtd::startup::{self, Role, Startup};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// The daemon's allocator. With glibc malloc, the memory of thousands of
/// clients that came and left stays in the process (per-thread arenas
/// fragmented by long-lived small blocks between freed ones): RSS stays at
/// its peak. jemalloc's background thread returns freed pages to the OS
/// (measured figures in docs/reliability.md). It builds from C sources
/// with `cc`; without the `jemalloc` feature the system allocator is used.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Command line of `psrtd`.
#[derive(Debug, Parser)]
#[command(
    name = "psrtd",
    version = build_info::version(),
    about = "PSRT pub/sub broker"
)]
struct Cli {
    /// Config file [default: /etc/psrtd/config.yml, then
    /// /usr/local/etc/psrtd/config.yml, else a built-in loopback-only config]
    #[arg(short = 'C', long, visible_short_alias = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Debug logging (RUST_LOG, when set, takes precedence)
    #[arg(short, long)]
    verbose: bool,
    /// Check the config and every file it names (all problems at once),
    /// print what would be served and any warning, and exit; binds and
    /// writes nothing
    #[arg(long)]
    test_config: bool,
    /// Run in the background; implies --log-syslog. Returns once every
    /// listener is bound, non-zero with the error if the daemon cannot
    /// start
    #[arg(short, long)]
    daemonize: bool,
    /// Log to syslog (facility daemon) instead of stderr
    #[arg(long)]
    log_syslog: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let syslog = cli.log_syslog || cli.daemonize;
    init_logging(cli.verbose, syslog);
    let mut startup = Startup::default();
    match run(&cli, &mut startup) {
        Ok(code) => code,
        Err(message) => {
            for line in message.lines() {
                eprintln!("psrtd: {line}");
            }
            if syslog {
                tracing::error!("{message}");
            }
            startup.failed(&message);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli, startup: &mut Startup) -> Result<ExitCode, String> {
    let loaded = setup::load(cli.config.as_deref()).map_err(|err| err.to_string())?;
    if cli.test_config {
        print!("{}", loaded.summary());
        for warning in loaded.warnings() {
            println!("warning: {warning}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if cli.daemonize {
        match startup::daemonize()? {
            Role::Launcher(code) => return Ok(code),
            Role::Daemon(daemon) => *startup = daemon,
        }
    }
    serve(loaded, startup)?;
    Ok(ExitCode::SUCCESS)
}

fn serve(loaded: Loaded, startup: &mut Startup) -> Result<(), String> {
    for warning in loaded.warnings() {
        tracing::warn!("{warning}");
    }
    let pid_file = match &loaded.config.server.pid_file {
        Some(path) => Some(PidFile::acquire(path).map_err(|err| err.to_string())?),
        None => None,
    };
    let anonymous = loaded.spec.auth.allow_anonymous;
    let tls = setup::tls_state(&loaded.spec.conn);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        build = build_info::describe(),
        config = %loaded.source,
        "psrtd starting"
    );
    psrtd::memory::start_housekeeping()
        .map_err(|err| format!("cannot start the memory housekeeping thread: {err}"))?;
    let served = runtime::serve(loaded.spec, |addrs| {
        log_bound(addrs, tls, anonymous);
        startup.ready();
    });
    if let Some(pid_file) = pid_file {
        pid_file.remove();
    }
    served.map_err(|err| err.to_string())?;
    tracing::info!("psrtd stopped");
    Ok(())
}

fn log_bound(addrs: &BoundAddrs, tls: &str, anonymous: bool) {
    for addr in &addrs.tcp {
        tracing::info!(%addr, "listening on TCP");
    }
    for path in &addrs.unix {
        tracing::info!(path = %path.display(), "listening on Unix socket");
    }
    for addr in &addrs.udp {
        tracing::info!(%addr, "listening on UDP");
    }
    if let Some(addr) = addrs.stats {
        tracing::info!(%addr, "stats HTTP on");
    }
    tracing::info!(tls, anonymous = setup::on_off(anonymous), "ready");
}

/// Logs to stderr, or to syslog when asked (or when no syslog connection
/// can be opened, to stderr after all). RUST_LOG, when set, picks the
/// levels; otherwise `info`, or `debug` with `-v`.
fn init_logging(verbose: bool, syslog: bool) {
    let level = if verbose {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let syslog = syslog.then(open_syslog).flatten();
    let installed = match syslog {
        Some(writer) => builder
            .with_writer(writer)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .try_init(),
        None => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    if let Err(err) = installed {
        eprintln!("psrtd: cannot start logging: {err}");
    }
}

fn open_syslog() -> Option<syslog_tracing::Syslog> {
    syslog_tracing::Syslog::new(
        c"psrtd",
        syslog_tracing::Options::LOG_PID,
        syslog_tracing::Facility::Daemon,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::Path;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_flag_has_three_spellings() {
        for flag in ["-C", "-c", "--config"] {
            let cli = Cli::try_parse_from(["psrtd", flag, "x.yml"]).expect("parses");
            assert_eq!(cli.config.as_deref(), Some(Path::new("x.yml")));
        }
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from(["psrtd", "-v", "-d", "--test-config", "--log-syslog"])
            .expect("parses");
        assert!(cli.verbose && cli.daemonize && cli.test_config && cli.log_syslog);
        assert_eq!(cli.config, None);
    }

    #[test]
    fn unknown_flag_is_refused() {
        assert!(Cli::try_parse_from(["psrtd", "--bogus"]).is_err());
    }
}
