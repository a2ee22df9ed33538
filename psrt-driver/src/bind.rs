//! Binding a server's sockets: the listener plan of a [`ServerSpec`],
//! bound in a fixed order by [`bind_all`] with errors that name the
//! address, the addresses actually bound in [`BoundAddrs`].
//!
//! Every runtime binds plain std sockets with [`StdBind`] (socket2, no
//! `SO_REUSEPORT`: a port that is taken fails to bind, which monoio's own
//! bind would not do) and adopts them into its reactor when it starts
//! serving, so binding needs no runtime and one bound [`StdListeners`]
//! can be duplicated for every thread of a thread-per-core runtime.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use psrt_proto::spec::ServerSpec;
use socket2::{Domain, Socket, Type};

/// Pending connections the kernel queues per TCP listener.
const BACKLOG: i32 = 1024;
/// Mode of a Unix-socket file: owner and group may connect.
const UNIX_SOCKET_MODE: u32 = 0o770;

/// The addresses actually bound (port 0 resolved), for tests and logs.
#[derive(Debug, Clone, Default)]
pub struct BoundAddrs {
    /// TCP listeners.
    pub tcp: Vec<SocketAddr>,
    /// UDP sockets.
    pub udp: Vec<SocketAddr>,
    /// Unix-socket paths.
    pub unix: Vec<PathBuf>,
    /// Stats HTTP listener.
    pub stats: Option<SocketAddr>,
}

/// How a driver opens one socket of each kind; [`bind_all`] calls it for
/// every listener of a [`ServerSpec`].
pub trait Bind {
    /// A TCP listener (protocol and stats listeners).
    type Tcp;
    /// A Unix-socket listener.
    type Unix;
    /// A UDP socket.
    type Udp;

    /// Binds a TCP listener; returns it with the address it got.
    fn tcp(&mut self, addr: SocketAddr) -> io::Result<(Self::Tcp, SocketAddr)>;
    /// Binds a Unix-socket listener at `path`.
    fn unix(&mut self, path: &Path) -> io::Result<Self::Unix>;
    /// Binds a UDP socket; returns it with the address it got.
    fn udp(&mut self, addr: SocketAddr) -> io::Result<(Self::Udp, SocketAddr)>;
}

/// Every socket of a spec, bound and not yet served; each list is in the
/// spec's order, as are the matching lists of [`BoundAddrs`].
#[derive(Debug)]
pub struct Listeners<T, U, D> {
    /// TCP listeners.
    pub tcp: Vec<T>,
    /// Unix-socket listeners (their paths are in [`BoundAddrs::unix`]).
    pub unix: Vec<U>,
    /// UDP sockets.
    pub udp: Vec<D>,
    /// Stats HTTP listener.
    pub stats: Option<T>,
}

/// The [`Listeners`] that a [`Bind`] opens.
pub type BoundListeners<B> = Listeners<<B as Bind>::Tcp, <B as Bind>::Unix, <B as Bind>::Udp>;

/// Binds every listener of `spec` with `binder`: TCP, Unix, UDP, then
/// stats. The first failure is returned with the address (`udp ...`,
/// `stats ...`) or path in its message, so the operator sees which one.
pub fn bind_all<B: Bind>(
    spec: &ServerSpec,
    binder: &mut B,
) -> io::Result<(BoundListeners<B>, BoundAddrs)> {
    let mut addrs = BoundAddrs::default();
    let mut listeners = Listeners {
        tcp: Vec::with_capacity(spec.tcp.len()),
        unix: Vec::with_capacity(spec.unix.len()),
        udp: Vec::with_capacity(spec.udp.len()),
        stats: None,
    };
    for &addr in &spec.tcp {
        let (listener, local) = binder.tcp(addr).map_err(|e| named(e, &addr.to_string()))?;
        addrs.tcp.push(local);
        listeners.tcp.push(listener);
    }
    for path in &spec.unix {
        let listener = binder
            .unix(path)
            .map_err(|e| named(e, &path.display().to_string()))?;
        addrs.unix.push(path.clone());
        listeners.unix.push(listener);
    }
    for &addr in &spec.udp {
        let (socket, local) = binder
            .udp(addr)
            .map_err(|e| named(e, &format!("udp {addr}")))?;
        addrs.udp.push(local);
        listeners.udp.push(socket);
    }
    if let Some(addr) = spec.stats {
        let (listener, local) = binder
            .tcp(addr)
            .map_err(|e| named(e, &format!("stats {addr}")))?;
        addrs.stats = Some(local);
        listeners.stats = Some(listener);
    }
    Ok((listeners, addrs))
}

/// `err` with `what` in front of its message, same kind.
fn named(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

/// The std sockets of a server, bound and not yet adopted by a runtime.
pub type StdListeners = Listeners<TcpListener, UnixListener, UdpSocket>;

impl StdListeners {
    /// Duplicates of the TCP and Unix listeners (no UDP, no stats), for
    /// another thread to accept on: the kernel hands each connection to
    /// one of the threads waiting.
    pub fn try_clone_accept(&self) -> io::Result<StdListeners> {
        Ok(Listeners {
            tcp: self
                .tcp
                .iter()
                .map(TcpListener::try_clone)
                .collect::<io::Result<_>>()?,
            unix: self
                .unix
                .iter()
                .map(UnixListener::try_clone)
                .collect::<io::Result<_>>()?,
            udp: Vec::new(),
            stats: None,
        })
    }
}

/// Binds non-blocking std sockets for [`bind_all`]; needs no runtime.
#[derive(Debug, Default)]
pub struct StdBind;

impl Bind for StdBind {
    type Tcp = TcpListener;
    type Unix = UnixListener;
    type Udp = UdpSocket;

    fn tcp(&mut self, addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let listener = TcpListener::from(socket);
        let local = listener.local_addr()?;
        Ok((listener, local))
    }

    fn unix(&mut self, path: &Path) -> io::Result<UnixListener> {
        bind_unix(path)
    }

    fn udp(&mut self, addr: SocketAddr) -> io::Result<(UdpSocket, SocketAddr)> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        Ok((socket, local))
    }
}

/// Binds a non-blocking Unix-socket listener at `path` with mode 0770.
/// A socket file left there by a crashed run is replaced (it would make
/// the bind fail), but only when no server answers on it: the socket of
/// a live server is left alone and the bind fails with `AddrInUse`, so a
/// second daemon never cuts off the first. Any other kind of file is left
/// alone and the bind fails.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "a running server answers on this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(UNIX_SOCKET_MODE))?;
    Ok(listener)
}

/// Removes the Unix-socket files a stopped server bound.
pub fn remove_unix_files(addrs: &BoundAddrs) {
    for path in &addrs.unix {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests;
