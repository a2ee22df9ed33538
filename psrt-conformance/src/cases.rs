//! The conformance cases. Each takes the driver's [`crate::Start`]
//! function, starts its own server and panics on a deviation from
//! `PROTOCOL.md`.

mod control;
mod data;
mod lifecycle;
mod login;
mod pubsub;
mod stats;
mod transport;
mod udp;

pub use control::{
    acl_denies_publish_and_subscribe, acl_plus_mask_refuses_hash,
    bulk_subscribe_stops_at_first_failure, idle_control_socket_closed, invalid_utf8_closes,
    missing_separator_closes, oversized_publish_closed_before_body, oversized_subscribe_closes,
    pipelined_replication_answered_in_order, pipelined_requests_answered_in_order,
    replication_offer_and_delivery, replication_refused_for_non_replicator,
    slowloris_partial_frame_closed, too_deep_topic_is_err, unknown_op_closes,
    unsubscribe_semantics, wildcard_in_published_topic_closes,
};
pub use data::{
    data_socket_bad_token_refused, data_socket_beacons_when_idle, data_socket_closes_with_session,
    second_data_socket_refused, slow_consumer_dropped_others_unaffected,
};
pub use lifecycle::{
    graceful_stop_delivers_accepted, reload_revokes_publish, restart_binds_at_once,
};
pub use login::{
    anonymous_login, anonymous_refused_when_off, bye_answers_ok_then_closes, nop_answers_ok,
    password_login_with_bcrypt, user_without_acl_refused, wrong_password_refused,
};
pub use pubsub::{
    hash_does_not_match_parent, overlapping_filters_deliver_once, plus_matches_empty_level,
    publish_delivered_exactly, publisher_receives_own_message, topics_are_normalised,
};
pub use stats::{stats_metrics_and_index, stats_require_admin, stats_status_json};
pub use transport::{
    tls_login_and_publish, tls_not_configured_closes, tls_required_refuses_plain,
    unix_socket_full_rights,
};
pub use udp::{
    udp_aes128, udp_aes256, udp_plain_with_ack, udp_plain_without_ack,
    udp_wrong_password_err_access,
};

use crate::client::{DataConn, OK, Session};
use crate::fixture::Server;

/// Topic every sentinel message goes to.
const SENTINEL: &str = "zz/sentinel";

/// An anonymous session with a data socket (beacons every 5/2 s).
fn subscriber(server: &Server) -> (Session, DataConn) {
    let session = Session::anonymous(server.tcp());
    let data = session.open_data(server.tcp(), 5);
    (session, data)
}

/// Proves that nothing was delivered to `data` before now: subscribes
/// `sub` to the sentinel topic, publishes it from `publisher`, and asserts
/// the sentinel is the next message `data` receives.
fn assert_nothing_before_sentinel(sub: &mut Session, data: &mut DataConn, publisher: &mut Session) {
    assert_eq!(sub.subscribe(&[SENTINEL]), OK, "subscribe sentinel");
    assert_eq!(publisher.publish(SENTINEL, b"end"), OK, "publish sentinel");
    data.expect(SENTINEL, b"end");
}
