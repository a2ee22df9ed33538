//! Where a client connects: `host:port`, a bare host, or a Unix-socket path.

use std::path::PathBuf;

/// The IANA-assigned PSRT port, used when a target names no port.
pub const DEFAULT_PORT: u16 = 2873;

/// A parsed client target, ready for any runtime's `connect`.
///
/// `(host, port)` is what tokio, async-net and monoio resolve, so the host
/// is kept without IPv6 brackets (also the form TLS server names take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP host (name or address, no brackets) and port.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port, [`DEFAULT_PORT`] when the target named none.
        port: u16,
    },
    /// A Unix-socket path.
    Unix(PathBuf),
}

impl Target {
    /// A path (holding `/` or ending in `.sock`/`.socket`) is a Unix
    /// socket; anything else is `host[:port]`, with `[v6]:port` or a bare
    /// IPv6 address for IPv6. Never fails: a bad host fails at connect.
    pub fn parse(addr: &str) -> Target {
        if addr.contains('/') || addr.ends_with(".sock") || addr.ends_with(".socket") {
            return Target::Unix(PathBuf::from(addr));
        }
        let (host, port) = split_port(addr).unwrap_or((addr, DEFAULT_PORT));
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Target::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    /// The name a TLS server certificate must match unless configured
    /// otherwise: the host, or `localhost` for a Unix socket.
    pub fn tls_name(&self) -> &str {
        match self {
            Target::Tcp { host, .. } => host,
            Target::Unix(_) => "localhost",
        }
    }
}

/// The nodes of a cluster address list, `node1:2873,node2:2873`, in the
/// order given; empty pieces (a trailing comma) are skipped. A single
/// address is a list of one.
pub fn node_list(addrs: &str) -> Vec<&str> {
    addrs
        .split(',')
        .map(str::trim)
        .filter(|addr| !addr.is_empty())
        .collect()
}

/// The host and port of `host:port` or `[v6]:port`; `None` without a port.
fn split_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let bare_v6 = host.contains(':') && !bracketed;
    if bare_v6 {
        return None;
    }
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Target {
        Target::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn targets_parse_as_tcp_or_unix() {
        assert_eq!(Target::parse("example.org:1"), tcp("example.org", 1));
        assert_eq!(Target::parse("localhost"), tcp("localhost", DEFAULT_PORT));
        assert_eq!(Target::parse("[::1]:9"), tcp("::1", 9));
        assert_eq!(Target::parse("::1"), tcp("::1", DEFAULT_PORT));
        assert_eq!(Target::parse("[::1]"), tcp("::1", DEFAULT_PORT));
        assert_eq!(
            Target::parse("/run/psrt.sock"),
            Target::Unix("/run/psrt.sock".into())
        );
        assert_eq!(
            Target::parse("psrt.socket"),
            Target::Unix("psrt.socket".into())
        );
    }

    #[test]
    fn a_port_out_of_range_is_not_split_off() {
        assert_eq!(Target::parse("host:99999"), tcp("host:99999", DEFAULT_PORT));
    }

    #[test]
    fn node_lists_split_on_commas() {
        assert_eq!(node_list("a:1, b:2,,"), ["a:1", "b:2"]);
        assert_eq!(node_list("/run/psrt.sock"), ["/run/psrt.sock"]);
        assert!(node_list(" , ").is_empty());
    }

    #[test]
    fn tls_names_come_from_the_host() {
        assert_eq!(Target::parse("[::1]:9").tls_name(), "::1");
        assert_eq!(Target::parse("/tmp/x.sock").tls_name(), "localhost");
    }
}
