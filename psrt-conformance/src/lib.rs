//! One conformance suite for every PSRT server driver.
//!
//! The cases talk to a real server over loopback sockets with std blocking
//! sockets and read timeouts only, so they do not depend on the runtime the
//! server runs on. They assert the exact bytes of `PROTOCOL.md`, written
//! out literally here rather than taken from `psrt-proto`, so a codec bug
//! in the core cannot hide behind a test that shares its constants.
//!
//! A runtime crate provides a [`Start`] function that runs a
//! [`ServerSpec`] and invokes [`conformance_suite!`] in an integration
//! test:
//!
//! ```ignore
//! fn start(spec: ServerSpec) -> Box<dyn RunningServer> { /* ... */ }
//! psrt_conformance::conformance_suite!(start);
//! ```
//!
//! The same crate holds [`client_suite!`], the shared tests of the
//! runtimes' async clients (see [`client_suite`]).
//!
//! Every case bounds each read with a timeout, binds only `127.0.0.1:0`
//! and keeps its files in a temporary directory removed at the end.

pub mod cases;
pub mod client;
pub mod client_suite;
pub mod fixture;
pub mod tls_client;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use psrt_proto::spec::ServerSpec;

/// The addresses a started server actually bound (port 0 resolved).
#[derive(Debug, Clone)]
pub struct Addrs {
    /// The first TCP listener.
    pub tcp: SocketAddr,
    /// The first UDP socket, when the spec asked for one.
    pub udp: Option<SocketAddr>,
    /// The first Unix-socket path, when the spec asked for one.
    pub unix: Option<PathBuf>,
    /// The stats HTTP listener, when the spec asked for one.
    pub stats: Option<SocketAddr>,
}

impl Addrs {
    /// The first address of each kind from a driver's lists of what it
    /// bound; panics if there is no TCP listener.
    pub fn first_of(
        tcp: &[SocketAddr],
        udp: &[SocketAddr],
        unix: &[PathBuf],
        stats: Option<SocketAddr>,
    ) -> Addrs {
        Addrs {
            tcp: *tcp.first().expect("a TCP listener"),
            udp: udp.first().copied(),
            unix: unix.first().cloned(),
            stats,
        }
    }
}

/// A server started by a runtime driver for one case.
pub trait RunningServer: Send {
    /// What the server bound.
    fn addrs(&self) -> &Addrs;
    /// Reloads the access rules through `spec.reload`, as SIGHUP would;
    /// returns once the new rules are in force.
    fn reload(&self) -> Result<(), String>;
    /// Stops the server gracefully (queued messages drain to subscribers)
    /// and returns once it has stopped.
    fn stop(self: Box<Self>);
}

/// Starts a server for `spec` and returns once it accepts connections.
/// Panics when it cannot (a test failure).
pub type Start = fn(ServerSpec) -> Box<dyn RunningServer>;

/// Expands to one `#[test]` per conformance case, each running the case
/// against servers made by `$start` (a path to a [`Start`] function).
#[macro_export]
macro_rules! conformance_suite {
    ($start:path) => {
        $crate::__conformance_cases!(
            $start;
            anonymous_login,
            anonymous_refused_when_off,
            password_login_with_bcrypt,
            wrong_password_refused,
            user_without_acl_refused,
            nop_answers_ok,
            bye_answers_ok_then_closes,
            publish_delivered_exactly,
            topics_are_normalised,
            plus_matches_empty_level,
            hash_does_not_match_parent,
            overlapping_filters_deliver_once,
            publisher_receives_own_message,
            acl_denies_publish_and_subscribe,
            acl_plus_mask_refuses_hash,
            too_deep_topic_is_err,
            missing_separator_closes,
            wildcard_in_published_topic_closes,
            invalid_utf8_closes,
            unknown_op_closes,
            oversized_publish_closed_before_body,
            oversized_subscribe_closes,
            pipelined_requests_answered_in_order,
            bulk_subscribe_stops_at_first_failure,
            unsubscribe_semantics,
            data_socket_bad_token_refused,
            second_data_socket_refused,
            data_socket_beacons_when_idle,
            data_socket_closes_with_session,
            slow_consumer_dropped_others_unaffected,
            idle_control_socket_closed,
            slowloris_partial_frame_closed,
            replication_offer_and_delivery,
            replication_refused_for_non_replicator,
            pipelined_replication_answered_in_order,
            udp_plain_with_ack,
            udp_plain_without_ack,
            udp_aes128,
            udp_aes256,
            udp_wrong_password_err_access,
            unix_socket_full_rights,
            tls_login_and_publish,
            tls_required_refuses_plain,
            tls_not_configured_closes,
            stats_status_json,
            stats_metrics_and_index,
            stats_require_admin,
            reload_revokes_publish,
            graceful_stop_delivers_accepted,
            restart_binds_at_once,
        );
    };
}

/// Implementation detail of [`conformance_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($start:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::cases::$case($start);
            }
        )*
    };
}
