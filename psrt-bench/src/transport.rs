//! The byte stream under the raw client: plain TCP, or TLS over TCP.
//!
//! A TLS stream is rustls' blocking [`StreamOwned`] over the TCP socket.
//! rustls reads at most one TLS record (about 16 KiB) per call into its
//! transport, so the socket is wrapped in a large [`BufReader`]: a
//! subscriber draining a full socket makes one system call per
//! `READ_BUFFER` (256 KiB) bytes, as the plain client does, not one per record.

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};

use crate::BenchError;
use crate::tls::ClientTls;

/// Bytes read from a TLS socket per system call at most.
const READ_BUFFER: usize = 256 * 1024;

/// A connected socket, plain or TLS; reads and writes carry plaintext.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the rustls state is large).
    Tls(Box<StreamOwned<ClientConnection, BufferedSocket>>),
}

impl Transport {
    /// Starts a TLS client session on `socket`; the handshake runs with
    /// the first read or write.
    pub fn tls(socket: TcpStream, tls: &ClientTls) -> Result<Self, BenchError> {
        let connection = ClientConnection::new(tls.config.clone(), tls.name.clone())
            .map_err(|err| BenchError::Tls(err.to_string()))?;
        let socket = BufferedSocket {
            reader: BufReader::with_capacity(READ_BUFFER, socket),
        };
        Ok(Self::Tls(Box::new(StreamOwned::new(connection, socket))))
    }

    /// Sets how long a read may block before failing with `WouldBlock`
    /// or `TimedOut`.
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.tcp().set_read_timeout(Some(timeout))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(stream) => stream,
            Self::Tls(stream) => stream.get_ref().reader.get_ref(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.read(buf),
            Self::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.write(buf),
            Self::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(stream) => stream.flush(),
            Self::Tls(stream) => stream.flush(),
        }
    }
}

/// A TCP socket read through a buffer and written directly: the
/// transport of a TLS stream.
#[derive(Debug)]
pub struct BufferedSocket {
    reader: BufReader<TcpStream>,
}

impl Read for BufferedSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for BufferedSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reader.get_mut().write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.reader.get_mut().write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.reader.get_mut().flush()
    }
}
