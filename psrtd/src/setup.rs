//! Config files to a runtime-independent [`ServerSpec`].
//!
//! [`load`] picks the config file ([`select_config`]), reads and validates
//! it and every file it names (password file, ACL, key file, TLS PEMs), and
//! builds the spec a runtime serves. The spec's reload closure re-reads only
//! the password, ACL and key files, from the same paths, on SIGHUP.
//!
//! Every error names the file and, when known, the line and the key
//! ([`FileError`]'s `Display`), so `psrtd: <error>` is enough for a user to
//! fix the file.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use psrt_proto::acl::Acl;
use psrt_proto::auth::{Keys, Passwords};
use psrt_proto::broker::AuthConfig;
use psrt_proto::cluster::{ClusterSpec, PeerSpec, PeersReloader};
use psrt_proto::config::{BindAddr, FileError, ServerConfig, parse_acl, parse_cluster};
use psrt_proto::conn::ConnConfig;
use psrt_proto::spec::{Reloader, ServerSpec};
use psrt_proto::tls::{TlsError, server_config_from_pem};

#[cfg(test)]
mod tests;

/// Where the daemon looks for its config when none is given, in order.
pub const DEFAULT_CONFIG_PATHS: [&str; 2] =
    ["/etc/psrtd/config.yml", "/usr/local/etc/psrtd/config.yml"];

/// How long queued messages may take to reach subscribers on SIGTERM before
/// the process exits anyway: long enough for a healthy subscriber, short
/// enough for a service manager's stop timeout.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Host name used when the machine's cannot be read.
const FALLBACK_HOST: &str = "localhost";

/// Where the config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A config file (given on the command line or found at a default path).
    File(PathBuf),
    /// No file: [`ServerConfig::builtin_default`] (loopback only, anonymous
    /// full access).
    BuiltinDefault,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::BuiltinDefault => f.write_str("built-in default"),
        }
    }
}

/// Why the daemon cannot start with its config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The config, password, ACL or key file is unreadable or invalid; the
    /// message names the file, line and key.
    #[error(transparent)]
    File(#[from] FileError),
    /// The TLS certificate and key PEMs do not make a TLS configuration.
    #[error("{cert} and {key} (proto.tls_cert, proto.tls_key): {source}")]
    Tls {
        /// The certificate chain file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
        /// What rustls or the PEM reader refused.
        #[source]
        source: TlsError,
    },
}

/// A validated config and the server it describes.
#[derive(Debug)]
pub struct Loaded {
    /// Where the config came from.
    pub source: ConfigSource,
    /// The parsed config (paths made absolute), for the pid file and logs.
    pub config: ServerConfig,
    /// What the runtime serves.
    pub spec: ServerSpec,
}

impl Loaded {
    /// What the server would listen on and how, one `name: value` line
    /// each: what `--test-config` prints.
    pub fn summary(&self) -> String {
        let spec = &self.spec;
        let mut out = String::new();
        line(&mut out, "config", &self.source.to_string());
        for addr in &spec.tcp {
            line(&mut out, "tcp", &addr.to_string());
        }
        for path in &spec.unix {
            line(&mut out, "unix", &path.display().to_string());
        }
        for addr in &spec.udp {
            line(&mut out, "udp", &addr.to_string());
        }
        line(&mut out, "stats", &optional_addr(spec.stats));
        line(&mut out, "tls", tls_state(&spec.conn));
        line(&mut out, "anonymous", on_off(spec.auth.allow_anonymous));
        line(&mut out, "workers", &spec.workers.to_string());
        if let Some(pid_file) = &self.config.server.pid_file {
            line(&mut out, "pid_file", &pid_file.display().to_string());
        }
        if let Some(cluster) = &self.config.cluster {
            line(&mut out, "cluster", &cluster.config.display().to_string());
        }
        for peer in &spec.cluster.peers {
            let tls = if peer.config.tls { " (TLS)" } else { "" };
            let user = &peer.config.user;
            line(
                &mut out,
                "peer",
                &format!("{} as {user:?}{tls}", peer.config.path),
            );
        }
        out
    }
}

/// Reads and validates the config at `config_path`, or at the first of
/// [`DEFAULT_CONFIG_PATHS`] that exists, or takes the built-in default (and
/// logs that); then every file it names. Binds and writes nothing.
pub fn load(config_path: Option<&Path>) -> Result<Loaded, SetupError> {
    let candidates = DEFAULT_CONFIG_PATHS.map(Path::new);
    load_from(select_config(config_path, &candidates))
}

/// The config to use: `explicit` when given (even if missing, so the error
/// names it), else the first of `candidates` that exists, else the built-in
/// default.
pub fn select_config(explicit: Option<&Path>, candidates: &[&Path]) -> ConfigSource {
    if let Some(path) = explicit {
        return ConfigSource::File(path.to_path_buf());
    }
    candidates
        .iter()
        .find(|path| path.exists())
        .map_or(ConfigSource::BuiltinDefault, |path| {
            ConfigSource::File(path.to_path_buf())
        })
}

/// Like [`load`], from an already chosen source.
pub fn load_from(source: ConfigSource) -> Result<Loaded, SetupError> {
    let config = match &source {
        ConfigSource::File(path) => read_config(path)?,
        ConfigSource::BuiltinDefault => {
            tracing::info!(
                "no config file at {}: using the built-in default \
                 (127.0.0.1:2873 TCP and UDP, stats on 127.0.0.1:8880, anonymous with full rights)",
                DEFAULT_CONFIG_PATHS.join(" or ")
            );
            ServerConfig::builtin_default()
        }
    };
    let spec = build_spec(&config)?;
    Ok(Loaded {
        source,
        config,
        spec,
    })
}

/// Reads and parses the config file, logging its warnings. The path is made
/// absolute first, so the paths inside it stay valid after the daemon
/// changes its working directory.
fn read_config(path: &Path) -> Result<ServerConfig, FileError> {
    let path = std::path::absolute(path).map_err(|err| FileError::unreadable(path, &err))?;
    let text = read_text(&path)?;
    let parsed = ServerConfig::parse(&text, &path)?;
    for warning in &parsed.warnings {
        tracing::warn!("{warning}");
    }
    Ok(parsed.config)
}

fn read_text(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|err| FileError::unreadable(path, &err))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|err| FileError::unreadable(path, &err))
}

fn build_spec(config: &ServerConfig) -> Result<ServerSpec, SetupError> {
    let files = AuthFiles::of(config);
    let auth = files.load()?;
    let reload: Reloader = Arc::new(move || files.load().map_err(|err| err.to_string()));
    let (tcp, unix) = split_binds(config.binds());
    Ok(ServerSpec {
        limits: config.limits(),
        latency_warn: config.server.latency_warn,
        workers: config.server.workers,
        tcp,
        unix,
        udp: config.udp_binds().to_vec(),
        stats: config.stats_bind(),
        conn: conn_config(config)?,
        auth,
        reload: Some(reload),
        drain_timeout: DRAIN_TIMEOUT,
        host: host_name(),
        version: String::from(env!("CARGO_PKG_VERSION")),
        build: crate::build_info::describe().to_owned(),
        cluster: cluster_spec(config)?,
    })
}

/// The cluster peers from the file `cluster.config` names, with their
/// `tls_ca` bundles read, and a reload of the same file; no peers without
/// a `cluster:` section.
fn cluster_spec(config: &ServerConfig) -> Result<ClusterSpec, FileError> {
    let Some(section) = &config.cluster else {
        return Ok(ClusterSpec::default());
    };
    let path = section.config.clone();
    let peers = read_peers(&path)?;
    let reload: PeersReloader = Arc::new(move || read_peers(&path).map_err(|e| e.to_string()));
    Ok(ClusterSpec {
        peers,
        reload: Some(reload),
        ..ClusterSpec::default()
    })
}

/// Reads and validates the cluster file and every `tls_ca` it names.
fn read_peers(path: &Path) -> Result<Vec<PeerSpec>, FileError> {
    let configs = parse_cluster(&read_text(path)?, path)?;
    configs
        .into_iter()
        .map(|config| {
            let ca_pem = match &config.tls_ca {
                Some(ca) => {
                    let pem = read_bytes(ca)?;
                    psrt_proto::tls::client_config(Some(&pem)).map_err(|err| FileError {
                        path: ca.clone(),
                        line: None,
                        column: None,
                        key: None,
                        message: format!(
                            "not usable as the CA of cluster peer {:?} (tls_ca): {err}",
                            config.path
                        ),
                    })?;
                    Some(pem)
                }
                None => None,
            };
            Ok(PeerSpec { config, ca_pem })
        })
        .collect()
}

/// The files SIGHUP re-reads, and what parsing them needs.
struct AuthFiles {
    allow_anonymous: bool,
    password_file: Option<PathBuf>,
    acl: Option<PathBuf>,
    key_file: Option<PathBuf>,
    max_topic_depth: usize,
}

impl AuthFiles {
    fn of(config: &ServerConfig) -> AuthFiles {
        AuthFiles {
            allow_anonymous: config.auth.allow_anonymous,
            password_file: config.auth.password_file.clone(),
            acl: config.auth.acl.clone(),
            key_file: config.auth.key_file.clone(),
            max_topic_depth: config.server.max_topic_depth,
        }
    }

    /// Reads all three files. No ACL file gives everyone full rights; no
    /// password file allows only anonymous and Unix-socket logins; no key
    /// file refuses encrypted UDP.
    fn load(&self) -> Result<AuthConfig, FileError> {
        let acl = match &self.acl {
            Some(path) => parse_acl(&read_text(path)?, path, self.max_topic_depth)?,
            None => Acl::allow_all(),
        };
        let passwords = match &self.password_file {
            Some(path) => Some(Passwords::parse(&read_text(path)?, path)?),
            None => None,
        };
        let keys = match &self.key_file {
            Some(path) => Some(Keys::parse(&read_text(path)?, path)?),
            None => None,
        };
        Ok(AuthConfig {
            allow_anonymous: self.allow_anonymous,
            acl,
            passwords,
            keys,
        })
    }
}

/// Splits control listeners into TCP addresses and Unix-socket paths.
fn split_binds(binds: &[BindAddr]) -> (Vec<SocketAddr>, Vec<PathBuf>) {
    let mut tcp = Vec::new();
    let mut unix = Vec::new();
    for bind in binds {
        match bind {
            BindAddr::Tcp(addr) => tcp.push(*addr),
            BindAddr::Unix(path) => unix.push(path.clone()),
        }
    }
    (tcp, unix)
}

/// The TLS policy; builds the rustls server config when `tls_cert` and
/// `tls_key` are set.
fn conn_config(config: &ServerConfig) -> Result<ConnConfig, SetupError> {
    let allow_no_tls = config.proto.allow_no_tls;
    let (Some(cert), Some(key)) = (&config.proto.tls_cert, &config.proto.tls_key) else {
        return Ok(ConnConfig {
            tls: None,
            allow_no_tls,
        });
    };
    let tls = server_config_from_pem(&read_bytes(cert)?, &read_bytes(key)?).map_err(|source| {
        SetupError::Tls {
            cert: cert.clone(),
            key: key.clone(),
            source,
        }
    })?;
    Ok(ConnConfig {
        tls: Some(tls),
        allow_no_tls,
    })
}

/// The machine's host name for `/status`, or `localhost`.
fn host_name() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| String::from(FALLBACK_HOST))
}

fn line(out: &mut String, name: &str, value: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{name}: {value}");
}

fn optional_addr(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| String::from("off"), |addr| addr.to_string())
}

/// `on`/`off`, and whether plain connections are still accepted.
pub fn tls_state(conn: &ConnConfig) -> &'static str {
    match (conn.tls.is_some(), conn.allow_no_tls) {
        (true, true) => "on (plain connections allowed)",
        (true, false) => "on (TLS only)",
        (false, _) => "off",
    }
}

/// `on` or `off`, for logs and the summary.
pub fn on_off(flag: bool) -> &'static str {
    if flag { "on" } else { "off" }
}
