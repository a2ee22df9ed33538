//! `/metrics`: the Prometheus text exposition format (0.0.4), built with
//! [`MetricsText`].
//!
//! Series: `psrt_build_info{version,runtime,build}`; the broker's counters
//! (`psrt_pub_*`, `psrt_sent_*`, `psrt_sub_ops_total`); connections by
//! listener kind (`psrt_connections_total`, `psrt_connections`); failed TLS
//! handshakes and refused plain clients; logins by outcome; ACL denials by
//! operation; slow-consumer drops; UDP datagrams by outcome; the delivery
//! latency histogram in seconds; clients, subscriptions and queued
//! messages; the process's resident memory and open files.
//!
//! Per-peer replication series come from [`super::cluster`]. New series
//! are one more function over
//! [`MetricsText`] called from [`render`]: a [`MetricsText::family`] line
//! pair, then one [`MetricsText::sample`] per label set (e.g. `peer`).

use std::fmt::Write as _;

use super::StatusInfo;
use crate::broker::{AccessOp, DenyReason, UdpVerdict};
use crate::conn::ListenerKind;
use crate::stats::{LATENCY_BOUNDS_US, StatsSnapshot};

/// Prometheus text being written: families (`# HELP`, `# TYPE`) each
/// followed by their samples.
#[derive(Debug, Default)]
pub struct MetricsText {
    out: String,
}

impl MetricsText {
    /// Starts the family `name` of type `kind` (`counter`, `gauge`,
    /// `histogram`) with its help text.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One sample of the current family: `name{labels} value`, label
    /// values escaped as the format requires.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, raw)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", label_value(raw));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The text written.
    pub fn finish(self) -> String {
        self.out
    }
}

/// The whole `/metrics` body.
pub fn render(stats: &StatsSnapshot, info: &StatusInfo) -> String {
    let mut m = MetricsText::default();
    build_info(&mut m, info);
    broker_counters(&mut m, stats);
    gauges(&mut m, stats, info);
    connections(&mut m, info);
    audit(&mut m, stats);
    latency(&mut m, stats);
    process(&mut m, info);
    super::cluster::push_metrics(&mut m, &stats.cluster);
    m.finish()
}

/// The runtime named in a build line (`runtime NAME[, DRIVER]; ...`, as
/// [`crate::spec::ServerSpec::build`] describes it); `unknown` otherwise.
pub fn runtime_of(build: &str) -> &str {
    build
        .strip_prefix("runtime ")
        .and_then(|rest| rest.split([',', ';']).next())
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or("unknown")
}

fn build_info(m: &mut MetricsText, info: &StatusInfo) {
    m.family(
        "psrt_build_info",
        "gauge",
        "Version, runtime and build (runtime, allocator) of the server; always 1.",
    );
    m.sample(
        "psrt_build_info",
        &[
            ("version", &info.version),
            ("runtime", runtime_of(&info.build)),
            ("build", &info.build),
        ],
        1,
    );
}

fn broker_counters(m: &mut MetricsText, stats: &StatsSnapshot) {
    let c = &stats.counters;
    let counters = [
        (
            "psrt_sub_ops_total",
            "SUBSCRIBE operations accepted (one per topic).",
            c.c_sub_ops,
        ),
        (
            "psrt_pub_messages_total",
            "Messages accepted for publishing (TCP, UDP, replication).",
            c.c_pub_messages,
        ),
        (
            "psrt_pub_bytes_total",
            "Payload bytes accepted for publishing.",
            c.c_pub_bytes,
        ),
        (
            "psrt_sent_messages_total",
            "Messages delivered: handed to subscribers' data sockets.",
            c.c_sent_messages,
        ),
        (
            "psrt_sent_bytes_total",
            "Payload bytes delivered.",
            c.c_sent_bytes,
        ),
    ];
    for (name, help, value) in counters {
        m.single(name, "counter", help, value);
    }
}

fn gauges(m: &mut MetricsText, stats: &StatsSnapshot, info: &StatusInfo) {
    let gauges = [
        (
            "psrt_clients",
            "Live control sessions.",
            to_u64(stats.client_count),
        ),
        (
            "psrt_subscriptions",
            "Distinct (client, filter) pairs held.",
            to_u64(stats.subscription_count),
        ),
        (
            "psrt_queued_messages",
            "Messages waiting in all subscribers' data queues.",
            to_u64(stats.queued_messages),
        ),
        (
            "psrt_uptime_seconds",
            "Seconds since the server started.",
            info.uptime_s,
        ),
        (
            "psrt_data_queue_size",
            "Configured per-client data queue, in messages.",
            to_u64(stats.data_queue_size),
        ),
    ];
    for (name, help, value) in gauges {
        m.single(name, "gauge", help, value);
    }
}

fn connections(m: &mut MetricsText, info: &StatusInfo) {
    let counts = &info.connections;
    m.family(
        "psrt_connections_total",
        "counter",
        "Connections whose greeting was accepted, by listener kind.",
    );
    for kind in ListenerKind::ALL {
        let opened = counts.opened.get(kind.index()).copied().unwrap_or(0);
        m.sample(
            "psrt_connections_total",
            &[("listener", kind.label())],
            opened,
        );
    }
    m.family(
        "psrt_connections",
        "gauge",
        "Connections open now, by listener kind.",
    );
    for kind in ListenerKind::ALL {
        let i = kind.index();
        let opened = counts.opened.get(i).copied().unwrap_or(0);
        let closed = counts.closed.get(i).copied().unwrap_or(0);
        m.sample(
            "psrt_connections",
            &[("listener", kind.label())],
            opened.saturating_sub(closed),
        );
    }
    m.single(
        "psrt_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed (or TLS asked of a server without it).",
        counts.tls_handshake_failures,
    );
    m.single(
        "psrt_tls_required_refusals_total",
        "counter",
        "Plain TCP clients refused because the server requires TLS.",
        counts.tls_required_refusals,
    );
}

fn audit(m: &mut MetricsText, stats: &StatsSnapshot) {
    let t = &stats.tallies;
    m.family(
        "psrt_logins_total",
        "counter",
        "Login attempts by outcome: granted, or the reason of the refusal.",
    );
    m.sample(
        "psrt_logins_total",
        &[("outcome", "granted")],
        t.logins_granted,
    );
    for reason in DenyReason::ALL {
        let count = t.logins_denied.get(reason.index()).copied().unwrap_or(0);
        m.sample("psrt_logins_total", &[("outcome", reason.label())], count);
    }
    m.family(
        "psrt_acl_denials_total",
        "counter",
        "Operations the ACL refused, by operation.",
    );
    for op in AccessOp::ALL {
        let count = t.acl_denied.get(op.index()).copied().unwrap_or(0);
        m.sample(
            "psrt_acl_denials_total",
            &[("operation", op.label())],
            count,
        );
    }
    m.single(
        "psrt_slow_consumer_drops_total",
        "counter",
        "Data sockets dropped because their queue overflowed.",
        t.slow_consumers,
    );
    m.family(
        "psrt_udp_frames_total",
        "counter",
        "UDP datagrams received, by outcome.",
    );
    for verdict in UdpVerdict::ALL {
        let count = t.udp_frames.get(verdict.index()).copied().unwrap_or(0);
        m.sample(
            "psrt_udp_frames_total",
            &[("outcome", verdict.label())],
            count,
        );
    }
}

fn latency(m: &mut MetricsText, stats: &StatsSnapshot) {
    let histogram = &stats.tallies.latency;
    let name = "psrt_delivery_latency_seconds";
    m.family(
        name,
        "histogram",
        "Delay between a message's publish and its hand-over to a subscriber's socket.",
    );
    let mut cumulative = 0u64;
    for (bound, count) in LATENCY_BOUNDS_US.iter().zip(&histogram.buckets) {
        cumulative += count;
        let le = seconds(*bound);
        m.sample(&format!("{name}_bucket"), &[("le", &le)], cumulative);
    }
    let total = histogram.count();
    m.sample(&format!("{name}_bucket"), &[("le", "+Inf")], total);
    m.sample(&format!("{name}_sum"), &[], seconds(histogram.sum_us));
    m.sample(&format!("{name}_count"), &[], total);
}

fn process(m: &mut MetricsText, info: &StatusInfo) {
    let Some(process) = &info.process else {
        return;
    };
    m.single(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the server process, in bytes.",
        process.resident_bytes,
    );
    m.single(
        "process_open_fds",
        "gauge",
        "Open file descriptors of the server process.",
        process.open_fds,
    );
}

/// Microseconds as decimal seconds, exactly (`250` → `0.00025`).
pub(super) fn seconds(us: u64) -> String {
    let text = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Widens a count; saturates on the (theoretical) platforms where it would not fit.
fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A Prometheus label value with backslash, double quote and line feed
/// escaped, as the text format requires.
fn label_value(raw: &str) -> String {
    raw.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(250), "0.00025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_000), "2.5");
    }

    #[test]
    fn runtime_is_read_from_the_build_line() {
        assert_eq!(runtime_of("runtime tokio; allocator system"), "tokio");
        assert_eq!(
            runtime_of("runtime monoio, io_uring; allocator jemalloc"),
            "monoio"
        );
        assert_eq!(runtime_of(""), "unknown");
        assert_eq!(runtime_of("custom"), "unknown");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut m = MetricsText::default();
        m.sample("x", &[("a", "q\"b\\n\nl")], 1);
        assert_eq!(m.finish(), "x{a=\"q\\\"b\\\\n\\nl\"} 1\n");
    }
}
