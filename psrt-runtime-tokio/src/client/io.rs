//! Socket plumbing shared by the client tasks: opening a TCP or Unix
//! stream, reading into the state machines' buffers, vectored writes.

use std::io::IoSlice;
use std::path::Path;

use bytes::BytesMut;
use psrt_proto::TxBuf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UnixStream};

/// Bytes a socket reads at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks gathered into one `writev`.
const MAX_IOV: usize = 64;
/// The IANA-assigned PSRT port, used when a target names no port.
pub const DEFAULT_PORT: u16 = 2873;

/// A TCP or Unix stream behind one type.
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The stream a task drives.
pub(super) type BoxedIo = Box<dyn Io>;

/// Where a client connects: parsed from `host:port` or a socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// A TCP `host:port`, with the host alone for TLS server names.
    Tcp {
        /// `host:port` as given (the default port added when missing).
        addr: String,
        /// The host, without IPv6 brackets.
        host: String,
    },
    /// A Unix-socket path.
    Unix(String),
}

impl Target {
    /// A path (holding `/` or ending in `.sock`/`.socket`) is a Unix
    /// socket; anything else is `host[:port]`.
    pub(super) fn parse(addr: &str) -> Target {
        if addr.contains('/') || addr.ends_with(".sock") || addr.ends_with(".socket") {
            return Target::Unix(addr.to_owned());
        }
        let (host, addr) = match split_port(addr) {
            Some(host) => (host, addr.to_owned()),
            None if addr.contains(':') => (addr, format!("[{addr}]:{DEFAULT_PORT}")),
            None => (addr, format!("{addr}:{DEFAULT_PORT}")),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Target::Tcp {
            addr,
            host: host.to_owned(),
        }
    }

    /// Opens a stream to the target.
    pub(super) async fn open(&self) -> std::io::Result<BoxedIo> {
        match self {
            Target::Tcp { addr, .. } => {
                let stream = TcpStream::connect(addr.as_str()).await?;
                stream.set_nodelay(true)?;
                Ok(Box::new(stream))
            }
            Target::Unix(path) => Ok(Box::new(UnixStream::connect(Path::new(path)).await?)),
        }
    }
}

/// The host of `host:port` or `[v6]:port`; `None` without a port.
fn split_port(addr: &str) -> Option<&str> {
    let (host, port) = addr.rsplit_once(':')?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let bare_v6 = host.contains(':') && !bracketed;
    if bare_v6 || port.parse::<u16>().is_err() {
        return None;
    }
    Some(host)
}

/// What a read brought.
pub(super) enum ReadOutcome {
    /// Bytes were appended to the buffer.
    Data,
    /// End of stream, or a read error (both end the connection).
    Eof,
}

/// Reads what the socket has into `buf`.
pub(super) async fn read(reader: &mut ReadHalf<BoxedIo>, buf: &mut BytesMut) -> ReadOutcome {
    buf.reserve(READ_CHUNK);
    match reader.read_buf(buf).await {
        Ok(0) | Err(_) => ReadOutcome::Eof,
        Ok(_) => ReadOutcome::Data,
    }
}

/// Writes as much of `tx` as the socket takes in one vectored call.
pub(super) async fn write(writer: &mut WriteHalf<BoxedIo>, tx: &TxBuf) -> std::io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_IOV];
    let count = tx.io_slices(&mut slices);
    let n = writer.write_vectored(&slices[..count]).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}

/// Half-closes the stream; errors are moot at this point.
pub(super) async fn shutdown(writer: &mut WriteHalf<BoxedIo>) {
    let _ = writer.shutdown().await;
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(addr: &str, host: &str) -> Target {
        Target::Tcp {
            addr: addr.into(),
            host: host.into(),
        }
    }

    #[test]
    fn targets_parse_as_tcp_or_unix() {
        assert_eq!(
            Target::parse("example.org:1"),
            tcp("example.org:1", "example.org")
        );
        assert_eq!(
            Target::parse("localhost"),
            tcp("localhost:2873", "localhost")
        );
        assert_eq!(Target::parse("[::1]:9"), tcp("[::1]:9", "::1"));
        assert_eq!(Target::parse("::1"), tcp("[::1]:2873", "::1"));
        assert_eq!(
            Target::parse("/run/psrt.sock"),
            Target::Unix("/run/psrt.sock".into())
        );
        assert_eq!(
            Target::parse("psrt.socket"),
            Target::Unix("psrt.socket".into())
        );
    }
}
