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

use psrt_proto::client::ClientError as ProtocolError;
use psrt_runtime_tokio::client::{Client, ClientError, ClientOptions, DEFAULT_PORT, TlsOptions};

pub use args::{Args, Mode};

/// Why a `psrt-cli` command failed; the binary prints it and exits 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Connecting, logging in or talking to the server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The socket could not be opened.
    #[error("cannot connect to {tried}: {reason}")]
    Connect {
        /// The address tried (with the default port when none was given).
        tried: String,
        /// The operating system's reason.
        reason: std::io::Error,
    },
    /// A plain client was closed at the greeting: the server most likely
    /// requires TLS.
    #[error(
        "{tried} closed the connection at the greeting: the server probably requires TLS; \
         try --tls (with --tls-ca FILE for a private CA)"
    )]
    TlsRequired {
        /// The address tried.
        tried: String,
    },
    /// The `-f` file could not be read.
    #[error("cannot read the payload file {path}: {source}")]
    PayloadFile {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// Stdin (`-s`) could not be read.
    #[error("cannot read the payload from stdin: {0}")]
    Stdin(std::io::Error),
    /// A UDP datagram would exceed the server's frame size, which would
    /// drop it without a word.
    #[error(
        "the UDP datagram for {topic} would be {len} bytes, above the frame size of {max} \
         (the server drops larger ones silently); publish over TCP or raise --udp-frame-size \
         to the server's udp_frame_size"
    )]
    UdpTooLarge {
        /// The topic.
        topic: String,
        /// The datagram's size.
        len: usize,
        /// The frame size.
        max: usize,
    },
    /// The server refused a publish (access denied, bad topic...).
    #[error("cannot publish to {topic}: {source}")]
    Publish {
        /// The topic.
        topic: String,
        /// The refusal.
        source: ClientError,
    },
    /// The server refused a subscription.
    #[error("cannot subscribe to {topic}: {source}")]
    Subscribe {
        /// The topic refused (the first one of the list).
        topic: String,
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
        Mode::Publish(source) => {
            let payload = source.load()?;
            if args.udp {
                publish::publish_udp(&args, payload).await
            } else {
                publish::publish_tcp(&args, payload).await
            }
        }
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
        shuffle_nodes: args.shuffle,
        ..ClientOptions::default()
    })
}

/// Connects as the command line says; a failure names the address tried
/// and, when a plain client was closed at the greeting, suggests `--tls`.
pub async fn connect(args: &Args, options: ClientOptions) -> Result<Client, CliError> {
    Client::connect(&args.target, options)
        .await
        .map_err(|err| connect_error(args, err))
}

fn connect_error(args: &Args, err: ClientError) -> CliError {
    let tried = tried_address(&args.target);
    match err {
        ClientError::Connect { source, .. } => CliError::Connect {
            tried,
            reason: source,
        },
        ClientError::Protocol(ProtocolError::GreetingRefused) if !args.use_tls() => {
            CliError::TlsRequired { tried }
        }
        other => CliError::Client(other),
    }
}

/// The address a connection to `target` tries: a socket path or
/// `HOST:PORT` as given, `HOST` with the default port.
pub fn tried_address(target: &str) -> String {
    if target.contains('/') {
        return target.to_owned();
    }
    let has_port = target.rsplit_once(':').is_some_and(|(host, port)| {
        port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
    });
    if has_port {
        target.to_owned()
    } else if target.contains(':') {
        format!("[{target}]:{DEFAULT_PORT}")
    } else {
        format!("{target}:{DEFAULT_PORT}")
    }
}

/// Subscribes to each filter in turn, so a refusal names the filter.
pub async fn subscribe_each(client: &Client, filters: &[&str]) -> Result<(), CliError> {
    for filter in filters {
        client
            .subscribe(filter)
            .await
            .map_err(|source| CliError::Subscribe {
                topic: (*filter).to_owned(),
                source,
            })?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_tried_has_a_port() {
        assert_eq!(tried_address("10.0.0.1:99"), "10.0.0.1:99");
        assert_eq!(tried_address("broker"), "broker:2873");
        assert_eq!(tried_address("[::1]:5"), "[::1]:5");
        assert_eq!(tried_address("::1"), "[::1]:2873");
        assert_eq!(tried_address("/run/psrt.sock"), "/run/psrt.sock");
    }
}
