//! UDP publishing: plain and AES-GCM datagrams, acks.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use psrt_proto::udp::{Cipher, encode_sealed};
use rand::RngCore;

use super::{assert_nothing_before_sentinel, subscriber};
use crate::Start;
use crate::client::{ERR_ACCESS, IO_TIMEOUT, OK, PRIO, Session};
use crate::fixture::{Server, auth, keys, loopback, spec};

/// The user's AES key (64 hex digits in the key file).
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// OP byte: publish, acknowledge.
const WITH_ACK: u8 = 0x01;
/// OP byte: publish, no acknowledgement.
const NO_ACK: u8 = 0x21;

/// A server with a UDP socket; `u`/`pw` may publish anything, `limited`
/// only `only/#`; both have keys.
fn udp_server(start: Start) -> (Server, SocketAddr) {
    let mut spec = spec();
    spec.udp = vec![loopback()];
    let acl = "
_: {pub: ['#'], sub: ['#']}
u: {pub: ['#'], sub: ['#']}
limited: {pub: ['only/#']}
";
    let mut rules = auth(true, acl, &[("u", "pw"), ("limited", "pw")]);
    rules.keys = Some(keys(&format!("u: {KEY_HEX}\nlimited: {KEY_HEX}\n")));
    spec.auth = rules;
    let server = Server::start(start, spec);
    let udp = server.addrs().udp.expect("UDP socket bound");
    (server, udp)
}

/// A client UDP socket with a read timeout.
fn client_socket() -> UdpSocket {
    let socket = UdpSocket::bind(loopback()).expect("bind UDP");
    socket.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    socket
}

/// `EE AA 01 00 00 login 00 password 00 OP PRIO topic 00 payload`.
fn plain(login: &str, password: &str, op: u8, topic: &str, payload: &[u8]) -> Vec<u8> {
    [
        &[0xEE, 0xAA, 0x01, 0x00, 0x00][..],
        login.as_bytes(),
        &[0],
        password.as_bytes(),
        &[0, op, PRIO],
        topic.as_bytes(),
        &[0],
        payload,
    ]
    .concat()
}

/// An encrypted publish datagram of `login` with `key`.
fn sealed(login: &str, key: &[u8; 32], cipher: Cipher, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::new();
    encode_sealed(
        &mut out, login, key, cipher, nonce, true, PRIO, topic, payload,
    )
    .expect("encode sealed datagram");
    out
}

/// Sends `datagram` and returns the ack's status code.
fn send_for_ack(socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> u8 {
    socket.send_to(datagram, to).expect("send datagram");
    let mut buf = [0u8; 64];
    let (n, from) = socket.recv_from(&mut buf).expect("ack datagram");
    assert_eq!(from, to, "ack comes from the server's socket");
    assert_eq!(buf[..n].len(), 5, "ack length");
    assert_eq!(&buf[..4], &[0xEE, 0xAA, 0x01, 0x00], "ack header");
    buf[4]
}

/// Sends `datagram` and asserts no ack arrives: a sealed datagram that
/// does not decrypt hides its OP byte, so whether an ack was asked for is
/// unknown ("too broken to read its OP gets no answer").
fn assert_no_ack(socket: &UdpSocket, to: SocketAddr, datagram: &[u8], what: &str) {
    socket.send_to(datagram, to).expect("send datagram");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    assert!(socket.recv_from(&mut buf).is_err(), "{what}: no ack");
    socket.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
}

/// The user's key as bytes.
fn key() -> [u8; 32] {
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::try_from(i).expect("small");
    }
    key
}

/// Plain datagrams with OP `01` are acked OK and delivered over TCP, for
/// a user and anonymously.
pub fn udp_plain_with_ack(start: Start) {
    let (server, udp) = udp_server(start);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["udp/#"]), OK, "subscribe");
    let socket = client_socket();
    let datagram = plain("u", "pw", WITH_ACK, "udp/a", b"hello");
    assert_eq!(send_for_ack(&socket, udp, &datagram), OK, "ack");
    data.expect("udp/a", b"hello");
    let anonymous = plain("", "", WITH_ACK, "//udp//b", b"anon");
    assert_eq!(send_for_ack(&socket, udp, &anonymous), OK, "anonymous ack");
    data.expect("udp/b", b"anon");
}

/// OP `21` publishes without an ack.
pub fn udp_plain_without_ack(start: Start) {
    let (server, udp) = udp_server(start);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["udp/#"]), OK, "subscribe");
    let socket = client_socket();
    let datagram = plain("u", "pw", NO_ACK, "udp/quiet", b"shh");
    socket.send_to(&datagram, udp).expect("send");
    data.expect("udp/quiet", b"shh");
    let again = plain("u", "pw", NO_ACK, "udp/quiet", b"again");
    assert_no_ack(&socket, udp, &again, "OP 21");
    data.expect("udp/quiet", b"again");
}

/// ENC `02`: AES-128-GCM with the first 16 bytes of the key.
pub fn udp_aes128(start: Start) {
    let (server, udp) = udp_server(start);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["udp/#"]), OK, "subscribe");
    let socket = client_socket();
    let datagram = sealed("u", &key(), Cipher::Aes128Gcm, "udp/128", b"secret");
    assert_eq!(datagram[4], 0x02, "ENC byte");
    assert_eq!(send_for_ack(&socket, udp, &datagram), OK, "ack");
    data.expect("udp/128", b"secret");
}

/// ENC `03`: AES-256-GCM with the whole key.
pub fn udp_aes256(start: Start) {
    let (server, udp) = udp_server(start);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["udp/#"]), OK, "subscribe");
    let socket = client_socket();
    let datagram = sealed("u", &key(), Cipher::Aes256Gcm, "udp/256", b"secret");
    assert_eq!(datagram[4], 0x03, "ENC byte");
    assert_eq!(send_for_ack(&socket, udp, &datagram), OK, "ack");
    data.expect("udp/256", b"secret");
}

/// A wrong password and an ACL denial are acked ERR_ACCESS; a wrong key
/// gets no answer; none of them delivers anything.
pub fn udp_wrong_password_err_access(start: Start) {
    let (server, udp) = udp_server(start);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["#"]), OK, "subscribe");
    let socket = client_socket();
    let wrong_password = plain("u", "nope", WITH_ACK, "udp/x", b"1");
    assert_eq!(
        send_for_ack(&socket, udp, &wrong_password),
        ERR_ACCESS,
        "wrong password"
    );
    let mut wrong_key = key();
    wrong_key[0] ^= 0xFF;
    let datagram = sealed("u", &wrong_key, Cipher::Aes256Gcm, "udp/x", b"2");
    assert_no_ack(&socket, udp, &datagram, "wrong key");
    let denied = plain("limited", "pw", WITH_ACK, "udp/x", b"3");
    assert_eq!(
        send_for_ack(&socket, udp, &denied),
        ERR_ACCESS,
        "ACL denial"
    );
    let allowed = plain("limited", "pw", WITH_ACK, "only/x", b"4");
    assert_eq!(send_for_ack(&socket, udp, &allowed), OK, "allowed topic");
    data.expect("only/x", b"4");
    let mut publisher = Session::anonymous(server.tcp());
    assert_nothing_before_sentinel(&mut sub, &mut data, &mut publisher);
}
