//! A blocking TLS client stream: `EE kind 01`, then a rustls handshake
//! driven through [`psrt_proto::tls::TlsSession`] over a std TCP socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use psrt_proto::tls::{TlsSession, client_config};

use crate::client::{Conn, Duplex, IO_TIMEOUT};

/// Most socket reads a handshake may take; real ones need a handful.
const MAX_HANDSHAKE_READS: usize = 64;

/// A TLS client session over a TCP socket.
pub struct TlsStream {
    tcp: TcpStream,
    tls: TlsSession,
    /// Ciphertext read but not yet taken by rustls.
    wire: BytesMut,
    /// Plaintext decrypted but not yet read by the caller.
    plain: BytesMut,
}

impl TlsStream {
    /// Connects, sends the TLS greeting `EE kind 01` and completes the
    /// handshake trusting exactly `ca_pem` for the name `localhost`.
    pub fn connect(addr: SocketAddr, kind: u8, ca_pem: &[u8]) -> std::io::Result<TlsStream> {
        let mut tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        tcp.set_nodelay(true)?;
        tcp.write_all(&[0xEE, kind, 0x01])?;
        let config = client_config(Some(ca_pem)).map_err(std::io::Error::other)?;
        let tls = TlsSession::client(config, "localhost").map_err(std::io::Error::other)?;
        let mut stream = TlsStream {
            tcp,
            tls,
            wire: BytesMut::new(),
            plain: BytesMut::new(),
        };
        stream.handshake()?;
        Ok(stream)
    }

    /// Wraps the stream as a [`Conn`].
    pub fn into_conn(self) -> Conn {
        Conn::new(Box::new(self))
    }

    fn handshake(&mut self) -> std::io::Result<()> {
        for _ in 0..MAX_HANDSHAKE_READS {
            self.flush_tls()?;
            if !self.tls.is_handshaking() {
                return Ok(());
            }
            if self.read_records()? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Err(std::io::Error::other("TLS handshake did not finish"))
    }

    /// Sends every pending TLS record.
    fn flush_tls(&mut self) -> std::io::Result<()> {
        let mut out = Vec::new();
        self.tls.take_ciphertext(&mut out);
        self.tcp.write_all(&out)
    }

    /// Reads one chunk from the socket into rustls; returns the bytes read
    /// (0 at end of stream).
    fn read_records(&mut self) -> std::io::Result<usize> {
        let mut buf = [0u8; 16 * 1024];
        let n = self.tcp.read(&mut buf)?;
        self.wire.extend_from_slice(&buf[..n]);
        self.tls
            .feed_ciphertext(&mut self.wire)
            .map_err(std::io::Error::other)?;
        self.tls
            .take_plaintext(&mut self.plain)
            .map_err(std::io::Error::other)?;
        Ok(n)
    }
}

impl Read for TlsStream {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.plain.is_empty() {
            self.flush_tls()?;
            if self.tls.peer_closed() || self.read_records()? == 0 {
                return Ok(0);
            }
        }
        let n = out.len().min(self.plain.len());
        out[..n].copy_from_slice(&self.plain.split_to(n));
        Ok(n)
    }
}

impl Write for TlsStream {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.tls
            .write_plaintext(data)
            .map_err(std::io::Error::other)?;
        self.flush_tls()?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_tls()
    }
}

impl Duplex for TlsStream {
    fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.tcp.set_read_timeout(Some(timeout))
    }
}
