//! The simulated world's fixed data (users, ACL variants, topics, filters,
//! limits) and the per-connection model the oracle keeps: what the server
//! must have done with each completed frame, and what the client must read.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::Limits;
use crate::acl::{Acl, UserRights};
use crate::auth::Passwords;
use crate::broker::AuthConfig;
use crate::config::parse_acl;
use crate::node::ConnId;
use crate::topic::filter_matches;
use crate::wire::Token;

/// A bcrypt hash (cost 4, about a millisecond to check) of [`PASSWORD`].
/// Fixed rather than generated so a run depends on its seed only.
pub(super) const PASSWORD_HASH: &str =
    "$2b$04$JqY7qpC4eu7LjFmPlSa2UeM6ixrmIcnDM/0kEE52ciqe1C5tLzm8q";
/// The password of every named user.
pub(super) const PASSWORD: &str = "secret";
/// Logins a client may use (`""` is anonymous).
pub(super) const USERS: [&str; 3] = ["", "alice", "bob"];
/// Priority byte of every publish.
pub(super) const PRIO: u8 = 0x7F;
/// Bytes of a payload that carry its message number.
pub(super) const TAG_LEN: usize = 8;
/// Data-socket timeout byte of the clients (seconds).
pub(super) const DATA_TIMEOUT: u8 = 10;

/// Topics published: raw form and normalised form. The last is one level
/// too deep for [`limits`].
pub(super) const TOPICS: [(&str, &str); 7] = [
    ("a", "a"),
    ("b", "b"),
    ("a/b", "a/b"),
    ("b/a", "b/a"),
    ("/b//b", "b/b"),
    ("a/", "a/"),
    ("a/b/a/b", "a/b/a/b"),
];

/// Filters subscribed: raw form and normalised form (`None`: invalid or
/// too deep, refused with ERR).
pub(super) const FILTERS: [(&str, Option<&str>); 12] = [
    ("#", Some("#")),
    ("+", Some("+")),
    ("a", Some("a")),
    ("a/#", Some("a/#")),
    ("a/+", Some("a/+")),
    ("+/b", Some("+/b")),
    ("+/+", Some("+/+")),
    ("b/#", Some("b/#")),
    ("a/+/#", Some("a/+/#")),
    ("/b//+", Some("b/+")),
    ("a#", None),
    ("+/+/+/+", None),
];

/// One access configuration: whether anonymous login is on, and per login
/// (`_` is anonymous) its `sub` and `pub` masks.
pub(super) struct Variant {
    anonymous: bool,
    entries: &'static [(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )],
}

/// The configurations the node is reloaded between, mid-stream.
pub(super) const VARIANTS: [Variant; 4] = [
    Variant {
        anonymous: true,
        entries: &[
            ("_", &["#"], &["#"]),
            ("alice", &["#"], &["#"]),
            ("bob", &["#"], &["#"]),
        ],
    },
    Variant {
        anonymous: true,
        entries: &[
            ("_", &["a/#"], &["a/+"]),
            ("alice", &["+/b", "b/#"], &["b/#", "a/b"]),
            ("bob", &["a/+", "b/+"], &["#"]),
        ],
    },
    Variant {
        anonymous: false,
        entries: &[("_", &["#"], &["#"]), ("alice", &["#"], &["a/#"])],
    },
    Variant {
        anonymous: true,
        entries: &[("_", &["+"], &["b"]), ("bob", &["b/#"], &["b/a"])],
    },
];

impl Variant {
    fn entry(
        &self,
        login: &str,
    ) -> Option<&(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )> {
        let key = if login.is_empty() { "_" } else { login };
        self.entries.iter().find(|e| e.0 == key)
    }

    /// Whether a session of `login` keeps any rights under this variant
    /// (anonymous sessions lose them when anonymous access goes off).
    fn live(&self, login: &str) -> bool {
        (!login.is_empty() || self.anonymous) && self.entry(login).is_some()
    }

    /// Whether `login` may log in with a right or wrong password.
    pub(super) fn may_log_in(&self, login: &str, password_ok: bool) -> bool {
        self.live(login) && (login.is_empty() || password_ok)
    }

    /// Whether a live session of `login` may publish `topic`, decided by
    /// the masks and the reference matcher, not the broker's ACL code.
    pub(super) fn may_publish(&self, login: &str, topic: &str) -> bool {
        self.live(login)
            && self
                .entry(login)
                .is_some_and(|e| e.2.iter().any(|m| filter_matches(m, topic)))
    }

    /// Whether some `sub` mask of `login` matches `topic`.
    pub(super) fn sub_mask_matches(&self, login: &str, topic: &str) -> bool {
        self.live(login)
            && self
                .entry(login)
                .is_some_and(|e| e.1.iter().any(|m| filter_matches(m, topic)))
    }

    /// The ACL file's text, parsed as the server would.
    fn acl(&self) -> Result<Acl, String> {
        let mut text = String::new();
        for (login, sub, publish) in self.entries {
            text.push_str(&format!("{login}: {{sub: {sub:?}, pub: {publish:?}}}\n"));
        }
        parse_acl(&text, Path::new("acl.yml"), limits().max_topic_depth).map_err(|e| e.to_string())
    }
}

/// The parsed access configurations, one per [`VARIANTS`] entry.
pub(super) struct Rules {
    acls: Vec<Acl>,
    passwords: Passwords,
}

impl Rules {
    /// Parses every variant and the password file.
    pub(super) fn new() -> Result<Self, String> {
        let acls = VARIANTS
            .iter()
            .map(Variant::acl)
            .collect::<Result<_, _>>()?;
        let text: String = USERS
            .iter()
            .filter(|u| !u.is_empty())
            .map(|u| format!("{u}:{PASSWORD_HASH}\n"))
            .collect();
        let passwords = Passwords::parse(&text, Path::new("passwd")).map_err(|e| e.to_string())?;
        Ok(Self { acls, passwords })
    }

    /// The broker's access configuration for variant `v`.
    pub(super) fn auth(&self, v: usize) -> AuthConfig {
        AuthConfig {
            allow_anonymous: VARIANTS[v].anonymous,
            acl: self.acls[v].clone(),
            passwords: Some(self.passwords.clone()),
            keys: None,
        }
    }

    /// The rights a live session of `login` has under variant `v`.
    pub(super) fn rights(&self, v: usize, login: &str) -> Arc<UserRights> {
        match self.acls[v].rights(login) {
            Some(rights) if VARIANTS[v].live(login) => rights,
            _ => Arc::new(UserRights::none()),
        }
    }
}

/// The node's limits: small, so queues overflow and sessions run out.
pub(super) fn limits() -> Limits {
    Limits {
        max_topic_depth: 2,
        max_topic_length: 4096,
        max_pub_size: 4096,
        data_queue: 8,
        data_queue_bytes: 4096,
        max_subscriptions_per_client: 4,
        max_sessions: 5,
        timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// Message `id`'s payload of `len` bytes: its number, then filler.
pub(super) fn payload(id: usize, len: usize) -> Vec<u8> {
    let tag = (id as u64).to_le_bytes();
    let mut out = tag.to_vec();
    out.resize(len.max(TAG_LEN), tag[0]);
    out
}

/// Which socket a modelled connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A control socket.
    Control,
    /// A data socket.
    Data,
}

/// A frame a client queued, interpreted when its last byte reaches the
/// server.
#[derive(Debug, Clone)]
pub(super) enum Frame {
    /// The socket's greeting.
    Greeting,
    /// A login with a right or wrong password.
    Login {
        login: &'static str,
        password_ok: bool,
    },
    /// A data hello with the token of control connection `control`.
    DataHello { control: u64 },
    /// NOP.
    Nop,
    /// PUBLISH of message `msg`.
    Publish { msg: usize },
    /// SUBSCRIBE to `FILTERS[i]`.
    Subscribe(usize),
    /// UNSUBSCRIBE from `FILTERS[i]`.
    Unsubscribe(usize),
    /// BYE.
    Bye,
}

/// Something in flight on one direction of a connection.
#[derive(Debug)]
pub(super) enum Packet {
    /// Stream bytes.
    Bytes(Vec<u8>),
    /// The sender closed its end.
    Fin,
}

/// A session as the server must hold it.
#[derive(Debug)]
pub(super) struct Session {
    pub login: &'static str,
    pub filters: BTreeSet<&'static str>,
    /// The bound data connection, by key.
    pub data: Option<u64>,
}

/// The server side of a connection, as the model predicts it.
#[derive(Debug)]
pub(super) enum Phase {
    /// Greeting and login (or data hello) not complete yet.
    Opening,
    /// A logged-in control socket.
    Session(Session),
    /// A data socket bound to control connection `control`.
    Bound { control: u64 },
    /// Closed by the server.
    Closed,
}

/// What a client must read next on a socket.
#[derive(Debug)]
pub(super) enum Expect {
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// A 32-byte session token.
    Token,
}

/// One connection: the network in both directions, the server side's
/// predicted state, and the client side's reading state.
#[derive(Debug)]
pub(super) struct Conn {
    pub id: ConnId,
    pub kind: Kind,
    /// The client index reading it; `None` once the client crashed or
    /// vanished (the socket is an orphan the server must clean up).
    pub client: Option<usize>,
    pub up: VecDeque<(Instant, Packet)>,
    pub down: VecDeque<(Instant, Packet)>,
    /// Frames queued by the client with the stream offset of their end.
    pub frames: VecDeque<(u64, Frame)>,
    pub queued: u64,
    pub delivered: u64,
    pub phase: Phase,
    /// When the server must close it for want of a complete operation.
    pub deadline: Option<Instant>,
    /// Bytes the server may still write to an orphan (a vanished peer's
    /// kernel buffer); it stalls after that.
    pub void_budget: usize,
    /// Whether the end of stream was put on the way to the client.
    pub eof_sent: bool,
    /// Client side: bytes received, not yet parsed.
    pub rx: BytesMut,
    pub expect: VecDeque<Expect>,
    /// Data sockets: messages received, and the last sequence number per
    /// publisher.
    pub seen: HashSet<usize>,
    pub last_seq: BTreeMap<u64, u64>,
}

impl Conn {
    /// A new socket of `client`, opened at `now`.
    pub(super) fn new(id: ConnId, kind: Kind, client: usize, now: Instant) -> Self {
        Self {
            id,
            kind,
            client: Some(client),
            up: VecDeque::new(),
            down: VecDeque::new(),
            frames: VecDeque::new(),
            queued: 0,
            delivered: 0,
            phase: Phase::Opening,
            deadline: Some(now + limits().timeout),
            void_budget: 0,
            eof_sent: false,
            rx: BytesMut::new(),
            expect: VecDeque::new(),
            seen: HashSet::new(),
            last_seq: BTreeMap::new(),
        }
    }

    /// The session, when this is a logged-in control socket.
    pub(super) fn session(&self) -> Option<&Session> {
        match &self.phase {
            Phase::Session(s) => Some(s),
            _ => None,
        }
    }

    /// The session, mutably.
    pub(super) fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.phase {
            Phase::Session(s) => Some(s),
            _ => None,
        }
    }
}

/// A published message as the model knows it.
#[derive(Debug)]
pub(super) struct Published {
    /// Normalised topic.
    pub topic: &'static str,
    pub len: usize,
    pub publisher: u64,
    pub seq: u64,
    /// Whether the server accepted it (known once its frame completed).
    pub accepted: bool,
    /// The variant in force when it was routed.
    pub variant: usize,
    /// Data connections that may receive it, with their session's login.
    pub eligible: BTreeMap<u64, &'static str>,
}

/// A simulated client: its sockets and what it learnt.
#[derive(Debug, Default)]
pub(super) struct Client {
    pub control: Option<u64>,
    pub data: Option<u64>,
    pub token: Option<Token>,
    /// Said BYE: sends nothing more on this control socket.
    pub leaving: bool,
    /// Reads its data socket rarely and in small pieces.
    pub slow: bool,
    /// Identity for per-publisher order; new after a crash.
    pub publisher: u64,
    pub seq: u64,
    pub last_sent: Option<Instant>,
}
