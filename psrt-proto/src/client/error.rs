//! The error of the async clients every runtime crate offers: the state
//! machines' errors plus what sockets, timers and channels add.

use std::time::Duration;

use crate::tls::TlsError;
use crate::udp::UdpError;
use crate::wire::status;

/// Why an operation of a runtime crate's async client failed.
///
/// Shared by the tokio, smol and monoio clients (each re-exports it as
/// `client::ClientError`) so applications handle errors the same way on
/// every runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The socket could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The target as given.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A socket failed after it was opened.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS configuration was refused (bad CA file, bad server name).
    #[error("TLS setup failed: {0}")]
    Tls(#[from] TlsError),
    /// The protocol state machine failed or refused a request (login
    /// refused, invalid topic, protocol error from the server...).
    #[error(transparent)]
    Protocol(#[from] super::ClientError),
    /// The server did not answer within the timeout.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// The server's ACL denied the topic (`ERR_ACCESS`).
    #[error("access denied")]
    AccessDenied,
    /// The server answered with an error status (`ERR` or unexpected).
    #[error("the server refused the request (status {0:#04x})")]
    Refused(u8),
    /// The session ended before the request was answered.
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// A UDP datagram could not be built or the ack was malformed.
    #[error("UDP: {0}")]
    Udp(#[from] UdpError),
}

impl SessionError {
    /// The session ended with no more specific reason known (a reply
    /// channel closed unanswered, or the reason is not recorded yet).
    pub fn session_ended() -> Self {
        SessionError::Disconnected("the session ended".into())
    }
}

/// Maps a reply status to the outcome of a request: `OK` succeeds,
/// `ERR_ACCESS` is [`SessionError::AccessDenied`], anything else
/// [`SessionError::Refused`].
pub fn status_result(code: u8) -> Result<(), SessionError> {
    match code {
        status::OK => Ok(()),
        status::ERR_ACCESS => Err(SessionError::AccessDenied),
        other => Err(SessionError::Refused(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        assert!(status_result(status::OK).is_ok());
        assert!(matches!(
            status_result(status::ERR_ACCESS),
            Err(SessionError::AccessDenied)
        ));
        assert!(matches!(
            status_result(status::ERR),
            Err(SessionError::Refused(status::ERR))
        ));
    }
}
