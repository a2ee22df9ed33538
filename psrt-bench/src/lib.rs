//! Loopback benchmark of PSRT servers.
//!
//! The `psrt-bench` binary starts each given `psrtd` binary (ours built
//! with each runtime, the original server, or any other that reads the
//! same YAML config) on a free loopback port and runs six workloads
//! against it, verifying delivery counts:
//!
//! 1. fan-in: publishers -> 1 subscriber, 32-byte payloads, plain and
//!    over TLS;
//! 2. fan-out: 1 publisher -> many subscribers, plain and over TLS;
//! 3. latency at a fixed publish rate (p50, p99, p99.9, max);
//! 4. large payloads, 16 or more publishes in flight per publisher: 1 MiB
//!    and 64 KiB one to one, 1 MiB two publishers to two subscribers (MB/s
//!    and the server's CPU);
//! 5. many subscriptions (exact and wildcard) over many clients: the time
//!    to subscribe them all, then publish throughput;
//! 6. idle clients (control + data socket): server memory per client.
//!
//! The workloads live in [`workloads`] and only need a server endpoint
//! ([`tls::Endpoint`]), so the tests run them against an in-process
//! server. For the TLS workloads the server is started with a
//! certificate made for the run ([`tls::Pki`]). With `--rounds N` every
//! server is measured N times in a rotating order and [`rounds`]
//! summarises them by medians.

pub mod floor;
pub mod machine;
pub mod raw;
pub mod report;
pub mod rounds;
pub mod server;
pub mod tls;
pub mod transport;
pub mod workloads;

use std::time::Duration;

/// Why a benchmark step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A socket or process operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent a frame the benchmark cannot read.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A wire decoder refused a frame.
    #[error("wire: {0}")]
    Wire(#[from] psrt_proto::wire::WireError),
    /// The server answered a request with an error status.
    #[error("request refused with status {0:#04x}")]
    Refused(u8),
    /// The server closed a connection the benchmark still used.
    #[error("connection closed by the server")]
    Closed,
    /// The server did not come up.
    #[error("server {0}")]
    Server(String),
    /// Certificates or TLS client settings could not be made.
    #[error("tls: {0}")]
    Tls(String),
    /// A worker thread panicked.
    #[error("a benchmark thread panicked")]
    Thread,
}

/// Sizes and durations of the workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Measuring window of the throughput workloads.
    pub window: Duration,
    /// Publishers of the fan-in workload.
    pub fan_in_publishers: usize,
    /// Subscribers of the fan-out workload.
    pub fan_out_subscribers: usize,
    /// Publish rate of the latency workload, messages per second.
    pub latency_rate: u32,
    /// Duration of the latency workload.
    pub latency_window: Duration,
    /// Clients holding the subscriptions of workload 5.
    pub subscription_clients: usize,
    /// Subscriptions per client in workload 5 (half exact, half wildcard).
    pub subscriptions_per_client: usize,
    /// Idle clients of workload 6.
    pub idle_clients: usize,
}

impl Scale {
    /// The sizes of the issue: 4 publishers, 50 subscribers, 5,000 msg/s,
    /// 100,000 subscriptions over 100 clients, 5,000 idle clients.
    pub fn full() -> Self {
        Self {
            window: Duration::from_secs(3),
            fan_in_publishers: 4,
            fan_out_subscribers: 50,
            latency_rate: 5_000,
            latency_window: Duration::from_secs(4),
            subscription_clients: 100,
            subscriptions_per_client: 1_000,
            idle_clients: 5_000,
        }
    }

    /// Small and short: exercises every workload in a few seconds.
    pub fn quick() -> Self {
        Self {
            window: Duration::from_millis(300),
            fan_in_publishers: 4,
            fan_out_subscribers: 10,
            latency_rate: 5_000,
            latency_window: Duration::from_millis(400),
            subscription_clients: 10,
            subscriptions_per_client: 200,
            idle_clients: 200,
        }
    }
}
