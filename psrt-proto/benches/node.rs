//! Whole-node costs: a PUBLISH decoded, routed, queued and taken out again
//! for the data socket, through the in-memory [`Node`] exactly as a driver
//! would run it (minus the sockets).
//!
//! Run with `cargo bench -p psrt-proto --bench node`. One measured
//! iteration is a batch of [`BATCH`] publishes followed by draining every
//! data socket (and the publisher's replies), so the sending side is
//! counted too; divan's `item/s` column is per publish, and the per-publish
//! time is the median divided by [`BATCH`]. The drain goes through
//! [`Node::recv`], which copies the bytes into a `Vec` where a real driver
//! would hand the shared chunks to `writev`: a slight over-estimate. The
//! cost of one more subscriber is `(fan_out(1000) - fan_out(1)) / 999`
//! per publish, at each drain interval.

use std::cell::RefCell;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use psrt_proto::broker::{AuthConfig, Broker};
use psrt_proto::conn::{ConnConfig, Connection, SocketTask, Transport, Turn, Wakeup};
use psrt_proto::node::{ConnId, Node};
use psrt_proto::wire::request::{self, DataHello, Greeting};
use psrt_proto::wire::{SocketKind, op};
use psrt_proto::{Limits, TxBuf};
use rand::SeedableRng;

fn main() {
    divan::main();
}

/// Publishes between two drains; well below the default data queue (1024).
const BATCH: usize = 512;
/// The payload of every bench message.
const PAYLOAD: [u8; 32] = [0x5A; 32];
const TOPIC: &str = "site/7/dev/42/temp";

/// A base instant; the core never reads the clock itself.
#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

/// A node with one publisher and some subscribers of [`TOPIC`].
struct Bench {
    node: Node,
    now: Instant,
    publisher: ConnId,
    data_sockets: Vec<ConnId>,
    frame: Vec<u8>,
}

impl Bench {
    fn new(subscribers: usize) -> Self {
        let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
        let limits = Limits {
            max_sessions: subscribers + 10,
            ..Limits::default()
        };
        let broker = Broker::new(limits, AuthConfig::open(), rng);
        let config = ConnConfig {
            tls: None,
            allow_no_tls: true,
            tls_client_cn_login: false,
        };
        let mut node = Node::new(broker, config);
        let now = start();
        let mut subscribe = BytesMut::new();
        request::encode_topics(&mut subscribe, op::SUBSCRIBE, [TOPIC]);
        let data_sockets = (0..subscribers)
            .map(|_| {
                let (control, token) = login(&mut node, now);
                node.send(control, &subscribe, now);
                assert_eq!(node.recv(control, now), [1]);
                data_socket(&mut node, now, token)
            })
            .collect();
        let (publisher, _) = login(&mut node, now);
        let mut frame = BytesMut::new();
        request::encode_publish(&mut frame, 0x7F, TOPIC.as_bytes(), &PAYLOAD);
        Self {
            node,
            now,
            publisher,
            data_sockets,
            frame: frame.to_vec(),
        }
    }

    /// `publishes` publishes, then every socket drained.
    fn batch(&mut self, publishes: usize) {
        for _ in 0..publishes {
            self.node.send(self.publisher, &self.frame, self.now);
        }
        self.drain();
    }

    fn drain(&mut self) {
        black_box(self.node.recv(self.publisher, self.now));
        for &d in &self.data_sockets {
            black_box(self.node.recv(d, self.now));
        }
    }
}

/// An anonymous control socket, logged in: its id and token.
fn login(node: &mut Node, now: Instant) -> (ConnId, [u8; 32]) {
    let c = node.connect(Transport::Tcp, "bench", now);
    let mut hello = BytesMut::new();
    let greeting = Greeting {
        kind: SocketKind::Control,
        tls: false,
    };
    request::encode_greeting(&mut hello, greeting);
    request::encode_login(&mut hello, "", b"");
    node.send(c, &hello, now);
    let out = node.recv(c, now);
    let token = out
        .get(4..36)
        .and_then(|t| t.try_into().ok())
        .expect("login answered with a token");
    (c, token)
}

/// The data socket of `token`, bound.
fn data_socket(node: &mut Node, now: Instant, token: [u8; 32]) -> ConnId {
    let d = node.connect(Transport::Tcp, "bench", now);
    let mut hello = BytesMut::new();
    let greeting = Greeting {
        kind: SocketKind::Data,
        tls: false,
    };
    request::encode_greeting(&mut hello, greeting);
    let data_hello = DataHello {
        token,
        timeout_secs: 5,
    };
    request::encode_data_hello(&mut hello, &data_hello);
    node.send(d, &hello, now);
    assert_eq!(node.recv(d, now), [0xEE, 0xAB, 0x01, 0x00, 0x01]);
    d
}

/// (a) A 32-byte publish to one subscriber: decode, ACL, route, queue,
/// reply, and its share of the data socket's drain.
#[divan::bench]
fn publish_32b_to_one_subscriber(bencher: Bencher) {
    let mut bench = Bench::new(1);
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench_local(|| bench.batch(BATCH));
}

/// The same publish with no subscriber: what decoding and routing alone
/// cost.
#[divan::bench]
fn publish_32b_to_nobody(bencher: Bencher) {
    let mut bench = Bench::new(0);
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench_local(|| bench.batch(BATCH));
}

/// (b) One publish fanned out to `subscribers` data sockets, with the
/// sockets drained every `DRAIN` publishes: how deep the queues grow
/// between two writes decides whether they stay in cache.
#[divan::bench(consts = [32, 512], args = [1, 1000])]
fn fan_out<const DRAIN: usize>(bencher: Bencher, subscribers: usize) {
    let mut bench = Bench::new(subscribers);
    bencher
        .counter(ItemsCount::new(DRAIN))
        .bench_local(|| bench.batch(DRAIN));
}

/// A driver's view of the same fan-out, without [`Node`]'s copying: the
/// connections are driven through [`SocketTask::turn`] directly and each
/// socket's [`TxBuf`] is written out whole, as one `writev` would take it.
struct Direct {
    broker: RefCell<Broker>,
    now: Instant,
    publisher: Socket,
    /// Subscribers' control connections stay alive, unused.
    controls: Vec<Socket>,
    data: Vec<Socket>,
    frame: Vec<u8>,
}

/// One socket as a driver holds it.
struct Socket {
    conn: Connection,
    task: SocketTask,
    tx: TxBuf,
}

impl Socket {
    fn new(broker: &RefCell<Broker>, config: &Arc<ConnConfig>, now: Instant) -> Self {
        let timeout = broker.borrow().limits().timeout;
        let conn = Connection::new(
            config.clone(),
            Transport::Tcp,
            "bench".into(),
            Waker::noop().clone(),
            timeout,
            now,
        );
        Self {
            conn,
            task: SocketTask::new(Duration::from_secs(5)),
            tx: TxBuf::new(),
        }
    }

    fn turn(&mut self, wakeup: Wakeup, broker: &RefCell<Broker>, now: Instant) {
        let turn = self.task.turn(
            Some(wakeup),
            &mut self.conn,
            broker,
            &mut self.tx,
            now,
            true,
        );
        assert!(matches!(turn, Turn::Wait { .. }), "the socket stays open");
    }

    /// One read of `bytes`.
    fn read(&mut self, broker: &RefCell<Broker>, now: Instant, bytes: &[u8]) {
        self.conn.read_buf().extend_from_slice(bytes);
        self.turn(Wakeup::Read(Ok(bytes.len())), broker, now);
    }

    /// Writes out the whole `TxBuf`, returning a copy of what it held.
    fn write_copy(&mut self, broker: &RefCell<Broker>, now: Instant) -> Vec<u8> {
        let out = self.tx.to_vec();
        self.turn(Wakeup::Wrote(Ok(out.len())), broker, now);
        out
    }

    /// Writes out the whole `TxBuf` without looking at it.
    fn write(&mut self, broker: &RefCell<Broker>, now: Instant) {
        let len = black_box(self.tx.len());
        self.turn(Wakeup::Wrote(Ok(len)), broker, now);
    }
}

impl Direct {
    fn new(subscribers: usize) -> Self {
        let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
        let limits = Limits {
            max_sessions: subscribers + 10,
            ..Limits::default()
        };
        let broker = RefCell::new(Broker::new(limits, AuthConfig::open(), rng));
        let config = Arc::new(ConnConfig {
            tls: None,
            allow_no_tls: true,
            tls_client_cn_login: false,
        });
        let now = start();
        let mut subscribe = BytesMut::new();
        request::encode_topics(&mut subscribe, op::SUBSCRIBE, [TOPIC]);
        let mut controls = Vec::new();
        let mut data = Vec::new();
        for _ in 0..subscribers {
            let (mut control, token) = direct_login(&broker, &config, now);
            control.read(&broker, now, &subscribe);
            control.write(&broker, now);
            controls.push(control);
            let mut hello = BytesMut::new();
            let greeting = Greeting {
                kind: SocketKind::Data,
                tls: false,
            };
            request::encode_greeting(&mut hello, greeting);
            let data_hello = DataHello {
                token,
                timeout_secs: 5,
            };
            request::encode_data_hello(&mut hello, &data_hello);
            let mut socket = Socket::new(&broker, &config, now);
            socket.read(&broker, now, &hello);
            socket.write(&broker, now);
            data.push(socket);
        }
        let (publisher, _) = direct_login(&broker, &config, now);
        let mut frame = BytesMut::new();
        request::encode_publish(&mut frame, 0x7F, TOPIC.as_bytes(), &PAYLOAD);
        Self {
            broker,
            now,
            publisher,
            controls,
            data,
            frame: frame.to_vec(),
        }
    }

    /// `publishes` publishes, then every socket written out.
    fn batch(&mut self, publishes: usize) {
        for _ in 0..publishes {
            self.publisher.read(&self.broker, self.now, &self.frame);
        }
        self.publisher.write(&self.broker, self.now);
        for socket in &mut self.data {
            // The broker woke every subscriber (a noop waker here).
            socket.turn(Wakeup::Woken, &self.broker, self.now);
            socket.write(&self.broker, self.now);
        }
        black_box(self.controls.len());
    }
}

fn direct_login(
    broker: &RefCell<Broker>,
    config: &Arc<ConnConfig>,
    now: Instant,
) -> (Socket, [u8; 32]) {
    let mut socket = Socket::new(broker, config, now);
    let mut hello = BytesMut::new();
    let greeting = Greeting {
        kind: SocketKind::Control,
        tls: false,
    };
    request::encode_greeting(&mut hello, greeting);
    request::encode_login(&mut hello, "", b"");
    socket.read(broker, now, &hello);
    let out = socket.write_copy(broker, now);
    let token = out
        .get(4..36)
        .and_then(|t| t.try_into().ok())
        .expect("login answered with a token");
    (socket, token)
}

/// (b) as a driver sees it: no copy of the pushed bytes.
#[divan::bench(consts = [32, 512], args = [1, 1000])]
fn fan_out_direct<const DRAIN: usize>(bencher: Bencher, subscribers: usize) {
    let mut direct = Direct::new(subscribers);
    bencher
        .counter(ItemsCount::new(DRAIN))
        .bench_local(|| direct.batch(DRAIN));
}
