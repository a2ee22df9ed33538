//! The steps of an async client's connect that touch no socket: where to
//! connect, with which TLS sessions, and the sessions each socket's task
//! drives.

use std::time::Instant;

use super::{ClientHandle, ClientOptions, ControlSession, DataSession, SessionEnd, SessionError};
use super::{Target, Waiters};
use crate::tls::TlsSession;
use crate::wire::Token;

/// One connect of a runtime's `Client`: the driver opens a socket to
/// [`target`](Self::target) (naming failures with
/// [`opened`](Self::opened)), takes the
/// [`control_session`](Self::control_session) and, after the login and if
/// [`wants_data_socket`](Self::wants_data_socket), opens a second socket
/// for the [`data_session`](Self::data_session); last it turns the plan
/// into the handles' state with [`into_handle`](Self::into_handle).
#[derive(Debug)]
pub struct ConnectPlan {
    /// The address as given, for error messages.
    addr: String,
    target: Target,
    options: ClientOptions,
    /// TLS sessions still to hand out: control first, then data.
    tls: [Option<TlsSession>; 2],
    /// Why the session ended, shared by the control task and the handles.
    ended: SessionEnd,
}

impl ConnectPlan {
    /// Parses `addr` (`host:port`, `host`, or a Unix-socket path) and
    /// prepares the TLS sessions `options` ask for.
    pub fn new(addr: &str, options: ClientOptions) -> Result<Self, SessionError> {
        let target = Target::parse(addr);
        let tls = options.tls_sessions(&target)?;
        Ok(Self {
            addr: addr.to_owned(),
            target,
            options,
            tls,
            ended: SessionEnd::new(),
        })
    }

    /// Where both sockets connect.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The outcome of opening a socket, a failure naming the address.
    pub fn opened<T>(&self, result: std::io::Result<T>) -> Result<T, SessionError> {
        result.map_err(|source| SessionError::Connect {
            addr: self.addr.clone(),
            source,
        })
    }

    /// The control socket's session; the login's outcome goes to `login`.
    pub fn control_session<W: Waiters>(
        &mut self,
        login: W::Login,
        now: Instant,
    ) -> Result<ControlSession<W>, SessionError> {
        let control = self.options.control_client(self.tls[0].take(), now)?;
        Ok(ControlSession::new(
            control,
            login,
            self.options.max_in_flight,
            self.ended.clone(),
        ))
    }

    /// Whether to open the data socket (not for a publish-only client).
    pub fn wants_data_socket(&self) -> bool {
        self.options.data_socket
    }

    /// Capacity of the pushed-message channel.
    pub fn queue_capacity(&self) -> usize {
        self.options.queue_capacity()
    }

    /// The data socket's session for the session of `token`; `ready`
    /// learns whether the server accepted it.
    pub fn data_session<W: Waiters>(
        &mut self,
        token: Token,
        ready: W::Reply,
        now: Instant,
    ) -> DataSession<W> {
        let data = self.options.data_client(token, self.tls[1].take(), now);
        DataSession::new(data, ready)
    }

    /// The state every clone of the connected `Client` shares: `commands`
    /// to the control task, the `messages` receiver if the data socket is
    /// open.
    pub fn into_handle<C, M>(self, commands: C, messages: Option<M>) -> ClientHandle<C, M> {
        ClientHandle::new(commands, messages, self.ended)
    }
}
