//! A minimal blocking PSRT client written from `PROTOCOL.md`: every read
//! has a timeout and every failure is a panic naming what was expected.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long any single read may wait before the case fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Status byte: success.
pub const OK: u8 = 0x01;
/// Status byte: replication, "send me the payload".
pub const OK_WAITING: u8 = 0x02;
/// Status byte: replication, "nobody here wants it".
pub const NOT_REQUIRED: u8 = 0xE0;
/// Status byte: the ACL denied the topic.
pub const ERR_ACCESS: u8 = 0xFE;
/// Status byte: any other error.
pub const ERR: u8 = 0xFF;
/// The priority byte clients send.
pub const PRIO: u8 = 0x7F;

/// Greeting byte of a control socket (`EE AA`).
pub const CONTROL: u8 = 0xAA;
/// Greeting byte of a data socket (`EE AB`).
pub const DATA: u8 = 0xAB;

/// A byte stream the cases can read with a timeout.
pub trait Duplex: Read + Write + Send {
    /// Sets the timeout of later reads.
    fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()>;
}

impl Duplex for TcpStream {
    fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, Some(timeout))
    }
}

impl Duplex for UnixStream {
    fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, Some(timeout))
    }
}

/// One socket to the server.
pub struct Conn {
    io: Box<dyn Duplex>,
}

impl Conn {
    /// Connects over TCP with [`IO_TIMEOUT`] on reads and writes.
    pub fn tcp(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("TCP connect");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn::new(Box::new(stream))
    }

    /// Connects to a Unix-socket listener.
    pub fn unix(path: &Path) -> Conn {
        let stream = UnixStream::connect(path).expect("Unix connect");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        Conn::new(Box::new(stream))
    }

    /// Wraps any stream; reads time out after [`IO_TIMEOUT`].
    pub fn new(io: Box<dyn Duplex>) -> Conn {
        io.set_read_timeout(IO_TIMEOUT).expect("read timeout");
        Conn { io }
    }

    /// Sends all of `bytes`; panics if the server is gone.
    pub fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).expect("send");
        self.io.flush().expect("flush");
    }

    /// Sends all of `bytes`, reporting a failure instead of panicking (the
    /// server may legitimately close first).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes)?;
        self.io.flush()
    }

    /// Reads exactly `n` bytes within [`IO_TIMEOUT`] per read.
    pub fn recv(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.io
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("expected {n} bytes: {e}"));
        buf
    }

    /// Reads exactly `n` bytes; `None` when the server closed the socket
    /// first. A timeout still panics.
    pub fn recv_or_closed(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0; n];
        match self.io.read_exact(&mut buf) {
            Ok(()) => Some(buf),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof || is_reset(&e) => None,
            Err(e) => panic!("expected {n} bytes: {e}"),
        }
    }

    /// Reads one status byte.
    pub fn status(&mut self) -> u8 {
        self.recv(1)[0]
    }

    /// Reads `expected.len()` bytes and asserts they equal `expected`.
    pub fn expect(&mut self, expected: &[u8], what: &str) {
        let got = self.recv(expected.len());
        assert_eq!(got, expected, "{what}");
    }

    /// Asserts the server closes this socket within `within` without
    /// sending anything.
    pub fn expect_closed(&mut self, within: Duration, what: &str) {
        self.expect_closed_skipping(within, what, &[]);
    }

    /// Like [`Conn::expect_closed`], but bytes in `ignored` (NOP beacons)
    /// may arrive first.
    pub fn expect_closed_skipping(&mut self, within: Duration, what: &str, ignored: &[u8]) {
        self.io.set_read_timeout(within).expect("read timeout");
        let mut byte = [0u8; 1];
        loop {
            match self.io.read(&mut byte) {
                Ok(0) => return,
                Ok(_) if ignored.contains(&byte[0]) => {}
                Ok(_) => panic!("{what}: expected close, got byte {:#04x}", byte[0]),
                Err(e) if is_reset(&e) => return,
                Err(e) => panic!("{what}: expected close within {within:?}: {e}"),
            }
        }
    }

    /// Sets the timeout of later reads.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.io.set_read_timeout(timeout).expect("read timeout");
    }

    /// Sends the greeting `EE kind MODE` (MODE `00` plain).
    pub fn send_greeting(&mut self, kind: u8) {
        self.send(&[0xEE, kind, 0x00]);
    }

    /// Sends the plain greeting and checks the answer `EE kind 01 00`.
    pub fn greet(&mut self, kind: u8) {
        self.send_greeting(kind);
        self.expect(&[0xEE, kind, 0x01, 0x00], "greeting answer");
    }
}

/// True for the errors a closed peer produces.
fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// `LEN login 00 password`.
pub fn login_frame(login: &str, password: &str) -> Vec<u8> {
    let body = [login.as_bytes(), &[0], password.as_bytes()].concat();
    with_len(&body)
}

/// `LEN body`.
pub fn with_len(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("body fits u32");
    [&len.to_le_bytes()[..], body].concat()
}

/// `01 PRIO LEN topic 00 payload`: a PUBLISH request, and also exactly
/// the frame a subscriber receives for it.
pub fn publish_frame(topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let body = [topic, &[0], payload].concat();
    [&[0x01, PRIO][..], &with_len(&body)].concat()
}

/// `OP LEN topic[00 topic...]` for SUBSCRIBE (`02`) or UNSUBSCRIBE (`03`).
pub fn topics_frame(op: u8, topics: &[&str]) -> Vec<u8> {
    let body = topics.join("\0");
    [&[op][..], &with_len(body.as_bytes())].concat()
}

/// A logged-in control socket.
pub struct Session {
    /// The control socket.
    pub control: Conn,
    /// The 32-byte token of this session.
    pub token: Vec<u8>,
}

impl Session {
    /// Logs in over TCP; panics if refused.
    pub fn login(addr: SocketAddr, login: &str, password: &str) -> Session {
        Session::login_on(Conn::tcp(addr), login, password)
    }

    /// Logs in anonymously over TCP.
    pub fn anonymous(addr: SocketAddr) -> Session {
        Session::login(addr, "", "")
    }

    /// Greets and logs in on an open control socket; panics if refused.
    pub fn login_on(mut control: Conn, login: &str, password: &str) -> Session {
        control.send_greeting(CONTROL);
        Session::finish_login(control, login, password)
    }

    /// Reads the greeting answer and logs in, on a socket whose greeting
    /// was already sent (a TLS stream); panics if refused.
    pub fn finish_login(mut control: Conn, login: &str, password: &str) -> Session {
        control.expect(&[0xEE, CONTROL, 0x01, 0x00], "greeting answer");
        control.send(&login_frame(login, password));
        let token = control.recv(32);
        Session { control, token }
    }

    /// Sends `request` and returns the one-byte reply.
    pub fn op(&mut self, request: &[u8]) -> u8 {
        self.control.send(request);
        self.control.status()
    }

    /// NOP.
    pub fn nop(&mut self) -> u8 {
        self.op(&[0x00])
    }

    /// PUBLISH `topic 00 payload`.
    pub fn publish(&mut self, topic: &str, payload: &[u8]) -> u8 {
        self.op(&publish_frame(topic.as_bytes(), payload))
    }

    /// SUBSCRIBE to `filters` in one request.
    pub fn subscribe(&mut self, filters: &[&str]) -> u8 {
        self.op(&topics_frame(0x02, filters))
    }

    /// UNSUBSCRIBE from `filters` in one request.
    pub fn unsubscribe(&mut self, filters: &[&str]) -> u8 {
        self.op(&topics_frame(0x03, filters))
    }

    /// Opens this session's data socket with beacon timeout `timeout_s`;
    /// panics unless the server answers OK.
    pub fn open_data(&self, addr: SocketAddr, timeout_s: u8) -> DataConn {
        let mut conn = Conn::tcp(addr);
        conn.send_greeting(DATA);
        self.open_data_on(conn, timeout_s)
    }

    /// Finishes opening this session's data socket on `conn`, whose
    /// greeting was already sent; panics unless the server answers OK.
    pub fn open_data_on(&self, conn: Conn, timeout_s: u8) -> DataConn {
        let (conn, reply) = present_token(conn, &self.token, timeout_s);
        assert_eq!(reply, OK, "data socket login");
        DataConn { conn }
    }
}

/// Opens a data socket over TCP presenting `token`; returns it with the
/// reply byte.
pub fn data_connect(addr: SocketAddr, token: &[u8], timeout_s: u8) -> (Conn, u8) {
    let mut conn = Conn::tcp(addr);
    conn.send_greeting(DATA);
    present_token(conn, token, timeout_s)
}

/// Reads the data greeting answer, sends `token TIMEOUT` and reads the
/// reply byte.
fn present_token(mut conn: Conn, token: &[u8], timeout_s: u8) -> (Conn, u8) {
    conn.expect(&[0xEE, DATA, 0x01, 0x00], "data greeting answer");
    conn.send(&[token, &[timeout_s]].concat());
    let reply = conn.status();
    (conn, reply)
}

/// A message pushed on a data socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The priority byte.
    pub prio: u8,
    /// The topic, as raw bytes.
    pub topic: Vec<u8>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// An open data socket.
pub struct DataConn {
    /// The socket.
    pub conn: Conn,
}

impl DataConn {
    /// Reads the next pushed message, skipping NOP beacons.
    pub fn recv(&mut self) -> Pushed {
        self.try_next()
            .expect("data socket closed, expected a message")
    }

    /// Reads the next pushed message, skipping NOP beacons; `None` when
    /// the server closed the socket first. A timeout still panics.
    pub fn try_next(&mut self) -> Option<Pushed> {
        loop {
            let mut byte = [0u8; 1];
            match self.conn.io.read(&mut byte) {
                Ok(0) => return None,
                Ok(_) if byte[0] == 0x00 => continue,
                Ok(_) if byte[0] == 0x01 => break,
                Ok(_) => panic!("data socket: unexpected frame byte {:#04x}", byte[0]),
                Err(e) if is_reset(&e) => return None,
                Err(e) => panic!("data socket: expected a message: {e}"),
            }
        }
        let head = self.conn.recv_or_closed(5)?;
        let prio = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        let body = self
            .conn
            .recv_or_closed(usize::try_from(len).expect("len fits usize"))?;
        let split = body
            .iter()
            .position(|&b| b == 0)
            .expect("pushed frame has a 00 separator");
        Some(Pushed {
            prio,
            topic: body[..split].to_vec(),
            payload: body[split + 1..].to_vec(),
        })
    }

    /// Asserts the next message has `topic` and `payload`.
    pub fn expect(&mut self, topic: &str, payload: &[u8]) {
        let got = self.recv();
        assert_eq!(
            (got.topic.as_slice(), got.payload.as_slice()),
            (topic.as_bytes(), payload),
            "pushed message"
        );
        assert_eq!(got.prio, PRIO, "priority passed through");
    }
}
