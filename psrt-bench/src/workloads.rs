//! The workloads, each against a server endpoint, each verifying that
//! every published message reached every subscriber it should.
//!
//! Fan-in and fan-out also run over TLS (`fan-in-tls`, `fan-out-tls`):
//! the same shapes and sizes with every client socket, control and data,
//! in TLS, to show whether a server's crypto scales with its workers.
//!
//! Throughput workloads share one engine (`Flow`): publisher threads
//! pipeline PUBLISH requests (a bounded number unanswered) for a fixed
//! window while subscriber threads count pushed frames. Publishers pause
//! while subscribers lag more than a bounded backlog, so a server's
//! per-client queue never overflows and a loss is a real loss.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::raw::{Control, PublishBatch, PushStream};
use crate::server::{DATA_QUEUE, DEEP_QUEUE, Server, cpu_time, rss_kib};
use crate::tls::Endpoint;
use crate::{BenchError, Scale};

/// Payload size of the fan-in, fan-out, latency and subscription workloads.
pub const SMALL_PAYLOAD: usize = 32;
/// Payload size of the large-message workloads.
pub const LARGE_PAYLOAD: usize = 1 << 20;
/// Payload size of the medium-message workload.
pub const MEDIUM_PAYLOAD: usize = 64 << 10;
/// Payload bytes subscribers of a large-payload workload may lag behind:
/// below the servers' default per-client queue bytes (64 MiB), so a
/// healthy subscriber is never dropped as a slow consumer.
const LARGE_QUEUE_BYTES: usize = 48 << 20;
/// Publishes each large-payload publisher keeps at least unanswered:
/// enough that the server always has a frame to read while it delivers
/// the last one.
pub const LARGE_IN_FLIGHT: usize = 16;
/// Small messages subscribers may lag behind publishers: below the
/// per-client queue these workloads run with
/// ([`crate::server::DEEP_QUEUE`]) by a quarter.
const SMALL_BACKLOG: u64 = 6144;
/// How long subscribers may take to receive what was published after the
/// window closed before the rest counts as lost.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often blocked reads wake up to check whether to stop.
const POLL: Duration = Duration::from_millis(50);
/// Longest a publisher waits for subscribers to catch up before it looks
/// at the clock again.
const BACKOFF: Duration = Duration::from_millis(5);

/// A workload's result, or why there is none.
pub type Outcome<T> = Result<T, Failure>;

/// Why a workload has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Left out of the run (see [`run_selected`]).
    #[error("not run")]
    NotRun,
    /// A TLS workload against a server that cannot serve TLS: it did not
    /// start with a TLS config, or refused a TLS client. Holds the reason.
    #[error("no TLS: {0}")]
    NoTls(String),
    /// The workload failed.
    #[error("{0}")]
    Error(String),
}

impl From<BenchError> for Failure {
    fn from(err: BenchError) -> Self {
        Self::Error(err.to_string())
    }
}

/// The server a workload needs: how its clients connect and its
/// per-client queue (`data_queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Plain or TLS.
    pub security: Security,
    /// The server's `data_queue`: [`DEEP_QUEUE`] for the small-message
    /// throughput workloads, [`DATA_QUEUE`] (the default) for the others.
    pub data_queue: usize,
}

/// How a workload's clients connect to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP; the server's config has no TLS keys.
    Plain,
    /// TLS on every socket; the server has a certificate.
    Tls,
}

/// A server to measure: where clients connect, its process (for memory)
/// and what keeps it running.
#[derive(Debug)]
pub struct Target {
    /// Loopback address of its TCP listener, with TLS settings when the
    /// target was started for [`Security::Tls`].
    pub endpoint: Endpoint,
    /// Its process id when it runs in another process.
    pub pid: Option<u32>,
    /// The external process, stopped when the target is dropped.
    pub process: Option<Server>,
}

/// Message throughput of one workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Publishes the server acknowledged.
    pub published: u64,
    /// Messages that should have been delivered.
    pub expected: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Deliveries to a client that did not subscribe to the topic.
    pub misrouted: u64,
    /// From the first publish to the last delivery.
    pub elapsed: Duration,
    /// Payload size.
    pub payload: usize,
    /// CPU use while the flow ran; `None` when not sampled.
    pub cpu: Option<CpuUse>,
}

/// CPU cores kept busy on average during a flow: CPU time (all threads)
/// over wall time, for the server and for the benchmark's own clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUse {
    /// The server process.
    pub server: f64,
    /// The benchmark process (its client threads).
    pub bench: f64,
}

/// CPU time of the server process `pid` and of this process.
fn cpu_pair(pid: u32) -> Result<(Duration, Duration), BenchError> {
    Ok((cpu_time(pid)?, cpu_time(std::process::id())?))
}

impl Throughput {
    /// Deliveries per second.
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Payload megabytes (10^6) delivered per second.
    pub fn megabytes(&self) -> f64 {
        self.rate() * self.payload as f64 / 1e6
    }

    /// Expected deliveries that did not arrive.
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }
}

/// Delivery latency at a fixed publish rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Messages published.
    pub published: u64,
    /// Messages received (each one a sample).
    pub delivered: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest.
    pub max: Duration,
}

/// Many subscriptions: how long they took, then publish throughput.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subscriptions {
    /// Subscriptions made (one SUBSCRIBE request each).
    pub count: usize,
    /// Wall time until every client had all its subscriptions answered.
    pub subscribe_time: Duration,
    /// Publishing to topics that each match one subscriber.
    pub publish: Throughput,
}

/// Server memory held by idle clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleMemory {
    /// Clients connected (control and data socket each).
    pub clients: usize,
    /// Growth of the server's resident memory per client, in bytes; `None`
    /// when the server runs in the benchmark's own process.
    pub bytes_per_client: Option<f64>,
}

/// Every workload's outcome against one server.
#[derive(Debug, Clone)]
pub struct Results {
    /// Fan-in: publishers -> 1 subscriber.
    pub fan_in: Outcome<Throughput>,
    /// Fan-in with every socket in TLS.
    pub fan_in_tls: Outcome<Throughput>,
    /// Fan-out: 1 publisher -> many subscribers.
    pub fan_out: Outcome<Throughput>,
    /// Fan-out with every socket in TLS.
    pub fan_out_tls: Outcome<Throughput>,
    /// Latency at a fixed rate.
    pub latency: Outcome<Latency>,
    /// 1 MiB payloads, 1 publisher -> 1 subscriber.
    pub large: Outcome<Throughput>,
    /// 64 KiB payloads, 1 publisher -> 1 subscriber.
    pub medium: Outcome<Throughput>,
    /// 1 MiB payloads, 2 publishers -> 2 subscribers of both.
    pub large_duo: Outcome<Throughput>,
    /// Many subscriptions.
    pub subscriptions: Outcome<Subscriptions>,
    /// Idle clients' memory.
    pub idle: Outcome<IdleMemory>,
}

/// The workloads, to pick some for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// 1. Publishers -> 1 subscriber.
    FanIn,
    /// 1. Publishers -> 1 subscriber, every socket in TLS.
    FanInTls,
    /// 2. 1 publisher -> many subscribers.
    FanOut,
    /// 2. 1 publisher -> many subscribers, every socket in TLS.
    FanOutTls,
    /// 3. Latency at a fixed rate.
    Latency,
    /// 4. 1 MiB payloads, 1 publisher -> 1 subscriber.
    Large,
    /// 4. 64 KiB payloads, 1 publisher -> 1 subscriber.
    Medium,
    /// 4. 1 MiB payloads, 2 publishers -> 2 subscribers.
    LargeDuo,
    /// 5. Many subscriptions.
    Subscriptions,
    /// 6. Idle clients' memory.
    Idle,
}

/// Starts a fresh server for one workload, configured for the given
/// security; for [`Security::Tls`] the target's endpoint carries TLS
/// settings the server's certificate verifies against.
pub type Start<'a> = dyn FnMut(Setup) -> Result<Target, BenchError> + 'a;

/// Runs every workload, each against a fresh server from `start`, so no
/// workload inherits another's clients or allocations.
pub fn run_all(scale: &Scale, start: &mut Start<'_>) -> Results {
    run_selected(scale, &[], start)
}

/// Runs the workloads in `only` (all when it is empty), each against a
/// fresh server from `start`; the others' outcome is [`Failure::NotRun`].
pub fn run_selected(scale: &Scale, only: &[Workload], start: &mut Start<'_>) -> Results {
    let plain = |data_queue| Setup {
        security: Security::Plain,
        data_queue,
    };
    let tls = |data_queue| Setup {
        security: Security::Tls,
        data_queue,
    };
    let wanted = |w: Workload| only.is_empty() || only.contains(&w);
    Results {
        fan_in: on_fresh(wanted(Workload::FanIn), plain(DEEP_QUEUE), start, |t| {
            fan_in(&t.endpoint, t.pid, scale)
        }),
        fan_in_tls: on_fresh(wanted(Workload::FanInTls), tls(DEEP_QUEUE), start, |t| {
            fan_in(&t.endpoint, t.pid, scale)
        }),
        fan_out: on_fresh(wanted(Workload::FanOut), plain(DEEP_QUEUE), start, |t| {
            fan_out(&t.endpoint, t.pid, scale)
        }),
        fan_out_tls: on_fresh(wanted(Workload::FanOutTls), tls(DEEP_QUEUE), start, |t| {
            fan_out(&t.endpoint, t.pid, scale)
        }),
        latency: on_fresh(wanted(Workload::Latency), plain(DATA_QUEUE), start, |t| {
            latency(&t.endpoint, scale)
        }),
        large: on_fresh(wanted(Workload::Large), plain(DATA_QUEUE), start, |t| {
            large(&t.endpoint, t.pid, scale, LargeShape::ONE_MIB)
        }),
        medium: on_fresh(wanted(Workload::Medium), plain(DATA_QUEUE), start, |t| {
            large(&t.endpoint, t.pid, scale, LargeShape::MEDIUM)
        }),
        large_duo: on_fresh(wanted(Workload::LargeDuo), plain(DATA_QUEUE), start, |t| {
            large(&t.endpoint, t.pid, scale, LargeShape::DUO)
        }),
        subscriptions: on_fresh(
            wanted(Workload::Subscriptions),
            plain(DEEP_QUEUE),
            start,
            |t| subscriptions(&t.endpoint, scale),
        ),
        idle: on_fresh(wanted(Workload::Idle), plain(DATA_QUEUE), start, |t| {
            idle_memory(&t.endpoint, t.pid, scale.idle_clients)
        }),
    }
}

/// Runs `workload` against a fresh server. For TLS, a server that does
/// not start with a TLS config, or refuses a first TLS client, yields
/// [`Failure::NoTls`]; failures after that are errors.
fn on_fresh<T>(
    wanted: bool,
    setup: Setup,
    start: &mut Start<'_>,
    workload: impl FnOnce(&Target) -> Result<T, BenchError>,
) -> Outcome<T> {
    if !wanted {
        return Err(Failure::NotRun);
    }
    let target = match setup.security {
        Security::Plain => start(setup)?,
        Security::Tls => {
            let no_tls = |err: BenchError| Failure::NoTls(err.to_string());
            let target = start(setup).map_err(no_tls)?;
            if target.endpoint.tls.is_none() {
                return Err(Failure::NoTls("the target has no TLS settings".into()));
            }
            drop(Control::connect(&target.endpoint).map_err(no_tls)?);
            target
        }
    };
    Ok(workload(&target)?)
}

/// Workload 1: `scale.fan_in_publishers` publishers -> 1 subscriber (on
/// `bench/in/+`), 32-byte payloads; samples the CPU time of process
/// `server` when given.
pub fn fan_in(
    endpoint: &Endpoint,
    server: Option<u32>,
    scale: &Scale,
) -> Result<Throughput, BenchError> {
    let (subscriber, stream) = subscriber(endpoint, &["bench/in/+".to_owned()])?;
    let flow = Flow {
        publishers: connect_many(endpoint, scale.fan_in_publishers)?,
        topics: Topics::Fixed(&|publisher| format!("bench/in/{publisher}")),
        payload: vec![b'x'; SMALL_PAYLOAD],
        subscribers: vec![stream],
        routing: Routing::Every,
        check: &|_, _| true,
        ack_window: 1024,
        backlog: SMALL_BACKLOG,
        window: scale.window,
        server,
    };
    let result = flow.run();
    drop(subscriber);
    result
}

/// Workload 2: 1 publisher -> `scale.fan_out_subscribers` subscribers of
/// one topic, 32-byte payloads; samples the CPU time of process `server`
/// when given.
pub fn fan_out(
    endpoint: &Endpoint,
    server: Option<u32>,
    scale: &Scale,
) -> Result<Throughput, BenchError> {
    let mut controls = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..scale.fan_out_subscribers {
        let (control, stream) = subscriber(endpoint, &["bench/out".to_owned()])?;
        controls.push(control);
        streams.push(stream);
    }
    let flow = Flow {
        publishers: connect_many(endpoint, 1)?,
        topics: Topics::Fixed(&|_| "bench/out".to_owned()),
        payload: vec![b'x'; SMALL_PAYLOAD],
        subscribers: streams,
        routing: Routing::Every,
        check: &|_, _| true,
        ack_window: 1024,
        backlog: SMALL_BACKLOG,
        window: scale.window,
        server,
    };
    flow.run()
}

/// The shape of a large-payload workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargeShape {
    /// Payload bytes per message.
    pub payload: usize,
    /// Publishers, each with [`LARGE_IN_FLIGHT`] publishes unanswered.
    pub publishers: usize,
    /// Subscribers, each receiving every message.
    pub subscribers: usize,
}

impl LargeShape {
    /// 1 MiB, 1 publisher -> 1 subscriber.
    pub const ONE_MIB: Self = Self {
        payload: LARGE_PAYLOAD,
        publishers: 1,
        subscribers: 1,
    };
    /// 64 KiB, 1 publisher -> 1 subscriber.
    pub const MEDIUM: Self = Self {
        payload: MEDIUM_PAYLOAD,
        publishers: 1,
        subscribers: 1,
    };
    /// 1 MiB, 2 publishers -> 2 subscribers.
    pub const DUO: Self = Self {
        payload: LARGE_PAYLOAD,
        publishers: 2,
        subscribers: 2,
    };
}

/// Workload 4: large payloads that keep the server busy: every publisher
/// pipelines [`LARGE_IN_FLIGHT`] publishes on its connection and every
/// subscriber (on `bench/large`) receives every message; samples the CPU
/// time of process `server` when given.
pub fn large(
    endpoint: &Endpoint,
    server: Option<u32>,
    scale: &Scale,
    shape: LargeShape,
) -> Result<Throughput, BenchError> {
    let mut controls = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..shape.subscribers {
        let (control, stream) = subscriber(endpoint, &["bench/large".to_owned()])?;
        controls.push(control);
        streams.push(stream);
    }
    // A publisher reads replies once `ack_window` are unanswered, down to
    // half of it: twice the target keeps at least that many in flight.
    let ack_window = 2 * LARGE_IN_FLIGHT;
    let flow = Flow {
        publishers: connect_many(endpoint, shape.publishers)?,
        topics: Topics::Each(&|_, _, topic| topic.push_str("bench/large")),
        payload: vec![b'x'; shape.payload],
        subscribers: streams,
        routing: Routing::Every,
        check: &|_, _| true,
        ack_window,
        // Room for every publish unanswered plus some on the way to the
        // subscribers, so the backlog does not throttle the pipeline, but
        // within the server's per-client queue bytes.
        backlog: (ack_window * shape.publishers + LARGE_IN_FLIGHT)
            .min(LARGE_QUEUE_BYTES / shape.payload) as u64,
        window: scale.window,
        server,
    };
    let result = flow.run();
    drop(controls);
    result
}

/// Workload 3: one publisher at `scale.latency_rate` messages per second
/// (each publish waits for its reply, like a plain client), one
/// subscriber; the latency is from just before the publish is written
/// until the subscriber has read the whole message.
pub fn latency(endpoint: &Endpoint, scale: &Scale) -> Result<Latency, BenchError> {
    const TOPIC: &str = "bench/lat";
    let (subscriber_control, mut stream) = subscriber(endpoint, &[TOPIC.to_owned()])?;
    let mut publisher = Control::connect(endpoint)?;
    stream.set_read_timeout(POLL)?;
    let origin = Instant::now();
    let target = AtomicU64::new(u64::MAX);
    let give_up = AtomicBool::new(false);
    let period = Duration::from_secs(1) / scale.latency_rate.max(1);
    let count = (scale.latency_window.as_secs_f64() / period.as_secs_f64()) as u64;
    let (published, histogram) = thread::scope(|s| {
        let reader = s.spawn(|| read_latencies(&mut stream, origin, &target, &give_up));
        let published = publish_paced(&mut publisher, TOPIC, origin, period, count);
        let delivered_all = published
            .as_ref()
            .map(|&n| target.store(n, Ordering::Release))
            .is_ok();
        if !delivered_all {
            give_up.store(true, Ordering::Release);
        }
        let watchdog = Instant::now() + DRAIN_TIMEOUT;
        while !reader.is_finished() && Instant::now() < watchdog {
            thread::sleep(POLL);
        }
        give_up.store(true, Ordering::Release);
        (published, reader.join())
    });
    drop(subscriber_control);
    let published = published?;
    let histogram = histogram.map_err(|_| BenchError::Thread)??;
    let at = |q: f64| Duration::from_nanos(histogram.value_at_quantile(q));
    Ok(Latency {
        published,
        delivered: histogram.len(),
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: Duration::from_nanos(histogram.max()),
    })
}

/// Publishes `count` messages stamped with their send time, one every
/// `period` on an absolute schedule.
fn publish_paced(
    publisher: &mut Control,
    topic: &str,
    origin: Instant,
    period: Duration,
    count: u64,
) -> Result<u64, BenchError> {
    let mut payload = [0u8; SMALL_PAYLOAD];
    for k in 0..count {
        let slot = origin + period * u32::try_from(k).unwrap_or(u32::MAX);
        if let Some(wait) = slot.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let sent = nanos_since(origin);
        payload[..8].copy_from_slice(&sent.to_le_bytes());
        publisher.queue_publish(topic, &payload)?;
        publisher.flush()?;
        publisher.read_replies(1)?;
    }
    Ok(count)
}

fn read_latencies(
    stream: &mut PushStream,
    origin: Instant,
    target: &AtomicU64,
    give_up: &AtomicBool,
) -> Result<Histogram<u64>, BenchError> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|err| BenchError::Protocol(err.to_string()))?;
    let mut failed = None;
    while histogram.len() < target.load(Ordering::Acquire) && !give_up.load(Ordering::Acquire) {
        stream.read_some(&mut |prefix, _| {
            let now = nanos_since(origin);
            match stamp(prefix) {
                Some(sent) => histogram.saturating_record(now.saturating_sub(sent).max(1)),
                None => failed = Some(BenchError::Protocol("unstamped latency message".into())),
            }
        })?;
        if let Some(err) = failed.take() {
            return Err(err);
        }
    }
    Ok(histogram)
}

/// The send time in a latency message: the first 8 payload bytes.
fn stamp(prefix: &[u8]) -> Option<u64> {
    let start = prefix.iter().position(|&b| b == 0)? + 1;
    let bytes = prefix.get(start..start + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn nanos_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Workload 5: `scale.subscription_clients` clients each subscribe
/// `scale.subscriptions_per_client` filters (half exact `bench/s/C/I`,
/// half wildcard `bench/w/C/I/+`), one SUBSCRIBE request each, all
/// clients at once; then publishers cycle over topics that each match
/// exactly one client's subscription.
pub fn subscriptions(endpoint: &Endpoint, scale: &Scale) -> Result<Subscriptions, BenchError> {
    let clients = scale.subscription_clients.max(1);
    let half = (scale.subscriptions_per_client / 2).max(1);
    let mut controls = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..clients {
        let control = Control::connect(endpoint)?;
        streams.push(control.open_data()?);
        controls.push(control);
    }
    let subscribe_time = subscribe_all(&mut controls, half)?;
    let tags: Vec<[String; 2]> = (0..clients)
        .map(|c| [format!("bench/s/{c}/"), format!("bench/w/{c}/")])
        .collect();
    let publishers = scale.fan_in_publishers.max(1);
    let topic = move |publisher: usize, k: u64, topic: &mut String| {
        let n = k as usize * publishers + publisher;
        let (client, slot) = (n % clients, (n / clients) % (2 * half));
        let name = if slot < half {
            format!("bench/s/{client}/{slot}")
        } else {
            format!("bench/w/{client}/{}/x", slot - half)
        };
        topic.push_str(&name);
    };
    let check = |subscriber: usize, prefix: &[u8]| {
        tags.get(subscriber)
            .is_some_and(|tags| tags.iter().any(|tag| prefix.starts_with(tag.as_bytes())))
    };
    let flow = Flow {
        publishers: connect_many(endpoint, publishers)?,
        topics: Topics::Each(&topic),
        payload: vec![b'x'; SMALL_PAYLOAD],
        subscribers: streams,
        routing: Routing::One,
        check: &check,
        ack_window: 1024,
        backlog: SMALL_BACKLOG,
        window: scale.window,
        server: None,
    };
    let publish = flow.run()?;
    drop(controls);
    Ok(Subscriptions {
        count: clients * 2 * half,
        subscribe_time,
        publish,
    })
}

/// Subscribes every client's filters, clients in parallel; returns the
/// wall time until the last reply.
fn subscribe_all(controls: &mut [Control], half: usize) -> Result<Duration, BenchError> {
    let filters: Vec<Vec<String>> = (0..controls.len())
        .map(|c| {
            (0..half)
                .map(|i| format!("bench/s/{c}/{i}"))
                .chain((0..half).map(|i| format!("bench/w/{c}/{i}/+")))
                .collect()
        })
        .collect();
    let started = Instant::now();
    thread::scope(|s| {
        let handles: Vec<_> = controls
            .iter_mut()
            .zip(&filters)
            .map(|(control, filters)| s.spawn(move || control.subscribe(filters)))
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| BenchError::Thread)?)
    })?;
    Ok(started.elapsed())
}

/// Workload 6: connects `clients` idle clients (control and data socket)
/// and measures the growth of the server's resident memory.
pub fn idle_memory(
    endpoint: &Endpoint,
    pid: Option<u32>,
    clients: usize,
) -> Result<IdleMemory, BenchError> {
    const CONNECTORS: usize = 4;
    // Warm up: the first session allocates the server's lazily built state.
    drop(subscriber(endpoint, &[])?);
    thread::sleep(Duration::from_millis(200));
    let before = pid.map(rss_kib).transpose()?;
    let held = thread::scope(|s| {
        let handles: Vec<_> = (0..CONNECTORS)
            .map(|i| {
                let share = clients / CONNECTORS + usize::from(i < clients % CONNECTORS);
                s.spawn(move || {
                    (0..share)
                        .map(|_| subscriber(endpoint, &[]))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles.into_iter().try_fold(Vec::new(), |mut all, h| {
            all.extend(h.join().map_err(|_| BenchError::Thread)??);
            Ok::<_, BenchError>(all)
        })
    })?;
    thread::sleep(Duration::from_millis(500));
    let after = pid.map(rss_kib).transpose()?;
    let bytes_per_client = before.zip(after).map(|(before, after)| {
        after.saturating_sub(before) as f64 * 1024.0 / held.len().max(1) as f64
    });
    Ok(IdleMemory {
        clients: held.len(),
        bytes_per_client,
    })
}

/// A client with a data socket, subscribed to `filters`.
fn subscriber(
    endpoint: &Endpoint,
    filters: &[String],
) -> Result<(Control, PushStream), BenchError> {
    let mut control = Control::connect(endpoint)?;
    let stream = control.open_data()?;
    if !filters.is_empty() {
        control.subscribe(filters)?;
    }
    Ok((control, stream))
}

fn connect_many(endpoint: &Endpoint, n: usize) -> Result<Vec<Control>, BenchError> {
    (0..n).map(|_| Control::connect(endpoint)).collect()
}

/// Which subscribers a publish reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routing {
    /// Every subscriber receives every message.
    Every,
    /// Each message reaches exactly one subscriber.
    One,
}

/// Writes the topic of publisher `p`'s `k`-th message.
type TopicFn<'a> = &'a (dyn Fn(usize, u64, &mut String) + Sync);

/// The topics a flow's publishers write to.
#[derive(Clone, Copy)]
enum Topics<'a> {
    /// Publisher `p` sends every message to the topic named by `f(p)`: its
    /// frames are encoded once ([`PublishBatch`]) and written a run at a
    /// time, so the publisher costs little more than its system calls.
    Fixed(&'a (dyn Fn(usize) -> String + Sync)),
    /// Each message is encoded as it is sent, to the topic the function
    /// writes; large payloads are written from the caller's buffer.
    Each(TopicFn<'a>),
}
/// Whether subscriber `s` may receive a message starting with these bytes.
type CheckFn<'a> = &'a (dyn Fn(usize, &[u8]) -> bool + Sync);

/// A throughput measurement: publishers, subscribers, bounds.
struct Flow<'a> {
    publishers: Vec<Control>,
    topics: Topics<'a>,
    payload: Vec<u8>,
    subscribers: Vec<PushStream>,
    routing: Routing,
    check: CheckFn<'a>,
    /// Publishes a publisher may have unanswered.
    ack_window: usize,
    /// Messages subscribers may lag behind publishers.
    backlog: u64,
    window: Duration,
    /// The server process whose CPU time to sample (with this process's),
    /// if any.
    server: Option<u32>,
}

/// Counters shared by a flow's threads.
struct Progress {
    routing: Routing,
    published: AtomicU64,
    delivered: Vec<AtomicU64>,
    misrouted: AtomicU64,
    /// Deliveries to wait for; `u64::MAX` while publishers run.
    target: AtomicU64,
    give_up: AtomicBool,
    /// Publishers waiting in [`Progress::wait_for_room`].
    waiting: AtomicUsize,
    /// Guards the wait on `caught_up` (holds nothing).
    room: Mutex<()>,
    /// Signalled by subscribers when deliveries free backlog room.
    caught_up: Condvar,
}

impl Progress {
    fn delivered(&self) -> u64 {
        self.delivered
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum()
    }

    /// Reserves up to `want` publishes such that messages published and
    /// not yet delivered to the slowest subscriber (or, when each goes to
    /// one subscriber, to anyone) stay within `limit`; returns how many
    /// were reserved, 0 when the backlog is full. Atomic across
    /// publishers, so several of them cannot overshoot together.
    fn reserve(&self, want: u64, limit: u64) -> u64 {
        loop {
            let published = self.published.load(Ordering::Acquire);
            let delivered = match self.routing {
                Routing::Every => self
                    .delivered
                    .iter()
                    .map(|d| d.load(Ordering::Relaxed))
                    .min(),
                Routing::One => Some(self.delivered()),
            };
            let backlog = published.saturating_sub(delivered.unwrap_or(published));
            let n = want.min(limit.saturating_sub(backlog));
            if n == 0 {
                return 0;
            }
            let reserved = self.published.compare_exchange(
                published,
                published + n,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if reserved.is_ok() {
                return n;
            }
        }
    }

    /// Reserves at least `min(want, limit / 8)` publishes (see
    /// [`Progress::reserve`]), blocking until subscribers have caught up
    /// enough or `BACKOFF` passed; returns 0 if nothing was reserved.
    /// Waiting on a condition variable instead of sleeping in short steps
    /// keeps a lagging publisher off the CPU until there is room for a
    /// whole run of frames.
    fn wait_for_room(&self, want: u64, limit: u64) -> u64 {
        let least = want.min(limit / 8).max(1);
        let mut guard = self.room.lock().unwrap_or_else(PoisonError::into_inner);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        while self.room(limit) < least && !self.give_up.load(Ordering::Acquire) {
            let (next, waited) = self
                .caught_up
                .wait_timeout(guard, BACKOFF)
                .unwrap_or_else(PoisonError::into_inner);
            guard = next;
            if waited.timed_out() {
                break;
            }
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
        self.reserve(want, limit)
    }

    /// Publishes the backlog `limit` still has room for.
    fn room(&self, limit: u64) -> u64 {
        let published = self.published.load(Ordering::SeqCst);
        let delivered = match self.routing {
            Routing::Every => self
                .delivered
                .iter()
                .map(|d| d.load(Ordering::SeqCst))
                .min(),
            Routing::One => Some(self.delivered()),
        };
        limit.saturating_sub(published.saturating_sub(delivered.unwrap_or(published)))
    }

    /// Counts `got` deliveries to subscriber `counter` and wakes waiting
    /// publishers.
    fn deliver(&self, counter: &AtomicU64, got: u64) {
        counter.fetch_add(got, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _guard = self.room.lock().unwrap_or_else(PoisonError::into_inner);
            self.caught_up.notify_all();
        }
    }

    fn done(&self) -> bool {
        self.give_up.load(Ordering::Acquire)
            || self.delivered() >= self.target.load(Ordering::Acquire)
    }
}

impl Flow<'_> {
    fn run(self) -> Result<Throughput, BenchError> {
        let progress = Progress {
            routing: self.routing,
            published: AtomicU64::new(0),
            delivered: self.subscribers.iter().map(|_| AtomicU64::new(0)).collect(),
            misrouted: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            give_up: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            room: Mutex::new(()),
            caught_up: Condvar::new(),
        };
        let subscriber_count = self.subscribers.len() as u64;
        let cpu_before = self.server.map(cpu_pair).transpose()?;
        let started = Instant::now();
        let deadline = started + self.window;
        let (published, last, cpu_after) = thread::scope(|s| {
            let readers: Vec<_> = self
                .subscribers
                .into_iter()
                .enumerate()
                .map(|(index, stream)| {
                    let (progress, check) = (&progress, self.check);
                    s.spawn(move || count_deliveries(stream, index, progress, check, started))
                })
                .collect();
            let writers: Vec<_> = self
                .publishers
                .into_iter()
                .enumerate()
                .map(|(index, control)| {
                    let (progress, topics, payload) = (&progress, self.topics, &self.payload[..]);
                    let bounds = (self.ack_window, self.backlog);
                    s.spawn(move || {
                        publish_until(control, index, topics, payload, bounds, progress, deadline)
                    })
                })
                .collect();
            let published = join_sum(writers);
            match &published {
                Ok(n) => progress.target.store(
                    match self.routing {
                        Routing::Every => n * subscriber_count,
                        Routing::One => *n,
                    },
                    Ordering::Release,
                ),
                Err(_) => progress.give_up.store(true, Ordering::Release),
            }
            let watchdog = Instant::now() + DRAIN_TIMEOUT;
            while !progress.done() && Instant::now() < watchdog {
                thread::sleep(Duration::from_millis(5));
            }
            // Before the readers' last poll timeout: the server is idle then.
            let cpu_after = self
                .server
                .map(|pid| Ok::<_, BenchError>((cpu_pair(pid)?, started.elapsed())))
                .transpose();
            progress.give_up.store(true, Ordering::Release);
            let last = readers.into_iter().try_fold(started, |last, h| {
                Ok::<_, BenchError>(last.max(h.join().map_err(|_| BenchError::Thread)??))
            });
            (published, last, cpu_after)
        });
        let published = published?;
        let last = last?;
        let cpu = cpu_before.zip(cpu_after?).map(|(before, (after, wall))| {
            let cores = |from: Duration, to: Duration| {
                to.saturating_sub(from).as_secs_f64() / wall.as_secs_f64().max(1e-9)
            };
            CpuUse {
                server: cores(before.0, after.0),
                bench: cores(before.1, after.1),
            }
        });
        Ok(Throughput {
            published,
            expected: match self.routing {
                Routing::Every => published * subscriber_count,
                Routing::One => published,
            },
            delivered: progress.delivered(),
            misrouted: progress.misrouted.load(Ordering::Relaxed),
            elapsed: last.duration_since(started),
            payload: self.payload.len(),
            cpu,
        })
    }
}

fn join_sum(
    handles: Vec<thread::ScopedJoinHandle<'_, Result<u64, BenchError>>>,
) -> Result<u64, BenchError> {
    handles.into_iter().try_fold(0, |sum, h| {
        Ok(sum + h.join().map_err(|_| BenchError::Thread)??)
    })
}

/// How a publisher makes its frames (see [`Topics`]).
enum Frames<'a> {
    /// Encoded once, written a run at a time.
    Encoded(PublishBatch),
    /// Encoded one by one.
    Each(TopicFn<'a>),
}

/// One publisher: pipelined publishes until `deadline`, at most
/// `ack_window` unanswered and at most `backlog` undelivered.
fn publish_until(
    mut control: Control,
    index: usize,
    topics: Topics<'_>,
    payload: &[u8],
    (ack_window, backlog): (usize, u64),
    progress: &Progress,
    deadline: Instant,
) -> Result<u64, BenchError> {
    let batch = (ack_window / 4).max(1);
    let frames = match topics {
        Topics::Fixed(name) => Frames::Encoded(PublishBatch::new(&name(index), payload, batch)?),
        Topics::Each(topic_of) => Frames::Each(topic_of),
    };
    let (mut sent, mut unanswered) = (0u64, 0usize);
    let mut topic = String::new();
    while Instant::now() < deadline {
        let room = (ack_window - unanswered).min(batch) as u64;
        let n = match progress.reserve(room, backlog) {
            0 => progress.wait_for_room(room, backlog) as usize,
            n => n as usize,
        };
        if n == 0 {
            continue;
        }
        match &frames {
            Frames::Encoded(encoded) => control.send_batch(encoded, n)?,
            Frames::Each(topic_of) => {
                for k in 0..n {
                    topic.clear();
                    topic_of(index, sent + k as u64, &mut topic);
                    control.queue_publish(&topic, payload)?;
                }
                control.flush()?;
            }
        }
        sent += n as u64;
        unanswered += n;
        if unanswered >= ack_window {
            let answered = control.read_replies(unanswered - ack_window / 2)?;
            unanswered = unanswered.saturating_sub(answered);
        }
    }
    while unanswered > 0 {
        let answered = control.read_replies(unanswered)?;
        unanswered = unanswered.saturating_sub(answered);
    }
    Ok(sent)
}

/// One subscriber: counts deliveries until the flow is done; returns when
/// its last delivery arrived.
fn count_deliveries(
    mut stream: PushStream,
    index: usize,
    progress: &Progress,
    check: CheckFn<'_>,
    started: Instant,
) -> Result<Instant, BenchError> {
    stream.set_read_timeout(POLL)?;
    let mut last = started;
    let counter = progress.delivered.get(index).ok_or(BenchError::Thread)?;
    while !progress.done() {
        let (mut got, mut wrong) = (0u64, 0u64);
        stream.read_some(&mut |prefix, _| {
            got += 1;
            wrong += u64::from(!check(index, prefix));
        })?;
        if got > 0 {
            last = Instant::now();
            progress.deliver(counter, got);
            progress.misrouted.fetch_add(wrong, Ordering::Relaxed);
        }
    }
    Ok(last)
}

const _: () = assert!(SMALL_BACKLOG < DEEP_QUEUE as u64);
const _: () = assert!(8 * LARGE_IN_FLIGHT < DATA_QUEUE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_reads_the_first_payload_bytes() {
        let mut prefix = b"bench/lat\0".to_vec();
        prefix.extend_from_slice(&42u64.to_le_bytes());
        assert_eq!(stamp(&prefix), Some(42));
        assert_eq!(stamp(b"bench/lat\0abc"), None);
        assert_eq!(stamp(b"no separator"), None);
    }

    #[test]
    fn throughput_rates_and_loss() {
        let t = Throughput {
            published: 100,
            expected: 200,
            delivered: 150,
            misrouted: 0,
            elapsed: Duration::from_millis(500),
            payload: 1_000_000,
            cpu: None,
        };
        assert_eq!(t.lost(), 50);
        assert!((t.rate() - 300.0).abs() < 1e-6);
        assert!((t.megabytes() - 300.0).abs() < 1e-6);
    }
}
