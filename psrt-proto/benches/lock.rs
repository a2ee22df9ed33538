//! How long the broker lock is held per publish, plain against TLS.
//!
//! Run with `cargo bench -p psrt-proto --bench lock`. A logged-in control
//! [`Connection`] (plain, or TLS through rustls with an rcgen certificate)
//! is driven through [`SocketTask::turn`] as a runtime drives it: one
//! measured iteration is one read holding [`BATCH`] publishes of a
//! 32-byte payload (encrypted beforehand, outside the measurement, when
//! TLS is on), then the write of the replies. divan's times are the whole
//! turn per batch (its `item/s` column is per publish); the time the
//! [`BrokerLock`] closure ran is measured with `Instant` for every batch
//! and printed per publish after divan's table (median and mean over the
//! batches, and the TLS/plain ratio of the medians). One read costs one
//! acquisition in both modes.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use divan::Bencher;
use divan::counter::ItemsCount;
use psrt_proto::broker::{AuthConfig, Broker};
use psrt_proto::conn::{BrokerLock, ConnConfig, Connection, SocketTask, Transport, Turn, Wakeup};
use psrt_proto::tls::{TlsSession, client_config, server_config_from_pem};
use psrt_proto::wire::SocketKind;
use psrt_proto::wire::request::{self, Greeting};
use psrt_proto::{Limits, TxBuf};
use rand::SeedableRng;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
};

/// Publishes in one read.
const BATCH: usize = 64;
/// The payload of every publish.
const PAYLOAD: [u8; 32] = [0x5A; 32];
const TOPIC: &str = "site/7/dev/42/temp";

/// Lock-held time of every measured batch, per mode, for the summary.
static PLAIN: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
static TLS: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

/// Median and mean lock-held nanoseconds per publish of `batches`.
fn per_publish(batches: &Mutex<Vec<Duration>>) -> Option<(f64, f64)> {
    let mut held = batches.lock().ok()?.clone();
    if held.is_empty() {
        return None;
    }
    held.sort();
    let median = held[held.len() / 2].as_nanos() as f64;
    let mean = held.iter().sum::<Duration>().as_nanos() as f64 / held.len() as f64;
    Some((median / BATCH as f64, mean / BATCH as f64))
}

fn main() {
    divan::main();
    let plain = per_publish(&PLAIN);
    let tls = per_publish(&TLS);
    println!(
        "\nbroker lock held per publish (one acquisition per read of {BATCH} publishes, {} B payloads):",
        PAYLOAD.len()
    );
    for (name, figures) in [("plain", plain), ("tls", tls)] {
        if let Some((median, mean)) = figures {
            println!("  {name:5} median {median:6.1} ns, mean {mean:6.1} ns");
        }
    }
    if let (Some((plain, _)), Some((tls, _))) = (plain, tls) {
        println!("  tls / plain (medians): {:.2}x", tls / plain);
    }
}

/// The clock of the bench; the core never reads it itself.
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}

/// A broker "lock" that sums the time its closure runs.
struct TimedLock {
    broker: RefCell<Broker>,
    held: Cell<Duration>,
}

impl BrokerLock for TimedLock {
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        let mut broker = self.broker.borrow_mut();
        let start = clock();
        let result = f(&mut broker);
        self.held.set(self.held.get() + start.elapsed());
        result
    }
}

/// The client end: plain bytes, or a rustls client session.
struct Client {
    tls: Option<TlsSession>,
}

impl Client {
    /// What the socket carries for `plain`.
    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let Some(tls) = &mut self.tls else {
            return plain.to_vec();
        };
        tls.write_plaintext(plain).expect("client write");
        let mut wire = Vec::new();
        tls.take_ciphertext(&mut wire);
        wire
    }

    /// Takes in what the server wrote (handshake flights).
    fn absorb(&mut self, wire: &[u8]) {
        if let Some(tls) = &mut self.tls {
            tls.feed_ciphertext(&mut BytesMut::from(wire))
                .expect("server records");
            tls.take_plaintext(&mut BytesMut::new()).expect("plaintext");
        }
    }

    /// One batch of publishes, as the socket carries it.
    fn batch(&mut self) -> Vec<u8> {
        let mut frames = BytesMut::new();
        for _ in 0..BATCH {
            request::encode_publish(&mut frames, 0x7F, TOPIC.as_bytes(), &PAYLOAD);
        }
        self.seal(&frames)
    }
}

/// The server end: one control socket as a runtime drives it.
struct Server {
    lock: TimedLock,
    conn: Connection,
    task: SocketTask,
    tx: TxBuf,
    now: Instant,
}

impl Server {
    /// Hands over one read, then writes out every reply.
    fn serve(&mut self, wire: &[u8]) {
        self.conn.read_buf().extend_from_slice(wire);
        self.turn(Wakeup::Read(Ok(wire.len())));
        let written = self.tx.len();
        self.turn(Wakeup::Wrote(Ok(written)));
    }

    /// [`Self::serve`], returning what was written.
    fn exchange(&mut self, wire: &[u8]) -> Vec<u8> {
        self.conn.read_buf().extend_from_slice(wire);
        self.turn(Wakeup::Read(Ok(wire.len())));
        let out = self.tx.to_vec();
        self.turn(Wakeup::Wrote(Ok(out.len())));
        out
    }

    fn turn(&mut self, wakeup: Wakeup) {
        let turn = self.task.turn(
            Some(wakeup),
            &mut self.conn,
            &self.lock,
            &mut self.tx,
            self.now,
            true,
        );
        assert!(matches!(turn, Turn::Wait { .. }), "the socket stays open");
    }
}

/// A server configuration and a client configuration trusting its CA.
fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let server = server_config_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .expect("server config");
    let client = client_config(Some(ca.pem().as_bytes())).expect("client config");
    (server, client)
}

/// A control socket logged in anonymously, and its client.
fn session(tls: bool) -> (Server, Client) {
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
    let broker = Broker::new(Limits::default(), AuthConfig::open(), rng);
    let configs = tls.then(tls_configs);
    let config = Arc::new(ConnConfig {
        tls: configs.as_ref().map(|(server, _)| server.clone()),
        allow_no_tls: true,
        tls_client_cn_login: false,
    });
    let now = clock();
    let conn = Connection::new(
        config,
        Transport::Tcp,
        "bench".into(),
        Waker::noop().clone(),
        broker.limits().timeout,
        now,
    );
    let mut server = Server {
        lock: TimedLock {
            broker: RefCell::new(broker),
            held: Cell::new(Duration::ZERO),
        },
        conn,
        task: SocketTask::new(Duration::from_secs(5)),
        tx: TxBuf::new(),
        now,
    };
    let mut client = Client {
        tls: configs
            .map(|(_, client)| TlsSession::client(client, "localhost").expect("client session")),
    };
    let mut greeting = BytesMut::new();
    let kind = SocketKind::Control;
    request::encode_greeting(&mut greeting, Greeting { kind, tls });
    server.exchange(&greeting);
    while let Some(tls) = &mut client.tls
        && tls.is_handshaking()
    {
        let mut flight = Vec::new();
        tls.take_ciphertext(&mut flight);
        let back = server.exchange(&flight);
        client.absorb(&back);
    }
    let mut login = BytesMut::new();
    request::encode_login(&mut login, "", b"");
    let wire = client.seal(&login);
    client.absorb(&server.exchange(&wire));
    assert!(server.conn.session().is_some(), "logged in");
    (server, client)
}

/// One read of [`BATCH`] publishes through a whole turn; the summary after
/// divan's table gives the part of it spent holding the broker lock.
#[divan::bench(args = ["plain", "tls"])]
fn publish_batch(bencher: Bencher, mode: &str) {
    let tls = mode == "tls";
    let (mut server, mut client) = session(tls);
    let mut held = Vec::new();
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| client.batch())
        .bench_local_values(|wire| {
            server.lock.held.set(Duration::ZERO);
            server.serve(&wire);
            held.push(server.lock.held.get());
        });
    let totals = if tls { &TLS } else { &PLAIN };
    if let Ok(mut totals) = totals.lock() {
        totals.extend(held);
    }
}
