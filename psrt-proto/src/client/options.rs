//! What an async client connects with, and the constants every runtime's
//! client driver shares.

use std::time::{Duration, Instant};

use super::{ClientError, ControlClient, DataClient, Target};
use crate::tls::{TlsError, TlsSession};
use crate::wire::Token;

/// Priority byte of every publish (reserved by the protocol).
pub const PRIORITY: u8 = 0x7F;
/// Requests buffered between client handles and the control task.
pub const COMMAND_QUEUE: usize = 1024;
/// Bytes of requests waiting to be written before a control task stops
/// taking more: a slow server back-pressures the callers.
pub const MAX_PENDING_WRITE: usize = 4 * 1024 * 1024;
/// Bytes a client socket reads at a time.
pub const READ_CHUNK: usize = 64 * 1024;
/// Chunks gathered into one vectored write.
pub const MAX_IOV: usize = 64;

/// TLS settings of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM certificates to trust exactly; `None` trusts the Mozilla roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Name the server certificate must match; `None` takes the host of
    /// the target address.
    pub server_name: Option<String>,
    /// Client certificate to present when the server asks for one: (PEM
    /// certificate chain, PEM private key).
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

/// How a runtime crate's `Client::connect` logs in and what it sets up.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Login name; empty for anonymous access.
    pub login: String,
    /// Password; ignored by servers on Unix sockets.
    pub password: String,
    /// TLS, or `None` for a plain connection.
    pub tls: Option<TlsOptions>,
    /// The server's keep-alive timeout: NOPs go out every half of it, and
    /// connecting or a reply taking longer fails.
    pub timeout: Duration,
    /// Whether to open the data socket; `false` makes a publish-only
    /// client, which receives no messages.
    pub data_socket: bool,
    /// Messages buffered for `Client::take_messages` before the data task
    /// stops reading (the server then drops a slow consumer).
    pub queue: usize,
    /// Largest `topic 00 payload` accepted on the data socket.
    pub max_message: usize,
    /// Requests sent and not yet answered, at most.
    pub max_in_flight: usize,
    /// Try the nodes of a cluster address list (`node1:2873,node2:2873`)
    /// in random order instead of the order given, so that clients
    /// sharing one list spread over the nodes.
    pub shuffle_nodes: bool,
    /// How long a client connected through a list of several nodes keeps
    /// trying them after losing its node, before it gives up; zero turns
    /// failover off (the session then ends with its node).
    pub failover: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            login: String::new(),
            password: String::new(),
            tls: None,
            timeout: Duration::from_secs(5),
            data_socket: true,
            queue: 1024,
            max_message: crate::Limits::default().max_pub_size,
            max_in_flight: 4096,
            shuffle_nodes: false,
            failover: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("login", &self.login)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("data_socket", &self.data_socket)
            .field("queue", &self.queue)
            .field("shuffle_nodes", &self.shuffle_nodes)
            .field("failover", &self.failover)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// One TLS session for the control socket and one for the data socket,
    /// both from one configuration; `None`s when TLS is off.
    pub fn tls_sessions(&self, target: &Target) -> Result<[Option<TlsSession>; 2], TlsError> {
        let Some(tls) = &self.tls else {
            return Ok([None, None]);
        };
        let identity = tls
            .client_cert
            .as_ref()
            .map(|(cert, key)| (cert.as_slice(), key.as_slice()));
        let config = crate::tls::client_config_with_cert(tls.ca_pem.as_deref(), identity)?;
        let name = tls.server_name.as_deref().unwrap_or(target.tls_name());
        Ok([
            Some(TlsSession::client(config.clone(), name)?),
            Some(TlsSession::client(config, name)?),
        ])
    }

    /// The control-socket state machine these options describe.
    pub fn control_client(
        &self,
        tls: Option<TlsSession>,
        now: Instant,
    ) -> Result<ControlClient, ClientError> {
        ControlClient::new(
            &self.login,
            self.password.as_bytes(),
            tls,
            self.timeout,
            now,
        )
    }

    /// The data-socket state machine for the session of `token`.
    ///
    /// The hello carries whole seconds and the server beacons every half
    /// of them, so the silence limit is at least one second.
    pub fn data_client(&self, token: Token, tls: Option<TlsSession>, now: Instant) -> DataClient {
        let silence = self.timeout.max(Duration::from_secs(1));
        DataClient::new(token, silence, tls, self.max_message, now)
    }

    /// Capacity of the pushed-message channel (at least 1).
    pub fn queue_capacity(&self) -> usize {
        self.queue.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_options_make_no_tls_sessions() {
        let sessions = ClientOptions::default()
            .tls_sessions(&Target::parse("localhost"))
            .unwrap();
        assert!(sessions.iter().all(Option::is_none));
    }

    #[test]
    fn tls_options_make_two_sessions() {
        let options = ClientOptions {
            tls: Some(TlsOptions::default()),
            ..ClientOptions::default()
        };
        let sessions = options.tls_sessions(&Target::parse("[::1]:9")).unwrap();
        assert!(sessions.iter().all(Option::is_some));
    }

    #[test]
    fn a_bad_server_name_is_refused() {
        let options = ClientOptions {
            tls: Some(TlsOptions {
                server_name: Some("not a name!".into()),
                ..TlsOptions::default()
            }),
            ..ClientOptions::default()
        };
        assert!(options.tls_sessions(&Target::parse("x")).is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let options = ClientOptions {
            password: "secret".into(),
            ..ClientOptions::default()
        };
        assert!(!format!("{options:?}").contains("secret"));
    }

    #[test]
    fn queue_capacity_is_never_zero() {
        let options = ClientOptions {
            queue: 0,
            ..ClientOptions::default()
        };
        assert_eq!(options.queue_capacity(), 1);
    }
}
