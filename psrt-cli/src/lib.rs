//! The `psrt-cli` commands: publish (TCP or UDP), subscribe, the live
//! `--top` view and `--benchmark`, over the async client of
//! `psrt-runtime-tokio`.
//!
//! * [`args`]: the command line (clap derive).
//! * [`output`]: how a received message is printed.
//! * `publish` / `subscribe` / [`top`] / [`benchmark`]: one module per
//!   mode.

pub mod args;
pub mod benchmark;
pub mod output;
mod publish;
mod subscribe;
pub mod top;

use std::path::PathBuf;

use psrt_runtime_tokio::client::{ClientError, ClientOptions, TlsOptions};

pub use args::{Args, Mode};

/// Why a `psrt-cli` command failed; the binary prints it and exits 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Connecting, logging in or talking to the server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The server refused a publish (access denied, bad topic...).
    #[error("cannot publish to {topic}: {source}")]
    Publish {
        /// The topic.
        topic: String,
        /// The refusal.
        source: ClientError,
    },
    /// The server refused a subscription.
    #[error("cannot subscribe to {topics}: {source}")]
    Subscribe {
        /// The topics, comma-separated.
        topics: String,
        /// The refusal.
        source: ClientError,
    },
    /// A `--tls-ca`, `--tls-cert` or `--tls-key` file could not be read.
    #[error("cannot read the TLS file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// UDP needs a network address, not a socket path.
    #[error("UDP publishing needs HOST:PORT, not the socket path {0}")]
    UdpPath(String),
    /// The UDP target did not resolve.
    #[error("cannot resolve {target}: {source}")]
    Resolve {
        /// The target as given.
        target: String,
        /// The reason.
        source: std::io::Error,
    },
    /// The UDP target resolved to nothing.
    #[error("{0} resolves to no address")]
    NoAddress(String),
    /// The server acknowledged a UDP publish with an error status.
    #[error("the server refused the UDP publish to {topic}: {}", status_name(*status))]
    UdpRefused {
        /// The topic.
        topic: String,
        /// The status byte.
        status: u8,
    },
    /// The server ended the session while subscribed.
    #[error("the server closed the connection")]
    StreamEnded,
    /// Printing failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    /// The terminal of `--top` could not be set up, read or drawn.
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
    /// A `--benchmark` stage failed or received wrong messages.
    #[error("benchmark: {0}")]
    Benchmark(#[from] benchmark::BenchmarkError),
}

/// Runs the mode the command line selects.
pub async fn run(args: Args) -> Result<(), CliError> {
    match args.mode() {
        Mode::Publish(message) if args.udp => publish::publish_udp(&args, message).await,
        Mode::Publish(message) => publish::publish_tcp(&args, message).await,
        Mode::Subscribe => subscribe::subscribe(&args).await,
        Mode::Top => top::top(&args).await,
        Mode::Benchmark {
            workers,
            iterations,
        } => benchmark::benchmark(&args, workers, iterations).await,
    }
}

/// Client options from the login, TLS and timeout flags.
pub fn connect_options(args: &Args) -> Result<ClientOptions, CliError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| CliError::CaFile {
            path: path.clone(),
            source,
        })
    };
    let tls = if args.use_tls() {
        let client_cert = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        Some(TlsOptions {
            ca_pem: args.tls_ca.as_ref().map(read).transpose()?,
            server_name: None,
            client_cert,
        })
    } else {
        None
    };
    Ok(ClientOptions {
        login: args.user.clone(),
        password: args.password.clone(),
        tls,
        timeout: args.timeout,
        ..ClientOptions::default()
    })
}

/// A status byte's name for messages.
fn status_name(code: u8) -> String {
    use psrt_proto::wire::status;
    match code {
        status::ERR_ACCESS => String::from("access denied (ERR_ACCESS)"),
        status::ERR => String::from("error (ERR)"),
        other => format!("status {other:#04x}"),
    }
}
