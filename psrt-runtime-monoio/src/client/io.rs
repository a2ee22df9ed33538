//! Socket plumbing of the client tasks: opening a TCP or Unix stream;
//! its halves (reads and writes that survive the tasks' `select!`) are
//! [`crate::io_slot`]'s, shared with the server.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Instant;

use monoio::net::{TcpStream, UnixStream};
use psrt_proto::client::Target;

pub(super) use crate::io_slot::{Stream, split};

/// An opened control or data socket.
pub(super) enum Opened {
    /// A TCP connection (Nagle off: requests are small and pipelined).
    Tcp(TcpStream),
    /// A Unix-socket connection.
    Unix(UnixStream),
}

/// Opens a stream to the target: a TCP connection tries every resolved
/// address in turn.
pub(super) async fn open(target: &Target) -> io::Result<Opened> {
    match target {
        Target::Tcp { host, port } => open_tcp(host, *port).await,
        Target::Unix(path) => Ok(Opened::Unix(UnixStream::connect(path).await?)),
    }
}

async fn open_tcp(host: &str, port: u16) -> io::Result<Opened> {
    let mut last = None;
    for candidate in resolve(host, port).await? {
        match TcpStream::connect_addr(candidate).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(Opened::Tcp(stream));
            }
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address resolved")))
}

/// The addresses of `host`. An IP address is taken as is; a name goes to
/// the system resolver, which blocks, on a short-lived thread so the
/// event loop keeps running meanwhile (monoio's own `connect` would block
/// it, and would try the first address only).
async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = flume::bounded(1);
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("psrt-resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect),
            );
        })?;
    rx.recv_async()
        .await
        .map_err(|_| io::Error::other("the resolver thread failed"))?
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
