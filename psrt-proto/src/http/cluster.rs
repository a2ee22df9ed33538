//! The cluster peers in `/status` (the `cluster` object, `null` on a
//! standalone node as upstream has it) and in `/metrics` (one series per
//! peer, labelled `peer="host:port"`).

use serde::Serialize;

use super::metrics::{MetricsText, seconds};
use crate::cluster::{PeerStats, ReplicationOp};

/// `/status`'s `cluster` object: every peer's link, in configuration
/// order.
#[derive(Serialize)]
pub(super) struct ClusterBody<'a> {
    peers: Vec<PeerBody<'a>>,
}

/// One peer in `/status`.
#[derive(Serialize)]
struct PeerBody<'a> {
    peer: &'a str,
    state: &'static str,
    op: Option<&'static str>,
    queue_len: usize,
    queue_bytes: usize,
    sent: u64,
    sent_bytes: u64,
    not_required: u64,
    suppressed: u64,
    dropped: u64,
    reconnects: u64,
    last_error: Option<&'a str>,
    rtt_us: Option<u64>,
}

/// The `cluster` object, `None` (JSON `null`) without peers.
pub(super) fn status_body(peers: &[PeerStats]) -> Option<ClusterBody<'_>> {
    if peers.is_empty() {
        return None;
    }
    let peers = peers
        .iter()
        .map(|p| PeerBody {
            peer: &p.peer,
            state: p.state.as_str(),
            op: p.op.map(ReplicationOp::as_str),
            queue_len: p.queue_len,
            queue_bytes: p.queue_bytes,
            sent: p.sent,
            sent_bytes: p.sent_bytes,
            not_required: p.not_required,
            suppressed: p.suppressed,
            dropped: p.dropped,
            reconnects: p.reconnects,
            last_error: p.last_error.as_deref(),
            rtt_us: p.rtt_us,
        })
        .collect();
    Some(ClusterBody { peers })
}

/// Appends the per-peer series; nothing without peers.
pub(super) fn push_metrics(m: &mut MetricsText, peers: &[PeerStats]) {
    if peers.is_empty() {
        return;
    }
    type Value = fn(&PeerStats) -> String;
    let series: [(&str, &str, &str, Value); 9] = [
        (
            "psrt_cluster_up",
            "gauge",
            "1 while the replication link to the peer is logged in.",
            |p| u64::from(p.state == crate::cluster::LinkState::Up).to_string(),
        ),
        (
            "psrt_cluster_queue_messages",
            "gauge",
            "Messages waiting for the peer.",
            |p| (p.queue_len as u64).to_string(),
        ),
        (
            "psrt_cluster_queue_bytes",
            "gauge",
            "Bytes waiting for the peer.",
            |p| (p.queue_bytes as u64).to_string(),
        ),
        (
            "psrt_cluster_sent_messages_total",
            "counter",
            "Payloads the peer confirmed.",
            |p| (p.sent).to_string(),
        ),
        (
            "psrt_cluster_sent_bytes_total",
            "counter",
            "Payload bytes the peer confirmed.",
            |p| (p.sent_bytes).to_string(),
        ),
        (
            "psrt_cluster_not_required_total",
            "counter",
            "Offers the peer answered NOT_REQUIRED.",
            |p| (p.not_required + p.suppressed).to_string(),
        ),
        (
            "psrt_cluster_dropped_total",
            "counter",
            "Messages dropped for the peer (queue full, link down, refused).",
            |p| (p.dropped).to_string(),
        ),
        (
            "psrt_cluster_reconnects_total",
            "counter",
            "Reconnects of the replication link.",
            |p| (p.reconnects).to_string(),
        ),
        (
            "psrt_cluster_rtt_seconds",
            "gauge",
            "Smoothed round trip of a replication offer, in seconds.",
            |p| seconds(p.rtt_us.unwrap_or(0)),
        ),
    ];
    for (name, kind, help, value) in series {
        m.family(name, kind, help);
        for peer in peers {
            m.sample(name, &[("peer", &peer.peer)], value(peer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::LinkState;

    fn peers() -> Vec<PeerStats> {
        vec![PeerStats {
            peer: "node2:2873".into(),
            state: LinkState::Up,
            op: Some(ReplicationOp::Pipelined),
            queue_len: 2,
            queue_bytes: 40,
            sent: 5,
            sent_bytes: 50,
            not_required: 1,
            suppressed: 3,
            dropped: 7,
            reconnects: 1,
            last_error: Some("refused".into()),
            rtt_us: Some(120),
        }]
    }

    #[test]
    fn status_lists_every_peer_field() {
        let peers = peers();
        let body = serde_json::to_value(status_body(&peers)).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"peers": [{
                "peer": "node2:2873", "state": "up", "op": "pipelined", "queue_len": 2, "queue_bytes": 40,
                "sent": 5, "sent_bytes": 50, "not_required": 1, "suppressed": 3,
                "dropped": 7, "reconnects": 1, "last_error": "refused", "rtt_us": 120
            }]})
        );
        assert!(status_body(&[]).is_none(), "standalone: null");
    }

    /// The stats page's cluster table reads each peer's fields by name
    /// from `/status`: a renamed field would leave a blank column.
    #[test]
    fn the_stats_page_reads_only_fields_status_has() {
        let page = include_str!("index.html");
        let start = page
            .find("fillTable(\"t-cluster\"")
            .expect("the page fills a cluster table");
        let end = page[start..].find("\"no peers\"").expect("table end");
        let table = &page[start..start + end];
        let body = serde_json::to_value(status_body(&peers())).expect("json");
        let peer = body["peers"][0].as_object().expect("a peer");
        let fields: Vec<String> = table
            .split("p.")
            .skip(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect();
        assert!(fields.len() >= 10, "{fields:?}");
        for field in &fields {
            assert!(peer.contains_key(field), "the page reads p.{field}");
        }
    }

    #[test]
    fn metrics_label_each_peer() {
        let mut text = MetricsText::default();
        push_metrics(&mut text, &peers());
        let out = text.finish();
        assert!(
            out.contains("psrt_cluster_up{peer=\"node2:2873\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("psrt_cluster_dropped_total{peer=\"node2:2873\"} 7\n"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE psrt_cluster_sent_bytes_total counter\n"),
            "{out}"
        );
        assert!(
            out.contains("psrt_cluster_rtt_seconds{peer=\"node2:2873\"} 0.00012\n"),
            "{out}"
        );
        let mut none = MetricsText::default();
        push_metrics(&mut none, &[]);
        assert!(none.finish().is_empty());
    }
}
