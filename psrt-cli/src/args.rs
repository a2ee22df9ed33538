//! The command line of `psrt-cli`, parsed with clap derive. Each mode
//! (publish, subscribe, the live `--top` view, `--benchmark`) is a variant
//! of [`Mode`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgGroup, Parser, ValueEnum};
use psrt_runtime_tokio::client::Cipher;

/// `psrt-cli HOST:PORT [-u USER] [-p PASSWORD] [-t TOPIC[,TOPIC...]] [-m MSG]`
#[derive(Debug, Clone, Parser)]
#[command(
    name = "psrt-cli",
    version,
    about = "Publish to or subscribe at a PSRT server",
    long_about = "Publish to or subscribe at a PSRT server.\n\n\
        With -m, publishes MSG to every topic of -t; without, subscribes to \
        the topics (default `#`) and prints each message: the topic, then \
        the payload as text or hex.\n\n\
        --top shows the busiest topics of -t live; --benchmark measures \
        the server with several clients."
)]
#[command(group(ArgGroup::new("payload").args(["message", "file", "stdin"])))]
pub struct Args {
    /// Server as HOST:PORT (HOST alone uses port 2873), or a Unix-socket
    /// path; several cluster nodes as NODE1:PORT,NODE2:PORT (the first
    /// that answers is used, and a subscriber fails over to the next).
    #[arg(default_value = "127.0.0.1:2873")]
    pub target: String,
    /// Try the cluster nodes of the target in random order, so that
    /// clients sharing one node list spread over the nodes.
    #[arg(long = "shuffle")]
    pub shuffle: bool,
    /// Login name (empty: anonymous).
    #[arg(short = 'u', long = "user", default_value = "")]
    pub user: String,
    /// Password.
    #[arg(
        short = 'p',
        long = "password",
        default_value = "",
        hide_default_value = true
    )]
    pub password: String,
    /// Topics, comma-separated (subscribing defaults to `#`).
    #[arg(short = 't', long = "topic", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Publish this message; `==SIZE` (e.g. `==1M`, suffixes K, M, G)
    /// publishes a generated payload of that many bytes.
    #[arg(short = 'm', long = "message", requires = "topics", value_parser = parse_message)]
    pub message: Option<MessageArg>,
    /// Publish the contents of FILE.
    #[arg(short = 'f', long = "file", value_name = "FILE", requires = "topics")]
    pub file: Option<PathBuf>,
    /// Publish what stdin holds, read to its end.
    #[arg(short = 's', long = "stdin", requires = "topics")]
    pub stdin: bool,
    /// Print each message as `topic payload` on one line (like
    /// `mosquitto_sub -v`) instead of the topic and the payload on two.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Connect with TLS.
    #[arg(long)]
    pub tls: bool,
    /// Trust this PEM CA file (implies --tls) instead of the Mozilla roots.
    #[arg(long = "tls-ca", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Present this PEM client certificate (implies --tls), for servers
    /// with `tls_client_ca`.
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Keep-alive and answer timeout, in seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Publish over UDP instead of TCP.
    #[arg(long, requires = "payload")]
    pub udp: bool,
    /// The server's `udp_frame_size`: a datagram larger than this is
    /// refused here with an error, since the server would drop it silently.
    #[arg(
        long = "udp-frame-size",
        value_name = "BYTES",
        default_value_t = psrt_proto::Limits::default().udp_frame_size,
        requires = "udp"
    )]
    pub udp_frame_size: usize,
    /// Encrypt UDP frames with this 64-hex-digit key (from the server's
    /// key file) instead of sending the password.
    #[arg(long = "udp-key", value_name = "HEXKEY", requires = "udp", value_parser = parse_key)]
    pub udp_key: Option<UdpKey>,
    /// Cipher for --udp-key.
    #[arg(
        long = "udp-cipher",
        value_enum,
        default_value = "aes256",
        requires = "udp_key"
    )]
    pub udp_cipher: UdpCipher,
    /// Ask the server to acknowledge each UDP frame and report the status.
    #[arg(long = "udp-ack", requires = "udp")]
    pub udp_ack: bool,
    /// Show the busiest topics of -t (default `#`) live, with message and
    /// byte counts and rates; `s` switches the sort, `q` quits.
    #[arg(long, conflicts_with_all = ["payload", "benchmark"])]
    pub top: bool,
    /// Benchmark the server: subscribe, publish and publish-then-receive
    /// at several payload sizes, unsubscribe; prints a results table.
    #[arg(long, conflicts_with = "payload")]
    pub benchmark: bool,
    /// Clients the benchmark runs in parallel.
    #[arg(
        long = "benchmark-workers",
        value_name = "N",
        default_value = "4",
        requires = "benchmark",
        value_parser = clap::value_parser!(u32).range(1..=MAX_BENCHMARK_WORKERS)
    )]
    pub benchmark_workers: u32,
    /// Iterations per worker of each benchmark stage (100 kB payloads run
    /// a tenth, 1 MB payloads a hundredth of them).
    #[arg(
        long = "benchmark-iterations",
        value_name = "N",
        default_value = "10000",
        requires = "benchmark",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub benchmark_iterations: u32,
    /// Benchmark replication: each worker receives on this other cluster
    /// node (HOST:PORT or a socket path) what it publishes on the target.
    #[arg(
        long = "benchmark-cluster-sub",
        value_name = "NODE",
        requires = "benchmark"
    )]
    pub benchmark_cluster_sub: Option<String>,
}

/// Most `--benchmark-workers`: each worker holds two sockets, and the
/// machine's descriptor limit must leave room for the server's ends.
const MAX_BENCHMARK_WORKERS: i64 = 4096;

/// What the command line asks for.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// Publish the message (over TCP, or UDP with `--udp`).
    Publish(Source<'a>),
    /// Subscribe and print messages until interrupted.
    Subscribe,
    /// Subscribe and show the busiest topics live (`--top`).
    Top,
    /// Run the benchmark (`--benchmark`).
    Benchmark {
        /// Parallel clients.
        workers: u32,
        /// Iterations per worker and stage.
        iterations: u32,
    },
}

impl Args {
    /// The mode the flags select.
    pub fn mode(&self) -> Mode<'_> {
        if self.benchmark {
            return Mode::Benchmark {
                workers: self.benchmark_workers,
                iterations: self.benchmark_iterations,
            };
        }
        if let Some(message) = &self.message {
            return Mode::Publish(Source::Message(message));
        }
        if let Some(file) = &self.file {
            return Mode::Publish(Source::File(file));
        }
        if self.stdin {
            return Mode::Publish(Source::Stdin);
        }
        if self.top { Mode::Top } else { Mode::Subscribe }
    }

    /// Whether to connect with TLS (`--tls` or `--tls-ca`).
    pub fn use_tls(&self) -> bool {
        self.tls || self.tls_ca.is_some() || self.tls_cert.is_some()
    }
}

/// Where the payload to publish comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// `-m`.
    Message(&'a MessageArg),
    /// `-f FILE`.
    File(&'a Path),
    /// `-s`: stdin, read to its end.
    Stdin,
}

impl Source<'_> {
    /// Reads the payload.
    pub fn load(self) -> Result<Bytes, crate::CliError> {
        match self {
            Source::Message(message) => Ok(message.payload()),
            Source::File(path) => std::fs::read(path).map(Bytes::from).map_err(|source| {
                crate::CliError::PayloadFile {
                    path: path.to_owned(),
                    source,
                }
            }),
            Source::Stdin => {
                let mut payload = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut payload)
                    .map_err(crate::CliError::Stdin)?;
                Ok(payload.into())
            }
        }
    }
}

/// The `-m` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageArg {
    /// Publish this text.
    Text(String),
    /// `==SIZE`: publish a generated payload of this many bytes.
    Generated(usize),
}

impl MessageArg {
    /// The payload bytes. Generated payloads repeat `a`..`z`, so they are
    /// printable and compress like real text would not.
    pub fn payload(&self) -> Bytes {
        match self {
            MessageArg::Text(text) => Bytes::from(text.clone().into_bytes()),
            MessageArg::Generated(size) => (0..*size)
                .map(|i| b'a' + (i % 26) as u8)
                .collect::<Vec<u8>>()
                .into(),
        }
    }
}

/// A UDP key; `Debug` does not show it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UdpKey(pub [u8; 32]);

impl std::fmt::Debug for UdpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UdpKey(..)")
    }
}

/// `--udp-cipher` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UdpCipher {
    /// AES-128-GCM (first 16 bytes of the key).
    Aes128,
    /// AES-256-GCM.
    Aes256,
}

impl From<UdpCipher> for Cipher {
    fn from(cipher: UdpCipher) -> Cipher {
        match cipher {
            UdpCipher::Aes128 => Cipher::Aes128Gcm,
            UdpCipher::Aes256 => Cipher::Aes256Gcm,
        }
    }
}

/// `-m`: text, or `==SIZE` for a generated payload.
fn parse_message(value: &str) -> Result<MessageArg, String> {
    match value.strip_prefix("==") {
        Some(size) => parse_size(size).map(MessageArg::Generated),
        None => Ok(MessageArg::Text(value.to_owned())),
    }
}

/// A byte count with an optional K, M or G suffix (powers of 1024).
fn parse_size(text: &str) -> Result<usize, String> {
    let invalid = || format!("invalid size `{text}`: expected a number with K, M or G");
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1 << 10),
        Some((at, 'm' | 'M')) => (&text[..at], 1 << 20),
        Some((at, 'g' | 'G')) => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    let count: usize = digits.parse().map_err(|_| invalid())?;
    count.checked_mul(unit).ok_or_else(invalid)
}

/// `--timeout`: positive seconds, fractions allowed.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("invalid timeout `{text}`: expected seconds"))?;
    match Duration::try_from_secs_f64(seconds) {
        Ok(timeout) if !timeout.is_zero() => Ok(timeout),
        _ => Err(format!("invalid timeout `{text}`: must be above zero")),
    }
}

/// `--udp-key`: exactly 64 hex digits.
fn parse_key(text: &str) -> Result<UdpKey, String> {
    let mut key = [0; 32];
    hex::decode_to_slice(text, &mut key)
        .map_err(|_| String::from("the key must be exactly 64 hex digits"))?;
    Ok(UdpKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("2m"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in ["", "K", "1.5K", "-1", "1T", "x1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size(&format!("{}G", usize::MAX)).is_err());
    }

    #[test]
    fn messages_are_text_or_generated() {
        assert_eq!(parse_message("hi"), Ok(MessageArg::Text("hi".into())));
        assert_eq!(parse_message("==1K"), Ok(MessageArg::Generated(1024)));
        assert!(parse_message("==lots").is_err());
        let payload = MessageArg::Generated(28).payload();
        assert_eq!(&payload[..], b"abcdefghijklmnopqrstuvwxyzab");
    }

    #[test]
    fn timeouts_and_keys_are_validated() {
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "x", "NaN", "inf"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
        let hex64 = "ff".repeat(32);
        assert_eq!(parse_key(&hex64), Ok(UdpKey([0xFF; 32])));
        assert!(parse_key(&hex64[2..]).is_err());
        assert!(parse_key(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn command_line_selects_the_mode() {
        let args = Args::try_parse_from(["psrt-cli", "h:1", "-t", "a,b", "-m", "x"]).unwrap();
        assert_eq!(args.topics, ["a", "b"]);
        assert!(
            matches!(args.mode(), Mode::Publish(Source::Message(MessageArg::Text(t))) if t == "x")
        );
        let args = Args::try_parse_from(["psrt-cli", "-t", "a", "-f", "p.bin"]).unwrap();
        assert!(matches!(args.mode(), Mode::Publish(Source::File(f)) if f == Path::new("p.bin")));
        let args = Args::try_parse_from(["psrt-cli", "-t", "a", "-s", "--udp"]).unwrap();
        assert!(matches!(args.mode(), Mode::Publish(Source::Stdin)));
        assert_eq!(args.udp_frame_size, 4096);
        assert!(
            Args::try_parse_from(["psrt-cli", "-t", "a", "-m", "x", "-s"]).is_err(),
            "one payload source"
        );
        assert!(
            Args::try_parse_from(["psrt-cli", "-s"]).is_err(),
            "-s needs -t"
        );
        let args = Args::try_parse_from(["psrt-cli", "-v", "-t", "a"]).unwrap();
        assert!(args.verbose && matches!(args.mode(), Mode::Subscribe));
        let args = Args::try_parse_from(["psrt-cli"]).unwrap();
        assert_eq!(args.target, "127.0.0.1:2873");
        assert!(matches!(args.mode(), Mode::Subscribe));
        assert!(
            Args::try_parse_from(["psrt-cli", "-m", "x"]).is_err(),
            "-m needs -t"
        );
        assert!(Args::try_parse_from(["psrt-cli", "--udp", "-t", "a"]).is_err());
        let args = Args::try_parse_from(["psrt-cli", "--tls-ca", "ca.pem"]).unwrap();
        assert!(args.use_tls());
        let args = Args::try_parse_from(["psrt-cli", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
            .unwrap();
        assert!(args.use_tls());
        assert!(Args::try_parse_from(["psrt-cli", "--tls-cert", "c.pem"]).is_err());
    }

    #[test]
    fn top_and_benchmark_are_modes() {
        let args = Args::try_parse_from(["psrt-cli", "--top", "-t", "a/#"]).unwrap();
        assert!(matches!(args.mode(), Mode::Top));
        let args = Args::try_parse_from(["psrt-cli", "--benchmark"]).unwrap();
        assert!(matches!(
            args.mode(),
            Mode::Benchmark {
                workers: 4,
                iterations: 10_000
            }
        ));
        let args = Args::try_parse_from([
            "psrt-cli",
            "--benchmark",
            "--benchmark-workers",
            "2",
            "--benchmark-iterations",
            "200",
        ])
        .unwrap();
        assert!(matches!(
            args.mode(),
            Mode::Benchmark {
                workers: 2,
                iterations: 200
            }
        ));
        assert_eq!(args.benchmark_cluster_sub, None);
        let args = Args::try_parse_from([
            "psrt-cli",
            "a:2873",
            "--benchmark",
            "--benchmark-cluster-sub",
            "b:2873",
        ])
        .unwrap();
        assert_eq!(args.benchmark_cluster_sub.as_deref(), Some("b:2873"));
        for bad in [
            &["psrt-cli", "--top", "-t", "a", "-m", "x"][..],
            &["psrt-cli", "--benchmark-cluster-sub", "b:2873"],
            &["psrt-cli", "--top", "--benchmark"],
            &["psrt-cli", "--benchmark", "-t", "a", "-m", "x"],
            &["psrt-cli", "--benchmark-workers", "2"],
            &["psrt-cli", "--benchmark", "--benchmark-workers", "0"],
            &["psrt-cli", "--benchmark", "--benchmark-iterations", "0"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
