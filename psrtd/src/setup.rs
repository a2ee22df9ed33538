//! Config files to a runtime-independent [`ServerSpec`].
//!
//! [`load`] picks the config file ([`select_config`]), reads and validates
//! it and every file it names (password file, ACL, key file, TLS PEMs), and
//! builds the spec a runtime serves. The spec's reload closure re-reads the
//! password, ACL and key files and the TLS certificate and key, from the
//! same paths, on SIGHUP, and tells systemd it is reloading meanwhile.
//!
//! Every error names the file and, when known, the line and the key
//! ([`FileError`]'s `Display`; a file that cannot be read at all is named
//! with the config key that points to it), so `psrtd: <error>` is enough
//! for a user to fix the file. Every referenced file is checked even when
//! an earlier one failed, so one run reports every problem
//! ([`SetupError::Several`]). [`Loaded::warnings`] names settings that are
//! valid but unsafe on a network.

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
use psrt_proto::tls::TlsError;
use sd_notify::NotifyState;

use crate::startup;

#[cfg(test)]
mod tests;
mod tls;

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
    /// The client CA (`proto.tls_client_ca`) cannot verify certificates.
    #[error("{} (proto.tls_client_ca): {source}", path.display())]
    ClientCa {
        /// The client CA file.
        path: PathBuf,
        /// What rustls refused.
        #[source]
        source: TlsError,
    },
    /// The pid file (`server.pid_file`) could not be written.
    #[error(transparent)]
    PidFile(#[from] crate::pid_file::PidFileError),
    /// More than one of the above, one per line in the order checked.
    #[error("{}", lines(.0))]
    Several(Vec<SetupError>),
}

impl SetupError {
    /// `problems` as one error: the only one, or [`SetupError::Several`].
    fn of(mut problems: Vec<SetupError>) -> SetupError {
        if problems.len() == 1
            && let Some(only) = problems.pop()
        {
            return only;
        }
        SetupError::Several(problems)
    }
}

fn lines(problems: &[SetupError]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
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
        if let Some(client_ca) = &self.config.proto.tls_client_ca {
            line(&mut out, "tls_client_ca", &client_ca.display().to_string());
        }
        if spec.conn.tls_client_cn_login {
            line(
                &mut out,
                "tls_client_cn_login",
                "on (TLS logins are certificate CNs)",
            );
        }
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

    /// Valid settings that expose the broker: anonymous clients with full
    /// rights, or a stats page open to anyone, on an address other hosts
    /// can reach. Each is a full sentence, logged at start and printed by
    /// `--test-config`.
    pub fn warnings(&self) -> Vec<String> {
        exposure_warnings(&self.spec)
    }
}

/// See [`Loaded::warnings`].
fn exposure_warnings(spec: &ServerSpec) -> Vec<String> {
    let anonymous = spec
        .auth
        .allow_anonymous
        .then(|| spec.auth.acl.rights(""))
        .flatten();
    let full = anonymous
        .as_ref()
        .is_some_and(|rights| rights.may_subscribe("#") && rights.may_publish("#"));
    let admin = anonymous.as_ref().is_some_and(|rights| rights.is_admin());
    let mut warnings = Vec::new();
    let exposed: Vec<String> = spec
        .tcp
        .iter()
        .chain(&spec.udp)
        .filter(|addr| !addr.ip().is_loopback())
        .map(ToString::to_string)
        .collect();
    if full && !exposed.is_empty() {
        warnings.push(format!(
            "anonymous clients may publish and subscribe to every topic, and {} can be \
             reached from other hosts: set auth.allow_anonymous: false, or give the `_` \
             user of the ACL (auth.acl) only the topics it needs",
            exposed.join(", ")
        ));
    }
    if let Some(stats) = spec.stats.filter(|addr| admin && !addr.ip().is_loopback()) {
        warnings.push(format!(
            "the stats page on {stats} (server.bind_stats) is open to anyone who can reach it: \
             bind it to 127.0.0.1, or take `admin` from the `_` user of the ACL (auth.acl)"
        ));
    }
    warnings
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
    let mut problems = Vec::new();
    if let Some(path) = &config.server.pid_file
        && let Err(err) = crate::pid_file::check(path)
    {
        problems.push(SetupError::PidFile(err));
    }
    let spec = build_spec(&config).map_err(|errors| problems.extend(errors));
    let Ok(spec) = spec else {
        return Err(SetupError::of(problems));
    };
    if !problems.is_empty() {
        return Err(SetupError::of(problems));
    }
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

/// Reads the file that config key `key` names; an unreadable file is
/// reported with that key.
fn read_named(path: &Path, key: &str) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|err| unreadable(path, key, &err))
}

/// Like [`read_named`], as UTF-8 text.
fn read_named_text(path: &Path, key: &str) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|err| unreadable(path, key, &err))
}

fn unreadable(path: &Path, key: &str, err: &std::io::Error) -> FileError {
    FileError {
        key: Some(key.to_owned()),
        ..FileError::unreadable(path, err)
    }
}

/// The spec of `config`, or every problem of the files it names.
fn build_spec(config: &ServerConfig) -> Result<ServerSpec, Vec<SetupError>> {
    let files = AuthFiles::of(config);
    let loaded = (files.load(), tls::conn_config(config), cluster_spec(config));
    let (auth, (conn, tls), cluster) = match loaded {
        (Ok(auth), Ok(conn), Ok(cluster)) => (auth, conn, cluster),
        (auth, conn, cluster) => {
            let mut problems: Vec<SetupError> = auth
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(SetupError::File)
                .collect();
            problems.extend(conn.err().unwrap_or_default());
            problems.extend(cluster.err().map(SetupError::File));
            return Err(problems);
        }
    };
    let reload: Reloader = Arc::new(move || {
        startup::notify(&[NotifyState::Reloading]);
        let auth = files.load().map_err(|errors| joined(&errors));
        if let Some(tls) = &tls {
            tls.reload();
        }
        startup::notify(&[NotifyState::Ready]);
        auth
    });
    let (tcp, unix) = split_binds(config.binds());
    Ok(ServerSpec {
        limits: config.limits(),
        latency_warn: config.server.latency_warn,
        workers: config.server.workers,
        tcp,
        unix,
        udp: config.udp_binds().to_vec(),
        stats: config.stats_bind(),
        conn,
        auth,
        reload: Some(reload),
        drain_timeout: DRAIN_TIMEOUT,
        host: host_name(),
        version: String::from(env!("CARGO_PKG_VERSION")),
        build: crate::build_info::describe().to_owned(),
        cluster,
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
    let configs = parse_cluster(&read_named_text(path, "cluster.config")?, path)?;
    configs
        .into_iter()
        .map(|config| {
            let ca_pem = match &config.tls_ca {
                Some(ca) => {
                    let pem = read_named(ca, "tls_ca")?;
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

/// Several file errors as one message, for the reload log.
fn joined(errors: &[FileError]) -> String {
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    messages.join("; ")
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

    /// Reads all three files, each even when another failed, so every
    /// problem is reported. No ACL file gives everyone full rights; no
    /// password file allows only anonymous and Unix-socket logins; no key
    /// file refuses encrypted UDP.
    fn load(&self) -> Result<AuthConfig, Vec<FileError>> {
        let acl = match &self.acl {
            Some(path) => read_named_text(path, "auth.acl")
                .and_then(|text| parse_acl(&text, path, self.max_topic_depth)),
            None => Ok(Acl::allow_all()),
        };
        let passwords = self.password_file.as_ref().map(|path| {
            read_named_text(path, "auth.password_file")
                .and_then(|text| Passwords::parse(&text, path))
        });
        let keys = self.key_file.as_ref().map(|path| {
            read_named_text(path, "auth.key_file").and_then(|text| Keys::parse(&text, path))
        });
        match (acl, passwords.transpose(), keys.transpose()) {
            (Ok(acl), Ok(passwords), Ok(keys)) => Ok(AuthConfig {
                allow_anonymous: self.allow_anonymous,
                acl,
                passwords,
                keys,
            }),
            (acl, passwords, keys) => Err([acl.err(), passwords.err(), keys.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
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
