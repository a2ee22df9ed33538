//! The sans-IO core of PSRT: every byte of the wire protocol and every
//! decision of the broker, with no sockets, no clock, no threads and no async
//! runtime.
//!
//! A driver (tokio, smol, monoio, or the in-memory [`node::Node`]) owns the
//! sockets and the clock and feeds this crate, one socket at a time through
//! [`conn::SocketTask::turn`] (the call order it follows is documented on
//! [`conn::Connection`]):
//!
//! * bytes read from a socket go to [`conn::Connection::handle_input`], which
//!   decrypts TLS and decodes complete frames into requests;
//! * [`conn::Connection::handle_broker`] applies those requests to the
//!   [`broker::Broker`] and takes a data socket's queued messages;
//! * bytes to write come from [`conn::Connection::poll_transmit`], which
//!   encrypts them when TLS is on;
//! * the time is passed in as `now: Instant` on every call, and
//!   [`conn::Connection::poll_timeout`] says when to call
//!   [`conn::Connection::handle_timeout`] next;
//! * slow work (bcrypt password checks) comes out as an action from
//!   [`conn::Connection::poll_action`] and is answered later, so nothing here
//!   ever blocks message flow.
//!
//! One [`broker::Broker`] holds the sessions, the subscription index, the
//! ACL and the statistics. A multi-threaded driver keeps it behind one lock
//! ([`conn::BrokerLock`]) and takes that lock only for `handle_broker`, at
//! most once per turn and only when [`conn::Connection::wants_broker`]:
//! TLS, framing, decoding and socket writes run outside it. UDP datagrams
//! follow the same split through [`broker::UdpTask`]: each is decoded and
//! AES-GCM-opened with a snapshot of the key table
//! ([`broker::UdpKeys::open`], no broker needed), then
//! [`broker::Broker::apply_datagram`] checks password and ACL and routes it
//! under one lock acquisition. A reload of the keys is seen by the next
//! datagram: one opened with an outdated snapshot is opened again there.
//!
//! Peer input never panics: decoders return typed errors and a fatal one
//! closes that peer only.

pub mod acl;
pub mod auth;
pub mod broker;
pub mod client;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod framepool;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_checks;
pub mod http;
pub mod limits;
pub mod node;
#[cfg(feature = "sim")]
pub mod sim;
pub mod spec;
pub mod stats;
pub mod stats_conn;
pub mod subs;
pub mod tls;
pub mod topic;
pub mod topk;
pub mod txbuf;
pub mod udp;
pub mod wire;

pub use bytes::{Bytes, BytesMut};
pub use limits::Limits;
pub use txbuf::TxBuf;
