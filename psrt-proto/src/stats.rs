//! Counters and gauges of the broker, exactly what `/status`, `/metrics` and
//! the live pages show.

use serde::Serialize;

/// Monotonic counters, named as in upstream's `/status` JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// SUBSCRIBE operations accepted (one per topic in a bulk request).
    pub c_sub_ops: u64,
    /// Messages accepted for publishing (TCP, UDP and replication).
    pub c_pub_messages: u64,
    /// Payload bytes of those messages.
    pub c_pub_bytes: u64,
    /// Messages handed to data sockets for sending.
    pub c_sent_messages: u64,
    /// Payload bytes of those messages.
    pub c_sent_bytes: u64,
    /// Sum over sent messages of the delay between publish and send, in µs.
    pub c_sent_latency: u64,
}

/// One live client, for the stats page's client list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    /// Login name; empty for anonymous.
    pub login: String,
    /// Peer address as the driver reported it (`ip:port` or a socket path).
    pub peer: String,
    /// Number of filters the client holds.
    pub subscriptions: usize,
    /// Whether a data socket is bound.
    pub data_socket: bool,
    /// Messages waiting in its data queue.
    pub queued: usize,
}

/// One entry of the "top topics" view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicStat {
    /// The normalised topic.
    pub topic: String,
    /// Messages published to it (an over-estimate by at most `error`).
    pub messages: u64,
    /// Payload bytes published to it.
    pub bytes: u64,
    /// Most the counts may over-estimate (space-saving sketch error).
    pub error: u64,
}

/// A point-in-time copy of everything the stats endpoints render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Counters since start.
    pub counters: Counters,
    /// Distinct (client, filter) pairs held.
    pub subscription_count: usize,
    /// Live control sessions.
    pub client_count: usize,
    /// Configured per-client data queue (messages).
    pub data_queue_size: usize,
    /// Live clients, at most a bounded number.
    pub clients: Vec<ClientInfo>,
    /// Most active topics, busiest first.
    pub top_topics: Vec<TopicStat>,
    /// Messages waiting in all data queues.
    pub queued_messages: usize,
    /// Audit counters and the latency histogram.
    pub tallies: Tallies,
    /// Every cluster peer's link (empty on a standalone node).
    #[serde(skip)]
    pub cluster: Vec<crate::cluster::PeerStats>,
}

/// Upper bounds of the delivery-latency histogram's buckets, in µs (a
/// last, unbounded bucket follows): 100 µs to 5 s, 1-2.5-5 steps.
pub const LATENCY_BOUNDS_US: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// Publish-to-send delays of delivered messages, counted per bucket of
/// [`LATENCY_BOUNDS_US`] (not cumulative; the last entry counts the
/// delays above every bound).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencyHistogram {
    /// Messages per bucket.
    pub buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    /// Sum of the delays, in µs.
    pub sum_us: u64,
}

impl LatencyHistogram {
    /// Counts one delivery that waited `us` microseconds.
    pub fn record(&mut self, us: u64) {
        let bucket = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        if let Some(count) = self.buckets.get_mut(bucket) {
            *count += 1;
        }
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Deliveries counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Audit counters of the broker, for `/metrics`: logins by outcome, ACL
/// denials by operation, slow-consumer drops, UDP datagrams by outcome
/// and the delivery latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tallies {
    /// Logins granted (TCP and Unix socket).
    pub logins_granted: u64,
    /// Logins refused, per [`crate::broker::DenyReason::index`].
    pub logins_denied: [u64; crate::broker::DenyReason::ALL.len()],
    /// ACL refusals, per [`crate::broker::AccessOp::index`].
    pub acl_denied: [u64; crate::broker::AccessOp::ALL.len()],
    /// Data sockets dropped because their queue overflowed.
    pub slow_consumers: u64,
    /// UDP datagrams, per [`crate::broker::UdpVerdict::index`].
    pub udp_frames: [u64; crate::broker::UdpVerdict::ALL.len()],
    /// Delivery latency.
    pub latency: LatencyHistogram,
}

/// Points [`History`] keeps: two minutes at one a second, what the
/// status page charts.
pub const HISTORY_POINTS: usize = 120;
/// Samples of topic counts [`History`] keeps for the recent rates: the
/// rates span this many sampling intervals.
pub const RATE_WINDOW: usize = 10;
/// Topics recorded per sample for the recent rates.
pub const RATE_TOPICS: usize = 100;

/// One point of the server-side history: the counters as `/status` showed
/// them at `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HistoryPoint {
    /// Wall-clock time, µs since the Unix epoch (as `/status`'s `time`).
    pub time: u64,
    /// The counters then.
    pub counters: Counters,
}

/// A topic's publish rate over the last [`RATE_WINDOW`] samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicRate {
    /// The topic.
    pub topic: String,
    /// Messages per second.
    pub messages_per_s: f64,
    /// Payload bytes per second.
    pub bytes_per_s: f64,
}

/// A short history kept by the server, so a newly opened status page
/// starts with its charts filled and the busiest topics can be ranked by
/// their recent rate. The driver records a sample about once a second;
/// nothing here reads the clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    points: std::collections::VecDeque<HistoryPoint>,
    /// Topic counts per sample, oldest first.
    topics: std::collections::VecDeque<TopicSample>,
}

/// The busiest topics at one sample: `(time, [(topic, messages, bytes)])`.
type TopicSample = (u64, Vec<(String, u64, u64)>);

impl History {
    /// Records the counters and the busiest topics (by total) at `time`
    /// (µs since the epoch).
    pub fn record(&mut self, time: u64, counters: Counters, top: &[TopicStat]) {
        if self.points.len() >= HISTORY_POINTS {
            self.points.pop_front();
        }
        self.points.push_back(HistoryPoint { time, counters });
        if self.topics.len() > RATE_WINDOW {
            self.topics.pop_front();
        }
        let counts = top
            .iter()
            .take(RATE_TOPICS)
            .map(|t| (t.topic.clone(), t.messages, t.bytes))
            .collect();
        self.topics.push_back((time, counts));
    }

    /// The recorded points, oldest first.
    pub fn points(&self) -> Vec<HistoryPoint> {
        self.points.iter().copied().collect()
    }

    /// The `n` topics published most over the recent window, fastest
    /// first (ties by name). A topic that entered the sampled list within
    /// the window counts from zero, so its rate is an upper bound.
    pub fn recent_topics(&self, n: usize) -> Vec<TopicRate> {
        let (Some((old_time, old)), Some((new_time, new))) =
            (self.topics.front(), self.topics.back())
        else {
            return Vec::new();
        };
        let seconds = new_time.saturating_sub(*old_time) as f64 / 1e6;
        if seconds <= 0.0 {
            return Vec::new();
        }
        let mut rates: Vec<TopicRate> = new
            .iter()
            .filter_map(|(topic, messages, bytes)| {
                let (old_messages, old_bytes) = old
                    .iter()
                    .find(|(t, _, _)| t == topic)
                    .map_or((0, 0), |(_, m, b)| (*m, *b));
                let delta = messages.saturating_sub(old_messages);
                (delta > 0).then(|| TopicRate {
                    topic: topic.clone(),
                    messages_per_s: delta as f64 / seconds,
                    bytes_per_s: bytes.saturating_sub(old_bytes) as f64 / seconds,
                })
            })
            .collect();
        rates.sort_by(|a, b| {
            b.messages_per_s
                .total_cmp(&a.messages_per_s)
                .then_with(|| a.topic.cmp(&b.topic))
        });
        rates.truncate(n);
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, messages: u64) -> TopicStat {
        TopicStat {
            topic: name.into(),
            messages,
            bytes: messages * 10,
            error: 0,
        }
    }

    #[test]
    fn latency_buckets_are_upper_bounds() {
        let mut h = LatencyHistogram::default();
        for us in [0, 100, 101, 5_000_000, 5_000_001] {
            h.record(us);
        }
        assert_eq!(h.buckets[0], 2, "0 and 100 µs are within 100 µs");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[LATENCY_BOUNDS_US.len() - 1], 1);
        assert_eq!(h.buckets[LATENCY_BOUNDS_US.len()], 1, "above every bound");
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum_us, 10_000_202);
    }

    #[test]
    fn history_keeps_the_last_points_and_ranks_topics_by_recent_rate() {
        let mut history = History::default();
        assert!(history.recent_topics(5).is_empty());
        for second in 0..200u64 {
            let counters = Counters {
                c_pub_messages: second,
                ..Counters::default()
            };
            // "old" was busy long ago and is quiet now; "new" is busy now.
            let old = topic("old", 1000);
            let new = topic("new", second.saturating_sub(190) * 5);
            history.record(second * 1_000_000, counters, &[old, new]);
        }
        let points = history.points();
        assert_eq!(points.len(), HISTORY_POINTS);
        assert_eq!(points.last().map(|p| p.counters.c_pub_messages), Some(199));
        assert_eq!(points[0].time, 80 * 1_000_000);
        let recent = history.recent_topics(5);
        assert_eq!(
            recent.len(),
            1,
            "a quiet topic has no recent rate: {recent:?}"
        );
        assert_eq!(recent[0].topic, "new");
        // 9 s of 5 msg/s seen over the 10 s window.
        assert!((recent[0].messages_per_s - 4.5).abs() < 1e-9, "{recent:?}");
        assert!((recent[0].bytes_per_s - 45.0).abs() < 1e-9);
    }
}
