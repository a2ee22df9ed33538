//! Target `node_ops`: a [`Node`] driven by an arbitrary list of client
//! operations, checked against a model after every step.
//!
//! Four model clients log in (anonymously or as a password user), open and
//! close data sockets, subscribe from a small filter alphabet, publish
//! tagged payloads, read their data sockets in arbitrary slices, say BYE or
//! vanish, while time passes and the ACL is reloaded between four variants.
//! A fifth "rogue" session with no rights sends raw bytes. The model
//! predicts every reply exactly and checks:
//!
//! * every delivered message was published (byte for byte), to a topic
//!   matching one of the subscriber's filters and its ACL masks at publish
//!   time, by a publisher the ACL allowed; none is delivered twice, and a
//!   subscriber sees them in publish order;
//! * nothing is lost: after a full read of a data socket that is still open,
//!   every message it should have got has arrived;
//! * sessions, subscriptions and counters match the model; data queues stay
//!   within `data_queue`;
//! * control sockets time out exactly when idle for the timeout, and once
//!   every client is gone the broker holds no session and no subscription.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;

use super::{
    PASSWORD, REPLY_CODES, TestServer, data_hello, login_frames, test_passwords, topics_frame,
};
use crate::Limits;
use crate::acl::{Acl, UserRights};
use crate::broker::AuthConfig;
use crate::config::parse_acl;
use crate::conn::{CloseReason, Transport};
use crate::node::ConnId;
use crate::topk::SortBy;
use crate::wire::push::{self, Push};
use crate::wire::request;
use crate::wire::{SocketKind, TOKEN_LEN, Token, op, status};

/// Model clients.
const CLIENTS: usize = 4;
/// Operations read from one input at most.
const MAX_OPS: usize = 256;
/// Bytes of a payload that carry its message number.
const TAG_LEN: usize = 8;
/// Priority byte of every model publish.
const PRIO: u8 = 0x7F;
/// Data-socket timeout byte of the model clients (seconds).
const DATA_TIMEOUT: u8 = 10;

/// Topics published: raw form and normalised form. The last is one level
/// too deep for [`limits`].
const TOPICS: [(&str, &str); 8] = [
    ("a", "a"),
    ("b", "b"),
    ("a/b", "a/b"),
    ("b/a", "b/a"),
    ("a/a/b", "a/a/b"),
    ("/b//b", "b/b"),
    ("a/", "a/"),
    ("a/b/a/b/a", "a/b/a/b/a"),
];

/// Filters subscribed: raw form and normalised form (`None`: invalid or
/// too deep, refused with ERR).
const FILTERS: [(&str, Option<&str>); 14] = [
    ("#", Some("#")),
    ("+", Some("+")),
    ("a", Some("a")),
    ("a/#", Some("a/#")),
    ("a/+", Some("a/+")),
    ("+/b", Some("+/b")),
    ("+/+", Some("+/+")),
    ("b/#", Some("b/#")),
    ("+/+/+", Some("+/+/+")),
    ("a/+/#", Some("a/+/#")),
    ("/b//+", Some("b/+")),
    ("a#", None),
    ("a/#/b", None),
    ("+/+/+/+/+", None),
];

/// An ACL entry: login, `sub` masks, `pub` masks.
type Entry = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// One ACL file: whether anonymous login is on, and per login (`_` is
/// anonymous) its `sub` and `pub` masks.
struct Variant {
    anonymous: bool,
    entries: &'static [Entry],
}

/// The ACL files the node is reloaded between. The rogue never gets a
/// right, so its raw bytes cannot reach the model clients.
const VARIANTS: [Variant; 4] = [
    Variant {
        anonymous: true,
        entries: &[
            ("_", &["#"], &["#"]),
            ("alice", &["#"], &["#"]),
            ("bob", &["#"], &["#"]),
            ("rogue", &[], &[]),
        ],
    },
    Variant {
        anonymous: true,
        entries: &[
            ("_", &["a/#"], &["a/+"]),
            ("alice", &["+/b", "b/#"], &["b/#", "a/b"]),
            ("bob", &["a/+", "b/+"], &["#"]),
            ("rogue", &[], &[]),
        ],
    },
    Variant {
        anonymous: false,
        entries: &[
            ("_", &["#"], &["#"]),
            ("alice", &["#"], &["a/#"]),
            ("rogue", &[], &[]),
        ],
    },
    Variant {
        anonymous: true,
        entries: &[("_", &["+"], &["b"]), ("bob", &["b/#"], &["b/a"])],
    },
];

/// Who a model client logs in as.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum User {
    Anonymous,
    Alice,
    Bob,
}

impl User {
    fn login(self) -> &'static str {
        match self {
            User::Anonymous => "",
            User::Alice => "alice",
            User::Bob => "bob",
        }
    }
}

/// One step of a run. Client, topic, filter and variant numbers wrap.
#[derive(Debug, Arbitrary)]
enum Step {
    /// Control socket, greeting and login, the bytes cut at `cut`.
    Login {
        client: u8,
        user: User,
        wrong_password: bool,
        cut: u8,
    },
    /// A data socket with the client's token, the bytes cut at `cut`.
    OpenData {
        client: u8,
        cut: u8,
    },
    Subscribe {
        client: u8,
        filter: u8,
    },
    Unsubscribe {
        client: u8,
        filter: u8,
    },
    /// A tagged payload of 8 + `size % 600` bytes.
    Publish {
        client: u8,
        topic: u8,
        size: u16,
    },
    Nop {
        client: u8,
    },
    /// Read at most `max` bytes of the data socket (0: everything).
    Recv {
        client: u8,
        max: u16,
    },
    CloseData {
        client: u8,
    },
    Disconnect {
        client: u8,
    },
    Bye {
        client: u8,
    },
    /// Let `ms % 4000` milliseconds pass.
    Advance {
        ms: u16,
    },
    Reload {
        variant: u8,
    },
    /// Raw bytes on the rogue's control socket.
    Raw {
        bytes: Vec<u8>,
    },
}

/// Runs the operations encoded in `data` (see the module docs).
pub fn check_node_ops(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(variant) = input.arbitrary::<u8>() else {
        return;
    };
    let mut run = Run::new(usize::from(variant) % VARIANTS.len());
    for step in input
        .arbitrary_iter::<Step>()
        .into_iter()
        .flatten()
        .take(MAX_OPS)
    {
        let Ok(step) = step else { break };
        run.apply(step);
        run.check_invariants();
    }
    run.finish();
}

fn limits() -> Limits {
    Limits {
        max_topic_depth: 3,
        max_topic_length: 4096,
        max_pub_size: 4096,
        data_queue: 4,
        data_queue_bytes: 2048,
        max_subscriptions_per_client: 4,
        max_sessions: 3,
        timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// A logged-in control socket.
struct Control {
    socket: ConnId,
    login: &'static str,
    token: Token,
    filters: BTreeSet<&'static str>,
    /// When the server closes it if no operation comes.
    deadline: Instant,
}

/// A data socket and what it should deliver.
struct DataSocket {
    socket: ConnId,
    /// Bytes read and not yet decoded.
    rx: BytesMut,
    /// Messages queued for it and not yet received.
    expected: BTreeSet<u64>,
    /// Last message received.
    last: Option<u64>,
    /// Bound to the client's current session (false once that ended).
    live: bool,
}

#[derive(Default)]
struct Client {
    control: Option<Control>,
    data: Option<DataSocket>,
}

/// A published message: normalised topic and payload size.
struct Published {
    topic: &'static str,
    size: usize,
}

struct Run {
    server: TestServer,
    acls: Vec<Acl>,
    variant: usize,
    clients: [Client; CLIENTS],
    rogue: Option<ConnId>,
    published: Vec<Published>,
    sub_ops: u64,
    deliveries_due: u64,
    received: u64,
}

impl Run {
    fn new(variant: usize) -> Self {
        let acls: Vec<Acl> = VARIANTS.iter().map(Variant::acl).collect();
        let server = TestServer::with_auth(limits(), auth(&acls, variant));
        Self {
            server,
            acls,
            variant,
            clients: Default::default(),
            rogue: None,
            published: Vec::new(),
            sub_ops: 0,
            deliveries_due: 0,
            received: 0,
        }
    }

    fn apply(&mut self, step: Step) {
        match step {
            Step::Login {
                client,
                user,
                wrong_password,
                cut,
            } => self.login(index(client), user, wrong_password, cut),
            Step::OpenData { client, cut } => self.open_data(index(client), cut),
            Step::Subscribe { client, filter } => self.subscribe(index(client), filter),
            Step::Unsubscribe { client, filter } => self.unsubscribe(index(client), filter),
            Step::Publish {
                client,
                topic,
                size,
            } => self.publish(index(client), topic, size),
            Step::Nop { client } => self.nop(index(client)),
            Step::Recv { client, max } => self.recv(index(client), max),
            Step::CloseData { client } => self.close_data(index(client)),
            Step::Disconnect { client } => self.disconnect(index(client)),
            Step::Bye { client } => self.bye(index(client)),
            Step::Advance { ms } => self.advance(ms),
            Step::Reload { variant } => self.reload(usize::from(variant) % VARIANTS.len()),
            Step::Raw { bytes } => self.raw(bytes.get(..512).unwrap_or(&bytes)),
        }
    }

    // ----- steps -----

    fn login(&mut self, c: usize, user: User, wrong_password: bool, cut: u8) {
        if self.clients[c].control.is_some() {
            return;
        }
        let login = user.login();
        let password: &[u8] = match (user, wrong_password) {
            (User::Anonymous, _) => b"",
            (_, true) => b"wrong",
            (_, false) => PASSWORD.as_bytes(),
        };
        let granted = self.login_allowed(login, wrong_password);
        let socket = self.connect(c);
        let out = self.send_cut(socket, &login_frames(login, password), cut);
        let Some(token) = self.check_login_reply(socket, &out, granted) else {
            return;
        };
        self.clients[c].control = Some(Control {
            socket,
            login,
            token,
            filters: BTreeSet::new(),
            deadline: self.server.now + limits().timeout,
        });
    }

    /// Whether the login must succeed: an ACL entry, the right password,
    /// anonymous access on for the anonymous user, and room for a session.
    fn login_allowed(&self, login: &str, wrong_password: bool) -> bool {
        let variant = &VARIANTS[self.variant];
        let entry = variant.entry(login).is_some();
        let credentials = if login.is_empty() {
            variant.anonymous
        } else {
            !wrong_password
        };
        entry && credentials && self.live_sessions() < limits().max_sessions
    }

    /// Checks a login's answer: the token when granted, else a close.
    fn check_login_reply(&mut self, socket: ConnId, out: &[u8], granted: bool) -> Option<Token> {
        let reply = push::greeting_reply(SocketKind::Control);
        assert_eq!(out.get(..4), Some(&reply[..]), "greeting answered {out:?}");
        if !granted {
            assert_eq!(out.len(), 4, "refused login answered {out:?}");
            let reason = self.server.node.close_reason(socket);
            assert_eq!(reason, Some(CloseReason::LoginDenied));
            self.server.node.disconnect(socket);
            return None;
        }
        assert!(!self.server.node.is_closed(socket), "login refused");
        let token = out.get(4..).and_then(|t| Token::try_from(t).ok());
        assert!(token.is_some(), "login answered {out:?}");
        token
    }

    fn open_data(&mut self, c: usize, cut: u8) {
        let client = &self.clients[c];
        let token = client.control.as_ref().map_or([0; TOKEN_LEN], |s| s.token);
        let free = client
            .data
            .as_ref()
            .is_none_or(|d| !d.live || self.is_closed(d.socket));
        let accepted = client.control.is_some() && free;
        let socket = self.connect(c);
        let out = self.send_cut(socket, &data_hello(&token, DATA_TIMEOUT), cut);
        let code = if accepted { status::OK } else { status::ERR };
        let reply = [&push::greeting_reply(SocketKind::Data)[..], &[code]].concat();
        assert_eq!(out, reply, "data hello answered {out:?}");
        if !accepted {
            assert_eq!(
                self.server.node.close_reason(socket),
                Some(CloseReason::DataRefused)
            );
            self.server.node.disconnect(socket);
            return;
        }
        self.close_data(c);
        self.clients[c].data = Some(DataSocket {
            socket,
            rx: BytesMut::new(),
            expected: BTreeSet::new(),
            last: None,
            live: true,
        });
    }

    fn subscribe(&mut self, c: usize, filter: u8) {
        let (raw, normal) = FILTERS[usize::from(filter) % FILTERS.len()];
        let Some(login) = self.clients[c].control.as_ref().map(|s| s.login) else {
            return;
        };
        let rights = self.rights(login);
        let control = self.clients[c].control.as_mut();
        let Some(control) = control else { return };
        let expected = match normal {
            None => status::ERR,
            Some(filter) if !rights.may_subscribe(filter) => status::ERR_ACCESS,
            Some(filter)
                if !control.filters.contains(filter)
                    && control.filters.len() >= limits().max_subscriptions_per_client =>
            {
                status::ERR
            }
            Some(filter) => {
                control.filters.insert(filter);
                self.sub_ops += 1;
                status::OK
            }
        };
        self.control_request(c, &topics_frame(op::SUBSCRIBE, raw), expected);
    }

    fn unsubscribe(&mut self, c: usize, filter: u8) {
        let (raw, normal) = FILTERS[usize::from(filter) % FILTERS.len()];
        let Some(control) = self.clients[c].control.as_mut() else {
            return;
        };
        let expected = match normal {
            None => status::ERR,
            Some(filter) => {
                control.filters.remove(filter);
                status::OK
            }
        };
        self.control_request(c, &topics_frame(op::UNSUBSCRIBE, raw), expected);
    }

    fn publish(&mut self, c: usize, topic: u8, size: u16) {
        let (raw, normal) = TOPICS[usize::from(topic) % TOPICS.len()];
        let Some(login) = self.clients[c].control.as_ref().map(|s| s.login) else {
            return;
        };
        let id = self.published.len() as u64;
        let size = TAG_LEN + usize::from(size) % 600;
        let expected = if depth(normal) > limits().max_topic_depth {
            status::ERR
        } else if !VARIANTS[self.variant].may_publish(login, normal) {
            status::ERR_ACCESS
        } else {
            status::OK
        };
        let mut frame = BytesMut::new();
        request::encode_publish(&mut frame, PRIO, raw.as_bytes(), &payload(id, size));
        self.control_request(c, &frame, expected);
        if expected == status::OK {
            self.published.push(Published {
                topic: normal,
                size,
            });
            self.route(id, normal);
        }
    }

    /// Records which data sockets must receive message `id`.
    fn route(&mut self, id: u64, topic: &str) {
        let variant = &VARIANTS[self.variant];
        for client in &mut self.clients {
            let (Some(control), Some(data)) = (&client.control, &mut client.data) else {
                continue;
            };
            let open = data.live && !self.server.node.is_closed(data.socket);
            if !open || !control.filters.iter().any(|f| matches(f, topic)) {
                continue;
            }
            // Independent of the broker's cover check: a held filter only
            // lets through topics some `sub` mask matches.
            let masks = variant.live_entry(control.login).map_or(&[][..], |e| e.1);
            assert!(
                masks.iter().any(|m| matches(m, topic)),
                "{:?} holds filters {:?} reaching {topic:?} outside its masks {masks:?}",
                control.login,
                control.filters
            );
            data.expected.insert(id);
            self.deliveries_due += 1;
        }
    }

    fn nop(&mut self, c: usize) {
        if self.clients[c].control.is_some() {
            self.control_request(c, &[op::NOP], status::OK);
        }
    }

    fn recv(&mut self, c: usize, max: u16) {
        let Some(socket) = self.clients[c].data.as_ref().map(|d| d.socket) else {
            return;
        };
        let limit = if max == 0 {
            usize::MAX
        } else {
            usize::from(max)
        };
        let bytes = self
            .server
            .node
            .recv_at_most(socket, limit, self.server.now);
        assert!(bytes.len() <= limit);
        let closed = self.is_closed(socket);
        let reason = self.server.node.close_reason(socket);
        let Some(data) = self.clients[c].data.as_mut() else {
            return;
        };
        data.rx.extend_from_slice(&bytes);
        self.received += take_messages(data, &self.published);
        if closed {
            assert!(
                matches!(
                    reason,
                    Some(CloseReason::SessionGone | CloseReason::WriteStalled)
                ),
                "data socket closed: {reason:?}"
            );
        } else if limit == usize::MAX && data.live {
            assert!(data.rx.is_empty(), "a full read left a partial frame");
            assert!(
                data.expected.is_empty(),
                "messages lost: {:?}",
                data.expected
            );
        }
    }

    fn close_data(&mut self, c: usize) {
        if let Some(data) = self.clients[c].data.take() {
            self.server.node.disconnect(data.socket);
        }
    }

    fn disconnect(&mut self, c: usize) {
        if let Some(control) = self.clients[c].control.take() {
            self.server.node.disconnect(control.socket);
            self.session_ended(c);
        }
    }

    fn bye(&mut self, c: usize) {
        let Some(socket) = self.clients[c].control.as_ref().map(|s| s.socket) else {
            return;
        };
        let out = self.server.request(socket, &[op::BYE]);
        assert_eq!(out, [status::OK]);
        assert_eq!(
            self.server.node.close_reason(socket),
            Some(CloseReason::Bye)
        );
        self.disconnect(c);
    }

    fn advance(&mut self, ms: u16) {
        self.server.now += Duration::from_millis(u64::from(ms % 4000));
        let now = self.server.now;
        self.server.node.advance(now);
        for c in 0..CLIENTS {
            let Some(control) = &self.clients[c].control else {
                continue;
            };
            let due = now >= control.deadline;
            assert_eq!(self.is_closed(control.socket), due, "control timeout");
            if due {
                let reason = self.server.node.close_reason(control.socket);
                assert_eq!(reason, Some(CloseReason::Timeout));
                self.disconnect(c);
            }
        }
        if let Some(rogue) = self.rogue.filter(|&r| self.is_closed(r)) {
            self.server.node.disconnect(rogue);
            self.rogue = None;
        }
    }

    fn reload(&mut self, variant: usize) {
        self.variant = variant;
        self.server
            .node
            .broker_mut()
            .reload(auth(&self.acls, variant));
        for c in 0..CLIENTS {
            let Some(login) = self.clients[c].control.as_ref().map(|s| s.login) else {
                continue;
            };
            let rights = self.rights(login);
            if let Some(control) = self.clients[c].control.as_mut() {
                control.filters.retain(|f| rights.may_subscribe(f));
            }
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        if self.rogue.is_none() && !self.rogue_login() {
            return;
        }
        let Some(rogue) = self.rogue else { return };
        let out = self.server.request(rogue, bytes);
        assert!(
            out.iter().all(|b| REPLY_CODES.contains(b)),
            "rogue got {out:?}"
        );
        if self.is_closed(rogue) {
            self.server.node.disconnect(rogue);
            self.rogue = None;
        }
    }

    fn rogue_login(&mut self) -> bool {
        let granted = self.login_allowed("rogue", false);
        let socket = self
            .server
            .node
            .connect(Transport::Tcp, "rogue", self.server.now);
        let out = self
            .server
            .request(socket, &login_frames("rogue", PASSWORD.as_bytes()));
        if self.check_login_reply(socket, &out, granted).is_none() {
            return false;
        }
        self.rogue = Some(socket);
        true
    }

    // ----- checks -----

    fn check_invariants(&self) {
        let broker = self.server.node.broker();
        assert_eq!(broker.session_count(), self.live_sessions(), "sessions");
        let filters: usize = self
            .clients
            .iter()
            .filter_map(|c| c.control.as_ref())
            .map(|s| s.filters.len())
            .sum();
        assert_eq!(broker.subscription_count(), filters, "subscriptions");
        let counters = broker.counters();
        assert_eq!(counters.c_pub_messages, self.published.len() as u64);
        assert_eq!(counters.c_sub_ops, self.sub_ops);
        assert!(
            counters.c_sent_messages <= self.deliveries_due,
            "sent more than due"
        );
        assert!(
            counters.c_sent_messages >= self.received,
            "received more than sent"
        );
        let snapshot = broker.snapshot(usize::MAX, 0, SortBy::Messages);
        assert_eq!(snapshot.client_count, self.live_sessions());
        let bound = limits().data_queue;
        assert!(
            snapshot.clients.iter().all(|c| c.queued <= bound),
            "queue over its bound"
        );
    }

    /// Reads what is left, closes everything, and checks the broker is
    /// empty.
    fn finish(mut self) {
        for c in 0..CLIENTS {
            self.recv(c, 0);
            self.close_data(c);
            self.disconnect(c);
        }
        if let Some(rogue) = self.rogue.take() {
            self.server.node.disconnect(rogue);
        }
        self.check_invariants();
        self.server.assert_empty();
    }

    // ----- helpers -----

    fn live_sessions(&self) -> usize {
        let clients = self.clients.iter().filter(|c| c.control.is_some()).count();
        clients + usize::from(self.rogue.is_some())
    }

    /// The rights a live session of `login` has now: none when its entry
    /// is gone or it could no longer log in (anonymous access turned off).
    fn rights(&self, login: &str) -> std::sync::Arc<UserRights> {
        let none = || std::sync::Arc::new(UserRights::none());
        if VARIANTS[self.variant].live_entry(login).is_none() {
            return none();
        }
        self.acls[self.variant].rights(login).unwrap_or_else(none)
    }

    fn is_closed(&self, socket: ConnId) -> bool {
        self.server.node.is_closed(socket)
    }

    fn connect(&mut self, c: usize) -> ConnId {
        let peer = format!("client-{c}");
        self.server
            .node
            .connect(Transport::Tcp, &peer, self.server.now)
    }

    /// Sends `bytes` in two pieces cut at `cut` and returns the answer.
    fn send_cut(&mut self, socket: ConnId, bytes: &[u8], cut: u8) -> Vec<u8> {
        let (head, tail) = bytes.split_at(usize::from(cut).min(bytes.len()));
        self.server.node.send(socket, head, self.server.now);
        self.server.request(socket, tail)
    }

    /// Sends one operation on a client's control socket and checks the
    /// one-byte answer.
    fn control_request(&mut self, c: usize, frame: &[u8], expected: u8) {
        let now = self.server.now;
        let Some(control) = self.clients[c].control.as_mut() else {
            return;
        };
        control.deadline = now + limits().timeout;
        let (socket, login) = (control.socket, control.login);
        let out = self.server.request(socket, frame);
        assert_eq!(out, [expected], "reply to {frame:?} from {login:?}");
    }

    /// The end of a client's session: its data socket is owed nothing more
    /// and will close.
    fn session_ended(&mut self, c: usize) {
        if let Some(data) = self.clients[c].data.as_mut() {
            data.live = false;
        }
    }
}

impl Variant {
    fn entry(&self, login: &str) -> Option<&Entry> {
        let key = if login.is_empty() { "_" } else { login };
        self.entries.iter().find(|e| e.0 == key)
    }

    /// The entry governing a live session of `login`: none when anonymous
    /// access is off for the anonymous user.
    fn live_entry(&self, login: &str) -> Option<&Entry> {
        if login.is_empty() && !self.anonymous {
            return None;
        }
        self.entry(login)
    }

    /// Whether a live session of `login` may publish `topic` (some `pub`
    /// mask matches), decided without the broker's code.
    fn may_publish(&self, login: &str, topic: &str) -> bool {
        self.live_entry(login)
            .is_some_and(|e| e.2.iter().any(|m| matches(m, topic)))
    }

    /// The ACL file's text, parsed as the server would.
    fn acl(&self) -> Acl {
        let mut text = String::new();
        for (login, sub, publish) in self.entries {
            text.push_str(&format!("{login}: {{sub: {sub:?}, pub: {publish:?}}}\n"));
        }
        parse_acl(&text, Path::new("acl.yml"), limits().max_topic_depth).expect("test ACL")
    }
}

fn auth(acls: &[Acl], variant: usize) -> AuthConfig {
    AuthConfig {
        allow_anonymous: VARIANTS[variant].anonymous,
        acl: acls[variant].clone(),
        passwords: Some(test_passwords()),
        keys: None,
    }
}

fn index(client: u8) -> usize {
    usize::from(client) % CLIENTS
}

/// Separators in a normalised topic.
fn depth(topic: &str) -> usize {
    topic.matches('/').count()
}

/// The model's own matcher: `+` is one level, `#` one or more remaining
/// levels.
fn matches(filter: &str, topic: &str) -> bool {
    let filter: Vec<&str> = filter.split('/').collect();
    let topic: Vec<&str> = topic.split('/').collect();
    let levels_match = |n: usize| {
        filter
            .iter()
            .zip(&topic)
            .take(n)
            .all(|(f, t)| *f == "+" || f == t)
    };
    match filter.iter().position(|l| *l == "#") {
        Some(hash) => topic.len() > hash && levels_match(hash),
        None => filter.len() == topic.len() && levels_match(filter.len()),
    }
}

/// Message `id`'s payload: its number, then filler derived from it.
fn payload(id: u64, size: usize) -> Vec<u8> {
    let mut out = id.to_le_bytes().to_vec();
    out.resize(size, id.to_le_bytes()[0]);
    out
}

/// Decodes the complete frames of `data.rx`, checking each message against
/// what was published and what this socket was owed; returns how many.
fn take_messages(data: &mut DataSocket, published: &[Published]) -> u64 {
    let mut count = 0;
    loop {
        let message = match push::decode_push(&mut data.rx, usize::MAX) {
            Ok(Some(Push::Nop)) => continue,
            Ok(Some(Push::Message {
                prio,
                topic,
                payload: body,
            })) => (prio, topic, body),
            Ok(None) => return count,
            Err(err) => panic!("malformed data stream: {err}"),
        };
        let (prio, topic, body) = message;
        assert_eq!(prio, PRIO);
        let tag = body
            .get(..TAG_LEN)
            .and_then(|t| <[u8; TAG_LEN]>::try_from(t).ok());
        let id = u64::from_le_bytes(tag.expect("payload carries its tag"));
        let sent = usize::try_from(id).ok().and_then(|i| published.get(i));
        let sent = sent.expect("a delivered message was published");
        assert_eq!(topic, sent.topic.as_bytes(), "message {id} topic");
        assert_eq!(body, payload(id, sent.size), "message {id} payload");
        assert!(
            data.expected.remove(&id),
            "message {id} not owed (or twice)"
        );
        assert!(
            data.last.is_none_or(|last| last < id),
            "message {id} out of order"
        );
        data.last = Some(id);
        count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matcher_follows_the_protocol() {
        assert!(matches("#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(!matches("a/#", "a"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "a/b"));
        assert!(matches("a/+", "a/"));
        assert!(matches("+/b", "a/b"));
        assert!(!matches("a/+/#", "a/b"));
    }

    #[test]
    fn variants_parse() {
        assert_eq!(VARIANTS.iter().map(Variant::acl).count(), VARIANTS.len());
    }
}
