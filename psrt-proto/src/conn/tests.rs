//! Unit tests of the connection and its driver loop.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::SeedableRng;

use super::*;
use crate::broker::AuthConfig;
use crate::wire::push;

const GREETING: [u8; 3] = [0xEE, 0xAA, 0x00];

/// A base instant; the core itself never reads the clock.
#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

fn setup(now: Instant) -> (Broker, Connection) {
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
    let broker = Broker::new(crate::Limits::default(), AuthConfig::open(), rng);
    let config = Arc::new(ConnConfig {
        tls: None,
        allow_no_tls: true,
        tls_client_cn_login: false,
    });
    let timeout = broker.limits().timeout;
    let conn = Connection::new(
        config,
        Transport::Tcp,
        "p".into(),
        Waker::noop().clone(),
        timeout,
        now,
    );
    (broker, conn)
}

fn wait(turn: Turn) -> (bool, Option<Instant>) {
    match turn {
        Turn::Wait { read, deadline, .. } => (read, deadline),
        Turn::Close => panic!("closed too early"),
    }
}

/// A socket that sent its greeting, with the answer waiting in `tx`.
fn greeted(now: Instant) -> (RefCell<Broker>, Connection, SocketTask, TxBuf) {
    let (broker, mut conn) = setup(now);
    let broker = RefCell::new(broker);
    conn.read_buf().extend_from_slice(&GREETING);
    let mut task = SocketTask::new(Duration::from_secs(5));
    let mut tx = TxBuf::new();
    let read = Some(Wakeup::Read(Ok(GREETING.len())));
    wait(task.turn(read, &mut conn, &broker, &mut tx, now, true));
    assert!(!tx.is_empty(), "the greeting answer waits");
    (broker, conn, task, tx)
}

/// A plain TCP control session, logged in anonymously.
fn logged_in(now: Instant) -> Connection {
    let (broker, mut conn) = setup(now);
    let broker = RefCell::new(broker);
    let mut hello = BytesMut::from(&GREETING[..]);
    request::encode_login(&mut hello, "", b"");
    let mut task = SocketTask::new(Duration::from_secs(5));
    feed(&mut task, &mut conn, &broker, &hello, now);
    assert!(matches!(conn.state, State::Control { .. }), "logged in");
    conn
}

/// Hands `bytes` to the connection as one read; returns what it answered.
fn feed<L: BrokerLock>(
    task: &mut SocketTask,
    conn: &mut Connection,
    broker: &L,
    bytes: &[u8],
    now: Instant,
) -> Vec<u8> {
    conn.read_buf().extend_from_slice(bytes);
    let mut tx = TxBuf::new();
    let read = Some(Wakeup::Read(Ok(bytes.len())));
    wait(task.turn(read, conn, broker, &mut tx, now, true));
    tx.to_vec()
}

#[test]
fn a_large_publish_is_reserved_whole_once_enough_of_it_arrived() {
    let now = start();
    let mut conn = logged_in(now);
    let body = 1_000_000usize;
    let mut head = BytesMut::from(&[crate::wire::op::PUBLISH, 0x7F][..]);
    head.extend_from_slice(&u32::try_from(body).expect("small").to_le_bytes());
    head.extend_from_slice(b"t\0");
    conn.read_buf().extend_from_slice(&head);
    conn.handle_input(now);
    let ReadInto::Input(bare) = conn.read_into() else {
        panic!("a bare header gets no frame buffer of its own");
    };
    assert!(
        bare.capacity() < 256 * 1024,
        "a bare header reserves nothing whole: {}",
        bare.capacity()
    );
    conn.read_buf().extend_from_slice(&vec![0u8; 150_000]);
    conn.handle_input(now);
    let ReadInto::Frame(frame) = conn.read_into() else {
        panic!("enough of the frame came for a buffer of its own");
    };
    let whole = frame.capacity();
    assert!(whole >= 6 + body, "room for the whole frame: {whole}");
    assert!(whole < 2 * (6 + body), "not doubled past it: {whole}");
    assert_eq!(
        frame.len(),
        head.len() + 150_000,
        "what came so far moved in"
    );
}

#[test]
fn a_fresh_socket_reads_until_its_timeout() {
    let now = start();
    let (broker, mut conn) = setup(now);
    let timeout = broker.limits().timeout;
    let broker = RefCell::new(broker);
    let mut tx = TxBuf::new();
    let mut task = SocketTask::new(Duration::from_secs(5));
    let (read, deadline) = wait(task.turn(None, &mut conn, &broker, &mut tx, now, true));
    assert!(read);
    assert_eq!(deadline, Some(now + timeout));
}

#[test]
fn a_draining_socket_stops_reading_and_closes_once_flushed() {
    let now = start();
    let (broker, mut conn, mut task, mut tx) = greeted(now);
    let turn = task.turn(
        Some(Wakeup::Stopping),
        &mut conn,
        &broker,
        &mut tx,
        now,
        true,
    );
    assert!(task.is_draining());
    let (read, deadline) = wait(turn);
    assert!(!read, "draining sockets take no more input");
    assert_eq!(deadline, Some(now + DRAIN_RECHECK));
    let wrote = Some(Wakeup::Wrote(Ok(tx.len())));
    let turn = task.turn(wrote, &mut conn, &broker, &mut tx, now, true);
    assert!(matches!(turn, Turn::Close));
    assert!(conn.is_closed(), "closed for the broker too");
}

#[test]
fn a_drain_ends_at_its_deadline_even_with_output_waiting() {
    let now = start();
    let (broker, mut conn, mut task, mut tx) = greeted(now);
    let stop = Some(Wakeup::Stopping);
    wait(task.turn(stop, &mut conn, &broker, &mut tx, now, true));
    let later = now + Duration::from_secs(1);
    let stop = Some(Wakeup::Stopping);
    let (_, deadline) = wait(task.turn(stop, &mut conn, &broker, &mut tx, later, true));
    assert_eq!(deadline, Some(later + DRAIN_RECHECK), "re-checks the queue");
    let over = now + Duration::from_secs(5);
    let turn = task.turn(None, &mut conn, &broker, &mut tx, over, true);
    assert!(
        matches!(turn, Turn::Close),
        "the first stop's deadline holds"
    );
}

#[test]
fn a_failed_write_closes_at_once_and_end_of_stream_after_the_flush() {
    let now = start();
    let broken = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
    let cases = [
        (Wakeup::Wrote(Err(broken())), true),
        (Wakeup::Read(Err(broken())), false),
        (Wakeup::Read(Ok(0)), false),
    ];
    for (wakeup, at_once) in cases {
        let what = format!("{wakeup:?}");
        let (broker, mut conn, mut task, mut tx) = greeted(now);
        let turn = task.turn(Some(wakeup), &mut conn, &broker, &mut tx, now, true);
        assert!(conn.is_closed(), "{what}");
        if !at_once {
            assert!(!wait(turn).0, "{what}: no more reads, the answer goes out");
            let wrote = Some(Wakeup::Wrote(Ok(tx.len())));
            let turn = task.turn(wrote, &mut conn, &broker, &mut tx, now, true);
            assert!(matches!(turn, Turn::Close), "{what}");
            continue;
        }
        assert!(matches!(turn, Turn::Close), "{what}");
    }
}

#[test]
fn an_overdue_beacon_does_not_fire_while_output_waits() {
    let now = start();
    let (broker, mut control) = setup(now);
    let broker = RefCell::new(broker);
    let mut task = SocketTask::new(Duration::from_secs(5));
    let hello = [0xEE, 0xAA, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00];
    let reply = feed(&mut task, &mut control, &broker, &hello, now);
    let token = reply.get(4..36).expect("greeting answer and token");
    let (_, mut data) = setup(now);
    let mut hello = vec![0xEE, 0xAB, 0x00];
    hello.extend_from_slice(token);
    hello.push(1);
    data.read_buf().extend_from_slice(&hello);
    let mut unread = TxBuf::new();
    let mut data_task = SocketTask::new(Duration::from_secs(5));
    let read = Some(Wakeup::Read(Ok(hello.len())));
    wait(data_task.turn(read, &mut data, &broker, &mut unread, now, true));
    assert!(!unread.is_empty(), "the data reply waits, unread");
    let later = now + Duration::from_secs(2);
    let turn = data_task.turn(None, &mut data, &broker, &mut unread, later, true);
    let (_, deadline) = wait(turn);
    let deadline = deadline.expect("a stall deadline");
    assert!(deadline > later, "deadline {deadline:?} is already over");
    assert_eq!(deadline, now + broker.borrow().limits().timeout);
}

/// Counts the wake-ups of the task that registered it.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_wake_flag_tells_the_registered_task_once() {
    let flag = Arc::new(WakeFlag::default());
    let count = Arc::new(Count::default());
    let task = Waker::from(count.clone());
    let cx = Context::from_waker(&task);
    assert!(!flag.take(&cx), "nothing woke it yet");
    Waker::from(flag.clone()).wake_by_ref();
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task was woken");
    assert!(flag.take(&cx));
    assert!(!flag.take(&cx), "one wake is told once");
}

/// A server and client TLS configuration with a fresh rcgen certificate.
fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let server =
        crate::tls::server_config_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
            .expect("server config");
    let client = crate::tls::client_config(Some(ca.pem().as_bytes())).expect("client config");
    (server, client)
}

/// One server socket and the client end talking to it, with or without
/// TLS; counts the broker acquisitions of each exchange.
struct Pair {
    conn: Connection,
    task: SocketTask,
    tx: TxBuf,
    client: Option<TlsSession>,
}

impl Pair {
    /// Greets (and, with `tls`, completes the handshake) as `kind`.
    fn open(
        lock: &CountingLock,
        tls: Option<&(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)>,
        kind: SocketKind,
        now: Instant,
    ) -> (Self, Vec<u8>) {
        let config = Arc::new(ConnConfig {
            tls: tls.map(|(server, _)| server.clone()),
            allow_no_tls: true,
            tls_client_cn_login: false,
        });
        let timeout = lock.broker.borrow().limits().timeout;
        let conn = Connection::new(
            config,
            Transport::Tcp,
            "p".into(),
            Waker::noop().clone(),
            timeout,
            now,
        );
        let client = tls.map(|(_, client)| {
            TlsSession::client(client.clone(), "localhost").expect("client session")
        });
        let mut pair = Self {
            conn,
            task: SocketTask::new(Duration::from_secs(5)),
            tx: TxBuf::new(),
            client,
        };
        let greeting = request::Greeting {
            kind,
            tls: tls.is_some(),
        };
        let mut hello = BytesMut::new();
        request::encode_greeting(&mut hello, greeting);
        let mut answer = pair.raw_exchange(lock, &hello, now);
        if tls.is_some() {
            assert!(answer.is_empty(), "the answer comes inside TLS");
        }
        if tls.is_some() {
            for _ in 0..10 {
                let client = pair.client.as_mut().expect("TLS client");
                let mut flight = Vec::new();
                client.take_ciphertext(&mut flight);
                if flight.is_empty() && !client.is_handshaking() {
                    break;
                }
                let back = pair.raw_exchange(lock, &flight, now);
                answer.extend(pair.open_bytes(&back));
            }
            assert!(!pair.client.as_ref().expect("client").is_handshaking());
        }
        (pair, answer)
    }

    /// Sends bytes as they are on the wire and returns the server's bytes.
    fn raw_exchange(&mut self, lock: &CountingLock, bytes: &[u8], now: Instant) -> Vec<u8> {
        self.conn.read_buf().extend_from_slice(bytes);
        let read = Some(Wakeup::Read(Ok(bytes.len())));
        wait(
            self.task
                .turn(read, &mut self.conn, lock, &mut self.tx, now, true),
        );
        self.take(lock, now)
    }

    /// What the server wrote, as the socket takes it.
    fn take(&mut self, lock: &CountingLock, now: Instant) -> Vec<u8> {
        let out = self.tx.to_vec();
        let wrote = Some(Wakeup::Wrote(Ok(out.len())));
        wait(
            self.task
                .turn(wrote, &mut self.conn, lock, &mut self.tx, now, true),
        );
        out
    }

    /// Sends protocol bytes (encrypted when TLS is on) and returns the
    /// server's answer in plain text.
    fn exchange(&mut self, lock: &CountingLock, plain: &[u8], now: Instant) -> Vec<u8> {
        let wire = self.seal(plain);
        let back = self.raw_exchange(lock, &wire, now);
        self.open_bytes(&back)
    }

    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let Some(client) = &mut self.client else {
            return plain.to_vec();
        };
        client.write_plaintext(plain).expect("client write");
        let mut wire = Vec::new();
        client.take_ciphertext(&mut wire);
        wire
    }

    fn open_bytes(&mut self, wire: &[u8]) -> Vec<u8> {
        let Some(client) = &mut self.client else {
            return wire.to_vec();
        };
        client
            .feed_ciphertext(&mut BytesMut::from(wire))
            .expect("server records");
        let mut plain = BytesMut::new();
        client.take_plaintext(&mut plain).expect("plaintext");
        plain.to_vec()
    }
}

/// Broker acquisitions of one session's phases, plain or TLS: the
/// handshake, the login, a read of 64 publishes, and a data socket
/// taking 20 messages.
fn acquisitions(tls: bool) -> [usize; 4] {
    let now = start();
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
    let lock = CountingLock::new(Broker::new(
        crate::Limits::default(),
        AuthConfig::open(),
        rng,
    ));
    let configs = tls.then(tls_configs);
    let (mut control, answer) = Pair::open(&lock, configs.as_ref(), SocketKind::Control, now);
    assert_eq!(answer, push::greeting_reply(SocketKind::Control));
    let handshake = lock.take_count();
    let mut login = BytesMut::new();
    request::encode_login(&mut login, "", b"");
    let token = control.exchange(&lock, &login, now);
    assert_eq!(token.len(), 32, "a token");
    let login = lock.take_count();
    let subscribe = [crate::wire::op::SUBSCRIBE, 1, 0, 0, 0, b't'];
    assert_eq!(control.exchange(&lock, &subscribe, now), [status::OK]);
    lock.take_count();

    let mut batch = BytesMut::new();
    for i in 0..64u8 {
        request::encode_publish(&mut batch, 0x7F, b"elsewhere", &[i; 32]);
    }
    let replies = control.exchange(&lock, &batch, now);
    assert_eq!(replies, [status::OK; 64]);
    let publishes = lock.take_count();

    let (mut data, _) = Pair::open(&lock, configs.as_ref(), SocketKind::Data, now);
    let mut hello = token.clone();
    hello.push(5);
    assert_eq!(data.exchange(&lock, &hello, now), [status::OK]);
    let mut batch = BytesMut::new();
    for i in 0..20u8 {
        request::encode_publish(&mut batch, 0x7F, b"t", &[i; 32]);
    }
    assert_eq!(control.exchange(&lock, &batch, now), [status::OK; 20]);
    lock.take_count();
    let woken = Some(Wakeup::Woken);
    let turn = data
        .task
        .turn(woken, &mut data.conn, &lock, &mut data.tx, now, true);
    wait(turn);
    let wire = data.take(&lock, now);
    let pushed = data.open_bytes(&wire);
    assert_eq!(pushed.len(), 20 * (1 + 1 + 4 + 2 + 32), "every message");
    let messages = lock.take_count();
    [handshake, login, publishes, messages]
}

#[test]
fn tls_runs_without_the_broker_and_costs_no_extra_acquisition() {
    let plain = acquisitions(false);
    assert_eq!(
        plain,
        [0, 1, 1, 1],
        "greeting; login; 64 publishes; 20 messages"
    );
    assert_eq!(acquisitions(true), plain, "the same with TLS");
}

#[test]
fn a_keep_alive_and_a_beacon_take_no_broker() {
    let now = start();
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
    let lock = CountingLock::new(Broker::new(
        crate::Limits::default(),
        AuthConfig::open(),
        rng,
    ));
    let (mut control, _) = Pair::open(&lock, None, SocketKind::Control, now);
    let mut login = BytesMut::new();
    request::encode_login(&mut login, "", b"");
    let mut token = control.exchange(&lock, &login, now);
    let (mut data, _) = Pair::open(&lock, None, SocketKind::Data, now);
    token.push(2);
    assert_eq!(data.exchange(&lock, &token, now), [status::OK]);
    lock.take_count();
    assert_eq!(control.exchange(&lock, &[status::NOP], now), [status::OK]);
    let later = now + Duration::from_secs(1);
    let timeout = Some(Wakeup::Timeout);
    wait(
        data.task
            .turn(timeout, &mut data.conn, &lock, &mut data.tx, later, true),
    );
    assert_eq!(data.take(&lock, later), [status::NOP], "the beacon");
    assert_eq!(lock.take_count(), 0);
}

#[test]
fn requests_after_a_login_are_applied_once_the_login_is_answered() {
    let now = start();
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
    let lock = CountingLock::new(Broker::new(
        crate::Limits::default(),
        AuthConfig::open(),
        rng,
    ));
    let woken = Arc::new(Count::default());
    let (mut pair, _) = Pair::open(&lock, None, SocketKind::Control, now);
    pair.conn.waker = Waker::from(woken.clone());
    let mut frames = BytesMut::new();
    request::encode_login(&mut frames, "", b"");
    frames.extend_from_slice(&[status::NOP; 3]);
    request::encode_publish(&mut frames, 0x7F, b"t", b"x");
    let answer = pair.exchange(&lock, &frames, now);
    assert_eq!(answer.len(), 32, "the token only, so far");
    assert_eq!(
        woken.0.load(Ordering::SeqCst),
        1,
        "the driver is called back"
    );
    let wake = Some(Wakeup::Woken);
    wait(
        pair.task
            .turn(wake, &mut pair.conn, &lock, &mut pair.tx, now, true),
    );
    assert_eq!(pair.take(&lock, now), [status::OK; 4]);
    assert_eq!(lock.take_count(), 2, "the login, then the rest");
}

#[test]
fn large_frames_reuse_pooled_buffers_once_delivered() {
    use crate::framepool::FramePool;
    let now = start();
    let mut conn = logged_in(now);
    let body = 200_000usize;
    let mut frame = BytesMut::from(&[crate::wire::op::PUBLISH, 0x7F][..]);
    frame.extend_from_slice(&u32::try_from(body).expect("small").to_le_bytes());
    frame.extend_from_slice(b"t\0");
    frame.extend_from_slice(&vec![1u8; body - 2]);
    let (head, rest) = frame.split_at(64 * 1024);
    conn.read_buf().extend_from_slice(head);
    conn.handle_input(now);
    let ReadInto::Frame(buf) = conn.read_into() else {
        panic!("a frame buffer once a quarter of the frame came");
    };
    let first = buf.as_ptr();
    let room = first as usize..first as usize + buf.capacity();
    // What a driver's read does: the rest lands in the frame's buffer.
    buf.extend_from_slice(rest);
    assert_eq!(buf.as_ptr(), first, "no regrowth");
    conn.handle_input(now);
    let Some(Request::Op(request::Op::Publish(publish))) = conn.requests.front() else {
        panic!("the publish decoded");
    };
    let payload = publish.payload();
    assert_eq!(payload.len(), body - 2);
    assert!(
        room.contains(&(payload.as_ptr() as usize)),
        "the payload is the frame buffer's memory, not a copy"
    );
    assert_eq!(
        FramePool::global().len(),
        1,
        "the emptied frame buffer kept"
    );
    // The frame was decoded; once its payload is gone (the request is
    // dropped with the connection's queue here), the next large frame's
    // header alone gets the same memory back.
    drop(conn);
    let mut conn = logged_in(now);
    conn.read_buf().extend_from_slice(&frame[..8]);
    conn.handle_input(now);
    let ReadInto::Frame(again) = conn.read_into() else {
        panic!("a reusable buffer as soon as the header is known");
    };
    assert!(again.capacity() >= 6 + body);
    assert_eq!(again.as_ptr(), first, "the pooled buffer, reused");
    assert_eq!(&again[..], &frame[..8], "the header moved in");
    assert!(FramePool::global().is_empty());
}

#[test]
fn bytes_appended_during_a_large_frame_keep_their_order() {
    let now = start();
    let mut conn = logged_in(now);
    let body = 100_000usize;
    let mut frame = BytesMut::from(&[crate::wire::op::PUBLISH, 0x7F][..]);
    frame.extend_from_slice(&u32::try_from(body).expect("small").to_le_bytes());
    frame.extend_from_slice(b"t\0");
    frame.extend_from_slice(&vec![3u8; body - 2]);
    let (head, rest) = frame.split_at(40_000);
    conn.read_buf().extend_from_slice(head);
    conn.handle_input(now);
    assert!(matches!(conn.read_into(), ReadInto::Frame(_)));
    // A caller that only knows `read_buf` (a test harness, a simulator)
    // still gets its bytes after those of the frame.
    conn.read_buf().extend_from_slice(rest);
    conn.handle_input(now);
    let Some(Request::Op(request::Op::Publish(publish))) = conn.requests.front() else {
        panic!("the publish decoded");
    };
    let payload = publish.payload();
    assert!(payload.iter().all(|&b| b == 3) && payload.len() == body - 2);
}

/// A PUBLISH frame to `t` with a payload of `body - 2` bytes of `fill`.
fn large_publish(body: usize, fill: u8) -> Vec<u8> {
    let mut frame = vec![crate::wire::op::PUBLISH, 0x7F];
    frame.extend_from_slice(&u32::try_from(body).expect("small").to_le_bytes());
    frame.extend_from_slice(b"t\0");
    frame.resize(6 + body, fill);
    frame
}

#[test]
fn after_a_large_frame_the_next_read_goes_into_a_pooled_buffer() {
    let now = start();
    let mut conn = logged_in(now);
    let first = large_publish(100_000, 1);
    conn.read_buf().extend_from_slice(&first[..40_000]);
    conn.handle_input(now);
    let ReadInto::Frame(buf) = conn.read_into() else {
        panic!("a frame buffer for the first frame");
    };
    buf.extend_from_slice(&first[40_000..]);
    conn.handle_input(now);
    assert_eq!(conn.requests.len(), 1, "the first publish decoded");
    // Its payload delivered: the buffer may be reused.
    conn.requests.clear();
    conn.requests_bytes = 0;
    let ReadInto::Frame(buf) = conn.read_into() else {
        panic!("the next read goes into a pooled buffer at once");
    };
    assert!(buf.is_empty() && buf.capacity() >= first.len());
    let room = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
    let second = large_publish(100_000, 2);
    buf.extend_from_slice(&second);
    conn.handle_input(now);
    let Some(Request::Op(request::Op::Publish(publish))) = conn.requests.front() else {
        panic!("the second publish decoded");
    };
    let payload = publish.payload();
    assert!(payload.iter().all(|&b| b == 2));
    assert!(room.contains(&(payload.as_ptr() as usize)), "read in place");
    // A small frame read the same way is ordinary input.
    conn.requests.clear();
    conn.requests_bytes = 0;
    let ReadInto::Frame(buf) = conn.read_into() else {
        panic!("the streak goes on");
    };
    buf.push(crate::wire::op::NOP);
    conn.handle_input(now);
    assert!(conn.frame.is_none(), "a small frame leaves the buffer");
    assert!(
        matches!(conn.read_into(), ReadInto::Input(_)),
        "streak over"
    );
}

#[test]
fn frames_of_one_size_back_to_back_are_read_several_to_a_buffer() {
    let now = start();
    let mut conn = logged_in(now);
    let frames: Vec<Vec<u8>> = (1..=5).map(|fill| large_publish(100_000, fill)).collect();
    let size = frames[0].len();
    conn.read_buf().extend_from_slice(&frames[0][..40_000]);
    conn.handle_input(now);
    let ReadInto::Frame(buf) = conn.read_into() else {
        panic!("a frame buffer for the first frame");
    };
    assert!(
        buf.capacity() < 2 * size,
        "a first large frame gets room for itself only"
    );
    buf.extend_from_slice(&frames[0][40_000..]);
    conn.handle_input(now);
    // Its payload is still queued, so its buffer is not reusable: the
    // next frame starts as ordinary input.
    assert!(matches!(conn.read_into(), ReadInto::Input(_)));
    conn.read_buf().extend_from_slice(&frames[1][..40_000]);
    conn.handle_input(now);
    let ReadInto::Frame(buf) = conn.read_into() else {
        panic!("a frame buffer for the second frame");
    };
    assert!(
        buf.capacity() >= STREAK_FRAMES * size,
        "room for the frames behind one of the same size: {}",
        buf.capacity()
    );
    let start_at = buf.as_ptr();
    let room = start_at as usize..start_at as usize + buf.capacity();
    // One read brings the rest of it and the three behind it.
    buf.extend_from_slice(&frames[1][40_000..]);
    for frame in &frames[2..] {
        buf.extend_from_slice(frame);
    }
    assert_eq!(buf.as_ptr(), start_at, "no regrowth");
    conn.handle_input(now);
    let payloads: Vec<Bytes> = conn
        .requests
        .iter()
        .filter_map(|request| match request {
            Request::Op(request::Op::Publish(publish)) => Some(publish.payload().clone()),
            _ => None,
        })
        .collect();
    assert_eq!(payloads.len(), 5, "every publish decoded");
    for (payload, fill) in payloads[1..].iter().zip(2u8..) {
        assert!(payload.iter().all(|&b| b == fill), "in order");
        assert!(
            room.contains(&(payload.as_ptr() as usize)),
            "read in place, not copied"
        );
    }
    assert!(conn.large_streak, "a buffer filled: more may wait");
}

#[test]
fn a_streak_buffer_never_exceeds_its_bounds() {
    assert_eq!(streak_room(70_000, usize::MAX), STREAK_FRAMES * 70_000);
    assert_eq!(streak_room(200_000, usize::MAX), 2 * 200_000);
    assert_eq!(streak_room(1 << 20, usize::MAX), 1 << 20, "one large frame");
    assert_eq!(streak_room(70_000, 150_000), 2 * 70_000, "within max_input");
    assert_eq!(streak_room(70_000, 10), 70_000, "at least one frame");
    assert_eq!(streak_room(0, usize::MAX), 0, "no size, no room");
}
