//! The vocabulary of the broker's audit events and their counters: which
//! operation the ACL refused ([`AccessOp`]), why a UDP datagram was
//! dropped ([`UdpReject`]) and what became of each one ([`UdpVerdict`]).

use crate::udp::UdpError;

/// An operation the ACL can refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessOp {
    /// PUBLISH over TCP.
    Publish,
    /// SUBSCRIBE.
    Subscribe,
    /// PUBLISH_REPL by a login that is not a replicator.
    Replication,
    /// A UDP publish.
    UdpPublish,
}

impl AccessOp {
    /// Every operation, in the order of [`Self::index`].
    pub const ALL: [AccessOp; 4] = [
        AccessOp::Publish,
        AccessOp::Subscribe,
        AccessOp::Replication,
        AccessOp::UdpPublish,
    ];

    /// Position in [`Self::ALL`], for counters kept per operation.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A metric label: `publish`, `subscribe`, `replication`, `udp_publish`.
    pub fn label(self) -> &'static str {
        match self {
            AccessOp::Publish => "publish",
            AccessOp::Subscribe => "subscribe",
            AccessOp::Replication => "replication",
            AccessOp::UdpPublish => "udp_publish",
        }
    }

    /// Why the operation was refused, in words.
    pub fn reason(self) -> &'static str {
        match self {
            AccessOp::Publish | AccessOp::UdpPublish => {
                "the ACL does not allow publishing to this topic"
            }
            AccessOp::Subscribe => "the ACL does not allow subscribing to this filter",
            AccessOp::Replication => "the login is not a replicator in the ACL",
        }
    }
}

impl std::fmt::Display for AccessOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccessOp::Publish => "publish",
            AccessOp::Subscribe => "subscribe",
            AccessOp::Replication => "replication",
            AccessOp::UdpPublish => "UDP publish",
        })
    }
}

/// Why a UDP datagram was dropped or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpReject {
    /// Larger than `udp_frame_size`.
    Oversize {
        /// Bytes received (at most one more than the limit: the rest was
        /// cut off by the receive buffer).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An encrypted body did not open: no key for the login, a wrong key,
    /// or a tampered datagram.
    BadKey,
    /// The datagram does not decode.
    Malformed(UdpError),
    /// The login or password was refused.
    LoginRefused,
    /// The ACL does not allow publishing to the topic.
    AclDenied {
        /// The topic (lossy UTF-8).
        topic: String,
    },
}

impl UdpReject {
    /// The reason a datagram that failed to open or decode was dropped.
    pub(super) fn from_error(err: UdpError) -> Self {
        match err {
            UdpError::TooLarge { len, max } => UdpReject::Oversize { len, max },
            UdpError::Auth => UdpReject::BadKey,
            other => UdpReject::Malformed(other),
        }
    }

    /// The matching [`UdpVerdict`].
    pub fn verdict(&self) -> UdpVerdict {
        match self {
            UdpReject::Oversize { .. } => UdpVerdict::Oversize,
            UdpReject::BadKey => UdpVerdict::BadKey,
            UdpReject::Malformed(_) => UdpVerdict::Malformed,
            UdpReject::LoginRefused => UdpVerdict::LoginRefused,
            UdpReject::AclDenied { .. } => UdpVerdict::AclDenied,
        }
    }
}

impl std::fmt::Display for UdpReject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UdpReject::Oversize { len, max } => write!(
                f,
                "datagram of {len} bytes or more exceeds udp_frame_size ({max} bytes)"
            ),
            UdpReject::BadKey => f.write_str(
                "the encrypted body did not open: no key for the login, a wrong key or a tampered datagram",
            ),
            UdpReject::Malformed(err) => write!(f, "malformed datagram: {err}"),
            UdpReject::LoginRefused => f.write_str("login or password refused"),
            UdpReject::AclDenied { topic } => write!(
                f,
                "the ACL does not allow publishing to topic {topic:?}"
            ),
        }
    }
}

/// What became of a UDP datagram, for the metric counted per outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpVerdict {
    /// Published.
    Accepted,
    /// Refused with ERR: the topic does not parse.
    BadTopic,
    /// See [`UdpReject::AclDenied`].
    AclDenied,
    /// See [`UdpReject::LoginRefused`].
    LoginRefused,
    /// See [`UdpReject::BadKey`].
    BadKey,
    /// See [`UdpReject::Oversize`].
    Oversize,
    /// See [`UdpReject::Malformed`].
    Malformed,
}

impl UdpVerdict {
    /// Every outcome, in the order of [`Self::index`].
    pub const ALL: [UdpVerdict; 7] = [
        UdpVerdict::Accepted,
        UdpVerdict::BadTopic,
        UdpVerdict::AclDenied,
        UdpVerdict::LoginRefused,
        UdpVerdict::BadKey,
        UdpVerdict::Oversize,
        UdpVerdict::Malformed,
    ];

    /// Position in [`Self::ALL`], for counters kept per outcome.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A metric label: `accepted`, `bad_topic`, `acl_denied`,
    /// `login_refused`, `bad_key`, `oversize`, `malformed`.
    pub fn label(self) -> &'static str {
        match self {
            UdpVerdict::Accepted => "accepted",
            UdpVerdict::BadTopic => "bad_topic",
            UdpVerdict::AclDenied => "acl_denied",
            UdpVerdict::LoginRefused => "login_refused",
            UdpVerdict::BadKey => "bad_key",
            UdpVerdict::Oversize => "oversize",
            UdpVerdict::Malformed => "malformed",
        }
    }
}
