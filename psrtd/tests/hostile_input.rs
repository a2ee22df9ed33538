//! Hostile input over real loopback sockets: garbage and truncated
//! greetings, login frames, operations and data-socket hellos; oversized
//! declared lengths (refused before any body byte is sent); bad UDP
//! datagrams. Every case is checked for the server's exact reaction
//! (closed at once, closed at the keep-alive timeout, or answered in-band
//! with the connection kept), and the daemon must serve normally after.

mod daemon_support;
mod hostile_support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hostile_support::{
    Broker, Control, DataSocket, ERR, ERR_ACCESS, OK, Opts, connect, figure, publish_frame, sized,
    wait_closed,
};

/// The daemon's keep-alive timeout in these tests, in seconds.
const TIMEOUT: f64 = 2.0;
/// "Closed at once": well before the keep-alive timeout.
const PROMPT: Duration = Duration::from_millis(1000);
/// Upper bound for "closed at the timeout".
const AT_TIMEOUT_MAX: Duration = Duration::from_millis(3500);
/// Upstream's default `max_pub_size`, `max_topic_length`, login limit.
const MAX_PUB_SIZE: u32 = 1_100_000;
const MAX_TOPIC_LENGTH: u32 = 1_000_000;
const MAX_LOGIN: u32 = 1024;

const CONTROL_REPLY: [u8; 4] = [0xEE, 0xAA, 0x01, 0x00];
const DATA_REPLY: [u8; 4] = [0xEE, 0xAB, 0x01, 0x00];
/// A fatal TLS `decode_error` alert record: what the server's TLS layer
/// answers to bytes that are not a TLS record.
const TLS_DECODE_ERROR: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];

/// What the client does before sending the case's bytes.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Nothing: the bytes start the conversation.
    Raw,
    /// Greets as a control socket first (`EE AA 00`).
    Greeted,
    /// Logs in anonymously first.
    LoggedIn,
    /// Greets as a data socket first (`EE AB 00`).
    DataGreeted,
}

/// What the client does after sending.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Waits for the server.
    Stall,
    /// Half-closes (end of stream) at once.
    Eof,
}

/// The server's required reaction.
#[derive(Clone, Debug)]
enum Expect {
    /// Closed within [`PROMPT`] after exactly these bytes.
    Closed(Vec<u8>),
    /// Still open at half the timeout, closed by [`AT_TIMEOUT_MAX`], after
    /// exactly these bytes.
    ClosedAtTimeout(Vec<u8>),
    /// This status byte, and the connection still answers NOP with OK.
    InBand(u8),
}

struct Case {
    name: &'static str,
    stage: Stage,
    send: Vec<u8>,
    then: Then,
    expect: Expect,
}

fn case(name: &'static str, stage: Stage, send: &[u8], then: Then, expect: Expect) -> Case {
    Case {
        name,
        stage,
        send: send.to_vec(),
        then,
        expect,
    }
}

fn len(n: u32) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn greeting_cases() -> Vec<Case> {
    use Expect::*;
    use Stage::Raw;
    use Then::*;
    let mut garbage: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
    garbage[0] = 0xEE;
    garbage[1] = 0xAC;
    vec![
        case(
            "greeting: wrong first byte",
            Raw,
            &[0, 0, 0],
            Stall,
            Closed(vec![]),
        ),
        case(
            "greeting: wrong second byte",
            Raw,
            &[0xEE, 0, 0],
            Stall,
            Closed(vec![]),
        ),
        case(
            "greeting: mode 7",
            Raw,
            &[0xEE, 0xAA, 7],
            Stall,
            Closed(vec![]),
        ),
        case(
            "greeting: data mode 9",
            Raw,
            &[0xEE, 0xAB, 9],
            Stall,
            Closed(vec![]),
        ),
        case(
            "greeting: HTTP request",
            Raw,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            Stall,
            Closed(vec![]),
        ),
        case(
            "greeting: bare TLS record",
            Raw,
            &[0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0],
            Stall,
            Closed(vec![]),
        ),
        case(
            "greeting: 64 garbage bytes",
            Raw,
            &garbage,
            Stall,
            Closed(vec![]),
        ),
        case(
            "greeting: 1 byte then EOF",
            Raw,
            &[0xEE],
            Eof,
            Closed(vec![]),
        ),
        case(
            "greeting: 2 bytes then stall",
            Raw,
            &[0xEE, 0xAA],
            Stall,
            ClosedAtTimeout(vec![]),
        ),
        case(
            "greeting: connect and send nothing",
            Raw,
            &[],
            Stall,
            ClosedAtTimeout(vec![]),
        ),
        case(
            "tls: garbage instead of ClientHello",
            Raw,
            &cat(&[&[0xEE, 0xAA, 1], b"hello, no TLS here"]),
            Stall,
            Closed(TLS_DECODE_ERROR.to_vec()),
        ),
        case(
            "tls: asks for TLS then stalls",
            Raw,
            &[0xEE, 0xAA, 1],
            Stall,
            ClosedAtTimeout(vec![]),
        ),
        case(
            "tls: half a record header then stalls",
            Raw,
            &[0xEE, 0xAA, 1, 0x16, 3],
            Stall,
            ClosedAtTimeout(vec![]),
        ),
        case(
            "tls: record length 0xFFFF then stalls",
            Raw,
            &[0xEE, 0xAA, 1, 0x16, 3, 1, 0xFF, 0xFF],
            Stall,
            Closed(TLS_DECODE_ERROR.to_vec()),
        ),
    ]
}

fn login_cases() -> Vec<Case> {
    use Expect::*;
    use Stage::Greeted;
    use Then::*;
    let reply = CONTROL_REPLY.to_vec();
    vec![
        case(
            "login: LEN 0xFFFFFFFF, no body",
            Greeted,
            &len(u32::MAX),
            Stall,
            Closed(reply.clone()),
        ),
        case(
            "login: LEN 0x80000000, no body",
            Greeted,
            &len(0x8000_0000),
            Stall,
            Closed(reply.clone()),
        ),
        case(
            "login: LEN max+1, no body",
            Greeted,
            &len(MAX_LOGIN + 1),
            Stall,
            Closed(reply.clone()),
        ),
        case(
            "login: no NUL separator",
            Greeted,
            &sized(b"abcde"),
            Stall,
            Closed(reply.clone()),
        ),
        case(
            "login: invalid UTF-8 login",
            Greeted,
            &sized(b"\xFF\xFE\x00pw"),
            Stall,
            Closed(reply.clone()),
        ),
        case(
            "login: wrong password",
            Greeted,
            &sized(b"alice\x00wrong"),
            Stall,
            Closed(reply.clone()),
        ),
        case(
            "login: unknown user",
            Greeted,
            &sized(b"mallory\x00pw"),
            Stall,
            Closed(reply.clone()),
        ),
        case(
            "login: truncated LEN then EOF",
            Greeted,
            &[5, 0],
            Eof,
            Closed(reply.clone()),
        ),
        case(
            "login: truncated body then EOF",
            Greeted,
            &cat(&[&len(10), b"abc"]),
            Eof,
            Closed(reply.clone()),
        ),
        case(
            "login: truncated body then stall",
            Greeted,
            &cat(&[&len(10), b"abc"]),
            Stall,
            ClosedAtTimeout(reply.clone()),
        ),
        case(
            "login: second greeting instead of login",
            Greeted,
            &[0xEE, 0xAA, 0x00, 0, 0],
            Stall,
            Closed(reply),
        ),
    ]
}

fn op_cases() -> Vec<Case> {
    use Expect::*;
    use Stage::LoggedIn;
    use Then::*;
    let deep = vec!["d"; 40].join("/");
    vec![
        case(
            "op: unknown op 0x42",
            LoggedIn,
            &[0x42],
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: unknown op 0x10",
            LoggedIn,
            &[0x10, 0, 0, 0, 0],
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH LEN 0xFFFFFFFF, no body",
            LoggedIn,
            &cat(&[&[1, 0x7F], &len(u32::MAX)]),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH LEN max_pub_size+1, no body",
            LoggedIn,
            &cat(&[&[1, 0x7F], &len(MAX_PUB_SIZE + 1)]),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH without NUL",
            LoggedIn,
            &cat(&[&[1, 0x7F], &sized(b"topic-only")]),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH empty topic",
            LoggedIn,
            &publish_frame("", b"x"),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH invalid UTF-8 topic",
            LoggedIn,
            &cat(&[&[1, 0x7F], &sized(b"a/\xC3\x28\x00x")]),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH wildcard +",
            LoggedIn,
            &publish_frame("a/+", b"x"),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH wildcard #",
            LoggedIn,
            &publish_frame("a/#", b"x"),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH topic too deep",
            LoggedIn,
            &publish_frame(&deep, b"x"),
            Stall,
            InBand(ERR),
        ),
        case(
            "op: SUBSCRIBE LEN 0xFFFFFFFF, no body",
            LoggedIn,
            &cat(&[&[2], &len(u32::MAX)]),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: SUBSCRIBE LEN max+1, no body",
            LoggedIn,
            &cat(&[&[2], &len(MAX_TOPIC_LENGTH + 1)]),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: UNSUBSCRIBE LEN 0xFFFFFFFF",
            LoggedIn,
            &cat(&[&[3], &len(u32::MAX)]),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH_REPL LEN 0xFFFFFFFF",
            LoggedIn,
            &cat(&[&[0x11], &len(u32::MAX)]),
            Stall,
            Closed(vec![]),
        ),
        case(
            "op: SUBSCRIBE invalid UTF-8",
            LoggedIn,
            &cat(&[&[2], &sized(b"\xFF\xFF")]),
            Stall,
            InBand(ERR),
        ),
        case(
            "op: SUBSCRIBE # in the middle",
            LoggedIn,
            &cat(&[&[2], &sized(b"a/#/b")]),
            Stall,
            InBand(ERR),
        ),
        case(
            "op: SUBSCRIBE too deep",
            LoggedIn,
            &cat(&[&[2], &sized(deep.as_bytes())]),
            Stall,
            InBand(ERR),
        ),
        case(
            "op: UNSUBSCRIBE invalid UTF-8",
            LoggedIn,
            &cat(&[&[3], &sized(b"\xFF\xFF")]),
            Stall,
            InBand(ERR),
        ),
        case(
            "op: PUBLISH_REPL by a non-replicator",
            LoggedIn,
            &cat(&[&[0x11], &sized(b"a/b")]),
            Stall,
            InBand(ERR_ACCESS),
        ),
        case(
            "op: PUBLISH truncated then EOF",
            LoggedIn,
            &cat(&[&[1, 0x7F], &len(100), b"t\x00abc"]),
            Eof,
            Closed(vec![]),
        ),
        case(
            "op: PUBLISH truncated then stall",
            LoggedIn,
            &cat(&[&[1, 0x7F], &len(100), b"t\x00abc"]),
            Stall,
            ClosedAtTimeout(vec![]),
        ),
        case(
            "op: PUBLISH op byte only then stall",
            LoggedIn,
            &[1],
            Stall,
            ClosedAtTimeout(vec![]),
        ),
    ]
}

fn data_cases() -> Vec<Case> {
    use Expect::*;
    use Stage::DataGreeted;
    use Then::*;
    let reply = DATA_REPLY.to_vec();
    let refused = cat(&[&DATA_REPLY, &[ERR]]);
    vec![
        case(
            "data: unknown token",
            DataGreeted,
            &[7u8; 33],
            Stall,
            Closed(refused),
        ),
        case(
            "data: half a token then EOF",
            DataGreeted,
            &[7u8; 16],
            Eof,
            Closed(reply.clone()),
        ),
        case(
            "data: half a token then stall",
            DataGreeted,
            &[7u8; 16],
            Stall,
            ClosedAtTimeout(reply),
        ),
    ]
}

fn open(addr: SocketAddr, stage: Stage) -> TcpStream {
    match stage {
        Stage::Raw => connect(addr),
        Stage::Greeted => {
            let mut stream = connect(addr);
            stream.write_all(&[0xEE, 0xAA, 0x00]).expect("greet");
            stream
        }
        Stage::DataGreeted => {
            let mut stream = connect(addr);
            stream.write_all(&[0xEE, 0xAB, 0x00]).expect("greet");
            stream
        }
        Stage::LoggedIn => {
            Control::login(addr, "", "")
                .expect("anonymous login")
                .stream
        }
    }
}

/// Runs one case; `Err` describes how the server's reaction differed.
fn run(addr: SocketAddr, case: &Case) -> Result<(), String> {
    let mut stream = open(addr, case.stage);
    // The server may close before reading everything; a failed write is
    // then part of the expected reaction.
    let _ = stream.write_all(&case.send);
    if let Then::Eof = case.then {
        let _ = stream.shutdown(Shutdown::Write);
    }
    match &case.expect {
        Expect::Closed(bytes) => match wait_closed(&mut stream, PROMPT) {
            Some((_, got)) if got == *bytes => Ok(()),
            Some((_, got)) => Err(format!("closed after {got:02X?}, wanted {bytes:02X?}")),
            None => Err(format!("still open after {PROMPT:?}")),
        },
        Expect::ClosedAtTimeout(bytes) => {
            let half = Duration::from_secs_f64(TIMEOUT / 2.0);
            if let Some((after, got)) = wait_closed(&mut stream, half) {
                return Err(format!("closed early after {after:?} with {got:02X?}"));
            }
            match wait_closed(&mut stream, AT_TIMEOUT_MAX - half) {
                Some((_, got)) if got.starts_with(bytes) || bytes.starts_with(&got) => Ok(()),
                Some((_, got)) => Err(format!("closed after {got:02X?}, wanted {bytes:02X?}")),
                None => Err(format!("still open after {AT_TIMEOUT_MAX:?}")),
            }
        }
        Expect::InBand(status) => {
            let mut reply = [0u8; 1];
            stream
                .read_exact(&mut reply)
                .map_err(|e| format!("no reply: {e}"))?;
            if reply[0] != *status {
                return Err(format!("reply {:#04x}, wanted {status:#04x}", reply[0]));
            }
            stream
                .write_all(&[0])
                .map_err(|e| format!("NOP write: {e}"))?;
            stream
                .read_exact(&mut reply)
                .map_err(|e| format!("NOP reply: {e}"))?;
            if reply[0] != OK {
                return Err(format!("NOP answered {:#04x}", reply[0]));
            }
            Ok(())
        }
    }
}

fn hostile_broker(name: &str, timeout: f64) -> Broker {
    Broker::start(
        name,
        &Opts {
            timeout,
            users: vec![(
                "alice".into(),
                "alice-pw".into(),
                "{pub: [\"#\"], sub: [\"#\"]}".into(),
            )],
            udp: true,
            tls: true,
            keys: vec![("alice".into(), "11".repeat(32))],
            ..Opts::default()
        },
    )
}

#[test]
fn every_hostile_tcp_input_gets_its_exact_reaction_and_the_server_keeps_serving() {
    let broker = hostile_broker("hostile-tcp", TIMEOUT);
    let cases: Vec<Case> = [greeting_cases(), login_cases(), op_cases(), data_cases()]
        .into_iter()
        .flatten()
        .collect();
    let addr = broker.tcp;
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|case| {
                scope.spawn(move || run(addr, case).err().map(|e| format!("{}: {e}", case.name)))
            })
            .collect();
        runs.into_iter()
            .filter_map(|run| run.join().expect("case thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\nlog:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        broker.daemon.log()
    );
    assert_second_data_socket_is_refused(&broker);
    broker.assert_serving("after the hostile TCP cases");
    assert!(
        broker.wait_clients(0),
        "sessions leaked: {}",
        broker.client_count()
    );
    figure("hostile-input", format!("tcp_cases={}", cases.len() + 1));
}

/// A second data socket for a token that already has one is refused with
/// ERR and closed; the first keeps working.
fn assert_second_data_socket_is_refused(broker: &Broker) {
    let mut control = Control::login(broker.tcp, "", "").expect("login");
    let mut first = control.data_socket(broker.tcp);
    assert_eq!(
        DataSocket::open(broker.tcp, &control.token).err(),
        Some(ERR)
    );
    assert_eq!(control.subscribe("dup/#"), OK);
    assert_eq!(control.publish("dup/x", b"1"), OK);
    assert_eq!(first.next_message().expect("message").0, "dup/x");
    control.bye();
}

/// A plain UDP datagram `EE AA 01 00 00 login 00 password 00 OP PRIO topic 00 payload`.
fn udp_plain(login: &[u8], password: &[u8], op: u8, topic: &[u8], payload: &[u8]) -> Vec<u8> {
    cat(&[
        &[0xEE, 0xAA, 1, 0, 0],
        login,
        &[0],
        password,
        &[0, op, 0x7F],
        topic,
        &[0],
        payload,
    ])
}

fn udp_cases() -> Vec<(&'static str, Vec<u8>)> {
    let random: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sealed = |enc: u8, body_len: usize| {
        cat(&[
            &[0xEE, 0xAA, 1, 0, enc],
            b"alice\x00",
            &vec![0x42; body_len],
        ])
    };
    vec![
        ("udp: empty datagram", vec![]),
        ("udp: one byte", vec![0xEE]),
        ("udp: truncated header", vec![0xEE, 0xAA, 1]),
        (
            "udp: wrong magic",
            udp_plain(b"", b"", 1, b"u/x", b"bad")
                .into_iter()
                .skip(1)
                .collect(),
        ),
        (
            "udp: wrong protocol version",
            cat(&[&[0xEE, 0xAA, 9, 0, 0], b"\x00\x00\x01\x7Fu/x\x00p"]),
        ),
        (
            "udp: unknown encryption 7",
            cat(&[&[0xEE, 0xAA, 1, 0, 7], b"\x00\x00\x01\x7Fu/x\x00p"]),
        ),
        (
            "udp: login without terminator",
            cat(&[&[0xEE, 0xAA, 1, 0, 0], b"alice"]),
        ),
        (
            "udp: password without terminator",
            cat(&[&[0xEE, 0xAA, 1, 0, 0], b"alice\x00pw"]),
        ),
        (
            "udp: wrong password, ack asked",
            udp_plain(b"alice", b"wrong", 1, b"u/x", b"p"),
        ),
        (
            "udp: wrong password, no ack",
            udp_plain(b"alice", b"wrong", 0x21, b"u/x", b"p"),
        ),
        (
            "udp: unknown user",
            udp_plain(b"mallory", b"pw", 1, b"u/x", b"p"),
        ),
        (
            "udp: unknown op 0x55",
            udp_plain(b"", b"", 0x55, b"u/x", b"p"),
        ),
        ("udp: wildcard topic", udp_plain(b"", b"", 1, b"u/#", b"p")),
        ("udp: empty topic", udp_plain(b"", b"", 1, b"", b"p")),
        (
            "udp: invalid UTF-8 topic",
            udp_plain(b"", b"", 1, b"u/\xFF", b"p"),
        ),
        (
            "udp: topic without terminator",
            cat(&[&[0xEE, 0xAA, 1, 0, 0], b"\x00\x00\x01\x7Fu/x"]),
        ),
        ("udp: AES-128 body shorter than nonce+tag", sealed(2, 20)),
        ("udp: AES-128 forged ciphertext", sealed(2, 80)),
        ("udp: AES-256 forged ciphertext", sealed(3, 80)),
        (
            "udp: AES-256 for a user without a key",
            cat(&[&[0xEE, 0xAA, 1, 0, 3], b"mallory\x00", &[0x42; 80]]),
        ),
        (
            "udp: oversized datagram",
            cat(&[&udp_plain(b"", b"", 1, b"u/x", b""), &[0x33; 5000]]),
        ),
        ("udp: 4000 random bytes", random),
    ]
}

#[test]
fn every_bad_udp_datagram_is_refused_and_valid_ones_still_flow() {
    let broker = hostile_broker("hostile-udp", 30.0);
    let udp_addr = broker.udp.expect("udp bound");
    let mut control = Control::login(broker.tcp, "", "").expect("login");
    let mut data = control.data_socket(broker.tcp);
    assert_eq!(control.subscribe("u/#"), OK);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let cases = udp_cases();
    let mut wrong_acks = Vec::new();
    for (name, datagram) in &cases {
        socket.send_to(datagram, udp_addr).expect("send");
        let mut ack = [0u8; 64];
        if let Ok((n, _)) = socket.recv_from(&mut ack)
            && (n != 5 || ack[4] == OK)
        {
            wrong_acks.push(format!("{name}: answered {:02X?}", &ack[..n]));
        }
    }
    assert!(wrong_acks.is_empty(), "{}", wrong_acks.join("\n"));

    let good = udp_plain(b"", b"", 1, b"u/good", b"after the garbage");
    socket.send_to(&good, udp_addr).expect("send");
    let mut ack = [0u8; 8];
    let (n, _) = socket
        .recv_from(&mut ack)
        .expect("ack for a valid datagram");
    assert_eq!(&ack[..n], &[0xEE, 0xAA, 1, 0, OK]);
    let (topic, payload) = data.next_message().expect("delivered");
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("u/good", &b"after the garbage"[..]),
        "a bad datagram was delivered"
    );
    broker.assert_serving("after the bad datagrams");
    figure("hostile-input", format!("udp_cases={}", cases.len()));
}
