//! The cluster peers file (`cluster.config` in the server config): a YAML
//! list of the nodes this node replicates to.
//!
//! ```yaml
//! - path: node2:2873          # host:port, or a Unix socket path
//!   user: repl                # a user with `replicator: true` on node2
//!   password: secret
//!   timeout: 5                # seconds, may be fractional
//!   tls: true                 # optional, default false
//!   tls_ca: certs/ca.pem      # optional: trust exactly these certificates
//! ```
//!
//! Errors name the file, line and key like the server config's
//! (`cluster.yml:4:13: [1].timeout: ...`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{FileError, OptionalSeed, deserialize_yaml, resolve, seconds};
use crate::Limits;

/// One peer of the cluster, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerConfig {
    /// `host:port`, a bare host (default port) or a Unix socket path; also
    /// the peer's name in logs, `/status` and `/metrics`.
    pub path: String,
    /// Login on the peer; the peer's ACL must give it `replicator: true`.
    pub user: String,
    /// Password of `user`.
    pub password: String,
    /// The peer's keep-alive timeout: connecting and every reply must come
    /// within it, and NOPs go out every half of it.
    pub timeout: Duration,
    /// Whether to speak TLS to the peer.
    pub tls: bool,
    /// PEM certificates to trust for the peer (absolute once parsed);
    /// `None` trusts the Mozilla roots.
    pub tls_ca: Option<PathBuf>,
}

/// A peer as written in the file.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a peer: a map with path, user, password, timeout, tls, tls_ca"
)]
struct RawPeer {
    path: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default = "default_timeout", deserialize_with = "seconds")]
    timeout: Duration,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    tls_ca: Option<PathBuf>,
}

fn default_timeout() -> Duration {
    Limits::default().timeout
}

/// Parses the peers file's text. `path` names the file in errors and is the
/// base for a relative `tls_ca`. An empty file lists no peers.
pub fn parse_cluster(text: &str, path: &Path) -> Result<Vec<PeerConfig>, FileError> {
    let raw: Option<Vec<RawPeer>> = deserialize_yaml(text, path, OptionalSeed(PeersSeed))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut peers: Vec<PeerConfig> = Vec::new();
    for (index, peer) in raw.unwrap_or_default().into_iter().enumerate() {
        let fail = |key: &str, message: &str| {
            let position = find_item_key(text, index, key);
            let key = format!("[{index}].{key}");
            FileError::new(path, Some(key.as_str()), message.to_owned()).at(
                position.map(|(line, _)| line),
                position.map(|(_, column)| column),
            )
        };
        if peer.path.trim().is_empty() {
            return Err(fail(
                "path",
                "empty: expected host:port or a Unix socket path",
            ));
        }
        if peers.iter().any(|p| p.path == peer.path) {
            let message = format!("peer {:?} is listed twice; keep one entry", peer.path);
            return Err(fail("path", &message));
        }
        if peer.user.as_bytes().contains(&0) {
            return Err(fail("user", "contains a NUL byte"));
        }
        if peer.user.len() + 1 + peer.password.len() > crate::client::MAX_LOGIN_SIZE {
            let message = format!(
                "user and password together exceed the {} bytes a login may take",
                crate::client::MAX_LOGIN_SIZE
            );
            return Err(fail("password", &message));
        }
        if peer.tls_ca.is_some() && !peer.tls {
            return Err(fail("tls_ca", "set but tls is off: add `tls: true`"));
        }
        let mut tls_ca = peer.tls_ca;
        if let Some(ca) = &mut tls_ca {
            resolve(base, ca);
        }
        peers.push(PeerConfig {
            path: peer.path,
            user: peer.user,
            password: peer.password,
            timeout: peer.timeout,
            tls: peer.tls,
            tls_ca,
        });
    }
    Ok(peers)
}

/// The file's list of peers.
#[derive(Clone, Copy)]
struct PeersSeed;

impl<'de> serde::de::DeserializeSeed<'de> for PeersSeed {
    type Value = Vec<RawPeer>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        Vec::<RawPeer>::deserialize(deserializer)
    }
}

/// Line and column (1-based) of `key:` in the `index`th item of a
/// block-style top-level list; `None` when a plain scan cannot find it.
fn find_item_key(text: &str, index: usize, key: &str) -> Option<(usize, usize)> {
    let mut item = None::<usize>;
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        let mut rest = content;
        let mut column = indent;
        if indent == 0 {
            let Some(after) = content.strip_prefix('-') else {
                continue;
            };
            item = Some(item.map_or(0, |i| i + 1));
            rest = after.trim_start();
            column = line.len() - rest.len();
        }
        let is_key = rest
            .strip_prefix(key)
            .is_some_and(|after| after.trim_start().starts_with(':'));
        if item == Some(index) && is_key {
            return Some((number + 1, column + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<PeerConfig>, FileError> {
        parse_cluster(text, Path::new("/etc/psrtd/cluster.yml"))
    }

    #[test]
    fn a_full_peer_list_parses_with_defaults_and_resolved_paths() {
        let peers = parse(
            "- path: node2:2873\n  user: repl\n  password: pw\n  timeout: 0.5\n  tls: true\n  tls_ca: ca.pem\n\
             - path: /run/psrt/node3.sock\n",
        )
        .expect("valid");
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].path, "node2:2873");
        assert_eq!(peers[0].user, "repl");
        assert_eq!(peers[0].timeout, Duration::from_millis(500));
        assert!(peers[0].tls);
        assert_eq!(
            peers[0].tls_ca.as_deref(),
            Some(Path::new("/etc/psrtd/ca.pem"))
        );
        assert_eq!(peers[1].timeout, Limits::default().timeout);
        assert!(!peers[1].tls);
        assert_eq!(peers[1].user, "");
    }

    #[test]
    fn an_empty_file_lists_no_peers() {
        assert_eq!(parse("").expect("empty"), []);
        assert_eq!(parse("# no peers yet\n").expect("comment"), []);
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let err = parse("- path: a:1\n- path: b:1\n  pasword: x\n").expect_err("typo");
        assert_eq!(err.line, Some(3), "{err}");
        assert!(
            err.key.as_deref().is_some_and(|k| k.starts_with("[1]")),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("/etc/psrtd/cluster.yml:3"),
            "{err}"
        );
        assert!(err.message.contains("pasword"), "{err}");
    }

    #[test]
    fn a_bad_timeout_names_its_key() {
        let err = parse("- path: a:1\n  timeout: -1\n").expect_err("negative");
        assert_eq!(err.key.as_deref(), Some("[0].timeout"), "{err}");
        assert_eq!(err.line, Some(2), "{err}");
        assert!(
            !err.message.contains("[0]"),
            "the key is not repeated: {err}"
        );
    }

    #[test]
    fn a_missing_path_is_an_error() {
        let err = parse("- user: repl\n").expect_err("no path");
        assert!(err.message.contains("path"), "{err}");
        assert_eq!(err.line, Some(1), "{err}");
    }

    #[test]
    fn a_duplicate_peer_points_at_the_second_entry() {
        let err = parse("- path: a:1\n- path: b:1\n- path: a:1\n").expect_err("twice");
        assert_eq!(err.key.as_deref(), Some("[2].path"), "{err}");
        assert_eq!(err.line, Some(3), "{err}");
        assert!(err.message.contains("twice"), "{err}");
    }

    #[test]
    fn tls_ca_without_tls_is_an_error_at_tls_ca() {
        let err = parse("- path: a:1\n  tls_ca: ca.pem\n").expect_err("tls off");
        assert_eq!(err.key.as_deref(), Some("[0].tls_ca"), "{err}");
        assert_eq!((err.line, err.column), (Some(2), Some(3)), "{err}");
    }

    #[test]
    fn not_a_list_is_an_error() {
        let err = parse("path: a:1\n").expect_err("a map");
        assert!(err.message.contains("sequence"), "{err}");
    }
}
