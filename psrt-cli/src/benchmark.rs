//! `psrt-cli --benchmark`: the upstream-style staged benchmark.
//!
//! N worker clients connect, then every stage runs on all of them at once
//! and is timed as a whole:
//!
//! 1. `subscribe`: each worker subscribes `benchmark/{run}/{id}/{i}` for
//!    every iteration `i` (`run` is new for every benchmark, as a topic
//!    answered `NOT_REQUIRED` by a cluster node is not offered to it again
//!    for a while);
//! 2. for payloads of 10 b, 1 kb, 10 kb, 100 kb (a tenth of the
//!    iterations) and 1 mb (a hundredth): `pub-SIZE` publishes to a topic
//!    nobody reads, then `pub-read-SIZE` publishes to the worker's own
//!    subscribed topic (one per stage) and receives every message back,
//!    checking its topic and payload;
//! 3. `latency-10b`: the first worker alone publishes 10-byte messages
//!    to its own subscribed topic one at a time, each after the previous
//!    one came back (a fifth of the iterations);
//! 4. `unsubscribe`: the subscriptions of stage 1 are dropped.
//!
//! Publishes are pipelined: a bounded window of answers (and, when
//! reading, of deliveries) is outstanding, sized so at most
//! [`WINDOW_BYTES`] of payload are in flight per worker. Every received
//! message is timed from just before its publish to its arrival; the
//! reading stages report the 50th and 99th percentiles (under load for
//! `pub-read-*`, one message in flight for `latency-10b`). Each stage
//! shows a progress bar on stderr (hidden when stderr is not a terminal);
//! the results table goes to stdout.
//!
//! With `--benchmark-cluster-sub NODE` every worker also connects to NODE,
//! another node of the cluster, and subscribes and receives there what it
//! publishes on the target: the reading stages then measure replication
//! between the two nodes, with the same workload as on one node.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use psrt_runtime_tokio::client::{Client, ClientError, Messages, Ticket};
use tokio::task::JoinSet;

use super::args::{Args, MessageArg};
use super::{CliError, connect_options};

/// Payload stages: label and size in bytes, and the divisor of the
/// iteration count.
const PAYLOADS: [(&str, usize, u32); 5] = [
    ("10b", 10, 1),
    ("1kb", 1_000, 1),
    ("10kb", 10_000, 1),
    ("100kb", 100_000, 10),
    ("1mb", 1_000_000, 100),
];
/// Payload bytes a worker keeps in flight at most.
const WINDOW_BYTES: usize = 4 << 20;
/// Requests a worker keeps in flight at most, whatever the payload size.
const MAX_WINDOW: usize = 256;
/// Payload of the `latency` stage.
const LATENCY_PAYLOAD: (&str, usize) = ("10b", 10);
/// The `latency` stage runs this fraction of the iterations.
const LATENCY_DIVISOR: u32 = 5;

/// Why a benchmark stage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchmarkError {
    /// A request of the stage failed or was refused.
    #[error("stage {stage}, worker {worker}: {source}")]
    Client {
        /// The stage.
        stage: String,
        /// The worker's number.
        worker: usize,
        /// The failure.
        source: ClientError,
    },
    /// A received message was not the one published.
    #[error("stage {stage}, worker {worker}: message {index} differs from what was published")]
    Mismatch {
        /// The stage.
        stage: String,
        /// The worker's number.
        worker: usize,
        /// Which message of the stage (from 0).
        index: u64,
    },
    /// Fewer messages came back than were published.
    #[error("stage {stage}, worker {worker}: received {received} of {expected} messages")]
    Missing {
        /// The stage.
        stage: String,
        /// The worker's number.
        worker: usize,
        /// Messages published.
        expected: u64,
        /// Messages received before the stream ended or timed out.
        received: u64,
    },
    /// A worker task panicked or was cancelled.
    #[error("a benchmark worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

/// One timed stage's result: a row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct StageResult {
    /// The stage name (`subscribe`, `pub-10b`, ...).
    pub stage: String,
    /// Iterations over all workers.
    pub iterations: u64,
    /// Wall time of the stage.
    pub elapsed: Duration,
    /// Publish-to-receipt times, for the stages that receive.
    pub latency: Option<Latency>,
}

/// Percentiles of the publish-to-receipt times of a stage's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Latency {
    /// The percentiles of `samples` (reordered); `None` when empty.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        samples.sort_unstable();
        let at = |q: f64| {
            let last = samples.len().checked_sub(1)?;
            let index = (last as f64 * q).round() as usize;
            samples.get(index.min(last)).copied()
        };
        Some(Self {
            p50: at(0.50)?,
            p99: at(0.99)?,
        })
    }
}

impl StageResult {
    /// Iterations per second (0 for an instant stage).
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.iterations as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Runs every stage with `workers` clients and `iterations` per worker,
/// then prints the results table on stdout.
pub async fn benchmark(args: &Args, workers: u32, iterations: u32) -> Result<(), CliError> {
    let mut pool = connect_workers(args, workers).await?;
    let timeout = args.timeout;
    let mut results = Vec::new();
    results.push(run_stage(&mut pool, "subscribe", iterations, timeout, Op::Subscribe).await?);
    for (label, size, divisor) in PAYLOADS {
        let count = (iterations / divisor).max(1);
        let payload = MessageArg::Generated(size).payload();
        let publish = Op::Publish(payload.clone());
        let name = format!("pub-{label}");
        results.push(run_stage(&mut pool, &name, count, timeout, publish).await?);
        let read = Op::PublishRead(payload);
        let name = format!("pub-read-{label}");
        results.push(run_stage(&mut pool, &name, count, timeout, read).await?);
    }
    let (label, size) = LATENCY_PAYLOAD;
    let count = (iterations / LATENCY_DIVISOR).max(1);
    let latency = Op::Latency(MessageArg::Generated(size).payload());
    let name = format!("latency-{label}");
    results.push(run_stage(&mut pool, &name, count, timeout, latency).await?);
    results.push(
        run_stage(
            &mut pool,
            "unsubscribe",
            iterations,
            timeout,
            Op::Unsubscribe,
        )
        .await?,
    );
    std::io::stdout()
        .lock()
        .write_all(format_table(&results).as_bytes())
        .map_err(CliError::Output)?;
    for worker in pool {
        worker.client.bye().await?;
        if let Some(reader) = worker.reader {
            reader.bye().await?;
        }
    }
    Ok(())
}

/// The results as an aligned text table with a header line; latencies in
/// µs, `-` for stages that receive nothing.
pub fn format_table(results: &[StageResult]) -> String {
    let mut table = format!(
        "{:<16} {:>10} {:>8} {:>10} {:>14} {:>8} {:>8}\n",
        "stage", "iters", "secs", "msecs", "iters/s", "p50-us", "p99-us"
    );
    for result in results {
        let secs = result.elapsed.as_secs_f64();
        let (p50, p99) = match result.latency {
            Some(latency) => (
                latency.p50.as_micros().to_string(),
                latency.p99.as_micros().to_string(),
            ),
            None => (String::from("-"), String::from("-")),
        };
        table.push_str(&format!(
            "{:<16} {:>10} {:>8.3} {:>10.3} {:>14.0} {:>8} {:>8}\n",
            result.stage,
            result.iterations,
            secs,
            secs * 1000.0,
            result.rate(),
            p50,
            p99
        ));
    }
    table
}

/// A connected worker.
struct Worker {
    id: usize,
    /// `benchmark/{run}/{id}`: the start of its topics.
    prefix: String,
    /// Publishes, and subscribes in the `subscribe` stage.
    client: Client,
    /// The client on `--benchmark-cluster-sub`, which subscribes and
    /// receives in the reading stages; without it, `client` does.
    reader: Option<Client>,
    /// The messages of the reading stages.
    messages: Messages,
}

impl Worker {
    /// The client that subscribes and receives in the reading stages.
    fn receiver(&self) -> &Client {
        self.reader.as_ref().unwrap_or(&self.client)
    }
}

/// What each worker does in a stage.
#[derive(Clone)]
enum Op {
    Subscribe,
    Publish(Bytes),
    PublishRead(Bytes),
    Latency(Bytes),
    Unsubscribe,
}

impl Op {
    /// Workers that run it: the `latency` stage runs on the first alone.
    fn workers(&self, pool: usize) -> usize {
        match self {
            Op::Latency(_) => pool.min(1),
            _ => pool,
        }
    }
}

/// Connects the workers one by one (a refused login fails early), each
/// also to `--benchmark-cluster-sub` when given.
async fn connect_workers(args: &Args, workers: u32) -> Result<Vec<Worker>, CliError> {
    let run = run_id();
    let mut pool = Vec::new();
    for id in 0..workers as usize {
        let client = Client::connect(&args.target, connect_options(args)?).await?;
        let reader = match &args.benchmark_cluster_sub {
            Some(node) => Some(Client::connect(node, connect_options(args)?).await?),
            None => None,
        };
        let messages = reader
            .as_ref()
            .unwrap_or(&client)
            .take_messages()
            .ok_or(CliError::StreamEnded)?;
        pool.push(Worker {
            id,
            prefix: format!("benchmark/{run}/{id}"),
            client,
            reader,
            messages,
        });
    }
    Ok(pool)
}

/// A hexadecimal id for this benchmark's topics, from the clock and the
/// process id.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    format!(
        "{:x}",
        u64::from(std::process::id()) << 32 | u64::from(nanos)
    )
}

/// Runs `op` `count` times on every worker at once, with a progress bar,
/// and times the whole stage. The workers come back in `pool` in order.
async fn run_stage(
    pool: &mut Vec<Worker>,
    stage: &str,
    count: u32,
    timeout: Duration,
    op: Op,
) -> Result<StageResult, BenchmarkError> {
    let active = op.workers(pool.len());
    let total = u64::from(count) * active as u64;
    let bar = progress_bar(stage, total);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for mut worker in pool.drain(..) {
        let (op, bar, stage) = (op.clone(), bar.clone(), stage.to_owned());
        let count = if worker.id < active { count } else { 0 };
        tasks.spawn(async move {
            let outcome = run_worker(&mut worker, &stage, &op, count, timeout, &bar).await;
            let outcome = outcome.map_err(|failure| failure.into_error(stage, worker.id));
            (worker, outcome)
        });
    }
    let mut failure = None;
    let mut samples = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (worker, outcome) = joined?;
        match outcome {
            Ok(times) => samples.extend(times),
            Err(err) => {
                failure.get_or_insert(err);
            }
        }
        pool.push(worker);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    if let Some(err) = failure {
        return Err(err);
    }
    pool.sort_by_key(|worker| worker.id);
    Ok(StageResult {
        stage: stage.to_owned(),
        iterations: total,
        elapsed,
        latency: Latency::of(&mut samples),
    })
}

/// A stage's bar on stderr; indicatif hides it when stderr is no terminal.
fn progress_bar(stage: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>16} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(stage.to_owned());
    bar
}

/// How one worker's stage failed, before the stage and worker are known.
enum Failure {
    Client(ClientError),
    Mismatch(u64),
    Missing { expected: u64, received: u64 },
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure::Client(err)
    }
}

impl Failure {
    fn into_error(self, stage: String, worker: usize) -> BenchmarkError {
        match self {
            Failure::Client(source) => BenchmarkError::Client {
                stage,
                worker,
                source,
            },
            Failure::Mismatch(index) => BenchmarkError::Mismatch {
                stage,
                worker,
                index,
            },
            Failure::Missing { expected, received } => BenchmarkError::Missing {
                stage,
                worker,
                expected,
                received,
            },
        }
    }
}

/// Runs `op` `count` times on one worker; returns the publish-to-receipt
/// time of every message received.
async fn run_worker(
    worker: &mut Worker,
    stage: &str,
    op: &Op,
    count: u32,
    timeout: Duration,
    bar: &ProgressBar,
) -> Result<Vec<Duration>, Failure> {
    let prefix = &worker.prefix;
    if count == 0 {
        return Ok(Vec::new());
    }
    match op {
        Op::Subscribe => {
            for i in 0..count {
                worker.client.subscribe(&format!("{prefix}/{i}")).await?;
                bar.inc(1);
            }
        }
        Op::Unsubscribe => {
            for i in 0..count {
                let topic = format!("{prefix}/{i}");
                worker.client.unsubscribe(&topic).await?;
                bar.inc(1);
            }
        }
        Op::Publish(payload) => {
            let topic = format!("{prefix}/pub");
            publish_only(&worker.client, &topic, payload, count, bar).await?;
        }
        Op::PublishRead(payload) | Op::Latency(payload) => {
            let topic = format!("{prefix}/test/{stage}");
            let window = match op {
                Op::Latency(_) => 1,
                _ => window(payload.len()),
            };
            worker.receiver().subscribe(&topic).await?;
            let times = publish_read(worker, &topic, payload, count, window, timeout, bar).await?;
            worker.receiver().unsubscribe(&topic).await?;
            return Ok(times);
        }
    }
    Ok(Vec::new())
}

/// Requests in flight for a payload of `size` bytes.
fn window(size: usize) -> usize {
    (WINDOW_BYTES / size.max(1)).clamp(1, MAX_WINDOW)
}

/// Publishes `count` messages, at most a window of answers pending.
async fn publish_only(
    client: &Client,
    topic: &str,
    payload: &Bytes,
    count: u32,
    bar: &ProgressBar,
) -> Result<(), Failure> {
    let window = window(payload.len());
    let mut pending = VecDeque::with_capacity(window + 1);
    for _ in 0..count {
        pending.push_back(client.publish_nowait(topic, payload.clone()).await?);
        if pending.len() > window {
            settle_one(&mut pending).await?;
            bar.inc(1);
        }
    }
    while !pending.is_empty() {
        settle_one(&mut pending).await?;
        bar.inc(1);
    }
    Ok(())
}

/// Publishes `count` messages to the worker's own topic and receives each
/// back, keeping at most `window` of them unreceived; returns the time
/// from each publish to its receipt.
async fn publish_read(
    worker: &mut Worker,
    topic: &str,
    payload: &Bytes,
    count: u32,
    window: usize,
    timeout: Duration,
    bar: &ProgressBar,
) -> Result<Vec<Duration>, Failure> {
    let expected = u64::from(count);
    let mut check = Receipts {
        topic,
        payload,
        expected,
        received: 0,
        timeout,
        published: VecDeque::with_capacity(window + 1),
        times: Vec::with_capacity(count as usize),
    };
    let mut pending = VecDeque::with_capacity(window + 1);
    for sent in 1..=expected {
        check.published.push_back(Instant::now());
        pending.push_back(worker.client.publish_nowait(topic, payload.clone()).await?);
        if pending.len() > window {
            settle_one(&mut pending).await?;
        }
        if sent - check.received >= window as u64 {
            check.receive(&mut worker.messages).await?;
            bar.inc(1);
        }
    }
    while !pending.is_empty() {
        settle_one(&mut pending).await?;
    }
    while check.received < expected {
        check.receive(&mut worker.messages).await?;
        bar.inc(1);
    }
    Ok(check.times)
}

/// Awaits the oldest pending publish answer, if any.
async fn settle_one(pending: &mut VecDeque<Ticket>) -> Result<(), Failure> {
    match pending.pop_front() {
        Some(ticket) => Ok(ticket.await?),
        None => Ok(()),
    }
}

/// The receiving side of a reading stage: what every message must be,
/// how many came, and how long each took.
struct Receipts<'a> {
    topic: &'a str,
    payload: &'a Bytes,
    expected: u64,
    received: u64,
    timeout: Duration,
    /// When each message not yet received was published, oldest first
    /// (one publisher per topic: they arrive in this order).
    published: VecDeque<Instant>,
    /// Publish-to-receipt time of each message received.
    times: Vec<Duration>,
}

impl Receipts<'_> {
    /// Receives the next message and checks it is the one published; the
    /// stream ending or `timeout` passing first means it went missing.
    async fn receive(&mut self, messages: &mut Messages) -> Result<(), Failure> {
        let next = tokio::time::timeout(self.timeout, messages.recv()).await;
        let Ok(Ok(message)) = next else {
            return Err(Failure::Missing {
                expected: self.expected,
                received: self.received,
            });
        };
        if message.topic != self.topic.as_bytes() || message.payload != *self.payload {
            return Err(Failure::Mismatch(self.received));
        }
        if let Some(published) = self.published.pop_front() {
            self.times.push(published.elapsed());
        }
        self.received += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_bound_bytes_and_requests() {
        assert_eq!(window(10), MAX_WINDOW);
        assert_eq!(window(100_000), 41);
        assert_eq!(window(1_000_000), 4);
        assert_eq!(window(100 << 20), 1);
        assert_eq!(window(0), MAX_WINDOW);
    }

    #[test]
    fn the_table_has_a_row_per_stage_with_rates() {
        let results = [
            StageResult {
                stage: "subscribe".into(),
                iterations: 4000,
                elapsed: Duration::from_millis(500),
                latency: None,
            },
            StageResult {
                stage: "pub-read-1mb".into(),
                iterations: 8,
                elapsed: Duration::ZERO,
                latency: Some(Latency {
                    p50: Duration::from_micros(120),
                    p99: Duration::from_micros(4_500),
                }),
            },
        ];
        let table = format_table(&results);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "stage", "iters", "secs", "msecs", "iters/s", "p50-us", "p99-us"
            ]
        );
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            row,
            ["subscribe", "4000", "0.500", "500.000", "8000", "-", "-"]
        );
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            row,
            ["pub-read-1mb", "8", "0.000", "0.000", "0", "120", "4500"]
        );
    }

    #[test]
    fn latency_percentiles_come_from_the_sorted_samples() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let latency = Latency::of(&mut samples).unwrap();
        assert_eq!(latency.p50, Duration::from_micros(51));
        assert_eq!(latency.p99, Duration::from_micros(99));
        let mut one = [Duration::from_micros(7)];
        let latency = Latency::of(&mut one).unwrap();
        assert_eq!((latency.p50, latency.p99), (one[0], one[0]));
        assert_eq!(Latency::of(&mut []), None);
    }

    #[test]
    fn only_the_latency_stage_runs_on_one_worker() {
        let payload = Bytes::from_static(b"x");
        assert_eq!(Op::Latency(payload.clone()).workers(4), 1);
        assert_eq!(Op::Latency(payload.clone()).workers(0), 0);
        assert_eq!(Op::PublishRead(payload).workers(4), 4);
        assert_eq!(Op::Subscribe.workers(4), 4);
    }
}
