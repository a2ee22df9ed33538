//! The server over raw sockets, with no client library: the quickest
//! signal that a driver serves at all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use crate::Start;
use crate::fixture::{Server, spec};

/// How long a graceful stop may take once every client has said BYE.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// Logs in anonymously, opens the data socket, subscribes `a/#`, publishes
/// to `a/b` and reads the exact bytes back; then says BYE and checks that
/// a graceful stop finishes within [`STOP_LIMIT`].
pub fn publish_over_raw_sockets(start: Start) {
    let server = Server::start(start, spec());
    let connect = || {
        let stream = TcpStream::connect(server.tcp()).expect("connect");
        let timeout = Some(Duration::from_secs(5));
        stream.set_read_timeout(timeout).expect("read timeout");
        stream
    };
    let mut control = connect();
    send(&mut control, &[0xEE, 0xAA, 0x00, 1, 0, 0, 0, 0]);
    let reply = read_exact(&mut control, 36);
    assert_eq!(&reply[..4], &[0xEE, 0xAA, 0x01, 0x00]);
    let token = &reply[4..];

    let mut data = connect();
    send(&mut data, &[0xEE, 0xAB, 0x00]);
    send(&mut data, token);
    send(&mut data, &[5]);
    assert_eq!(read_exact(&mut data, 5), [0xEE, 0xAB, 0x01, 0x00, 0x01]);

    send(&mut control, &[0x02, 3, 0, 0, 0, b'a', b'/', b'#']);
    assert_eq!(read_exact(&mut control, 1), [0x01]);
    let frame = [&[0x01, 0x7F, 8, 0, 0, 0][..], b"a/b\0xyzw"].concat();
    send(&mut control, &frame);
    assert_eq!(read_exact(&mut control, 1), [0x01]);
    assert_eq!(read_exact(&mut data, frame.len()), frame);

    send(&mut control, &[0xFF]);
    assert_eq!(read_exact(&mut control, 1), [0x01]);
    let (stopped_tx, stopped_rx) = mpsc::channel();
    std::thread::spawn(move || {
        server.stop();
        let _ = stopped_tx.send(());
    });
    stopped_rx
        .recv_timeout(STOP_LIMIT)
        .expect("the server stops after the drain");
}

/// Writes all of `bytes`.
fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).expect("write");
}

/// Reads exactly `n` bytes.
fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("read");
    buf
}
