//! Socket plumbing shared by the client tasks: opening a TCP or Unix
//! stream, reading into the state machines' buffers, vectored writes.

use std::io::IoSlice;

use bytes::BytesMut;
use psrt_proto::TxBuf;
use psrt_proto::client::{MAX_IOV, READ_CHUNK, ReadOutcome, Target};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UnixStream};

/// A TCP or Unix stream behind one type.
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The stream a task drives.
pub(super) type BoxedIo = Box<dyn Io>;

/// Opens a stream to `target` (TCP with Nagle off).
pub(super) async fn open(target: &Target) -> std::io::Result<BoxedIo> {
    match target {
        Target::Tcp { host, port } => {
            let stream = TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
        Target::Unix(path) => Ok(Box::new(UnixStream::connect(path).await?)),
    }
}

/// Reads what the socket has into `buf`.
pub(super) async fn read(reader: &mut ReadHalf<BoxedIo>, buf: &mut BytesMut) -> ReadOutcome {
    buf.reserve(READ_CHUNK);
    ReadOutcome::of(&reader.read_buf(buf).await)
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
