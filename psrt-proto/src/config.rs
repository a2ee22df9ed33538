//! The server's YAML files, parsed from text: the server config
//! ([`ServerConfig::parse`]), the ACL ([`parse_acl`]) and the cluster
//! peers ([`parse_cluster`]). The password and
//! key files live in [`crate::auth`]. Reading the files is the driver's job;
//! this module never touches the file system.
//!
//! Every failure is a [`FileError`] that names the file, the line and column
//! when known, and the dotted key (`proto.bind[1]`), in words a user can act
//! on. Checks that concern one value run while deserializing, so they carry
//! the value's exact position; checks across keys (`tls_cert` without
//! `tls_key`) point at the key's line found by a scan of the text.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::Limits;
use crate::acl::{Acl, AclEntry};
use crate::topic::{self, TopicError};

mod cluster;

pub use cluster::{PeerConfig, parse_cluster};

/// A file that could not be used, and where and why, in words a user can act
/// on. Displays as `FILE:LINE:COLUMN: KEY: MESSAGE`, leaving out the parts
/// that are unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The file, as the caller named it.
    pub path: PathBuf,
    /// 1-based line of the offending text, when known.
    pub line: Option<usize>,
    /// 1-based column of the offending text, when known.
    pub column: Option<usize>,
    /// Dotted path of the offending key (`proto.bind[1]`), or the login in a
    /// password/key/ACL file, when there is one.
    pub key: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FileError {
    /// The file could not be read at all; for drivers, so a missing file
    /// reports in the same shape as a broken one.
    pub fn unreadable(path: &Path, err: &std::io::Error) -> FileError {
        FileError::new(path, None, format!("cannot read the file: {err}"))
    }

    pub(crate) fn new(path: &Path, key: Option<&str>, message: String) -> FileError {
        FileError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            key: key.map(str::to_owned),
            message,
        }
    }

    pub(crate) fn at(mut self, line: Option<usize>, column: Option<usize>) -> FileError {
        self.line = line;
        self.column = column;
        self
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// A parsed server config and the warnings to log about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedConfig {
    /// The validated config, relative paths resolved.
    pub config: ServerConfig,
    /// Accepted but ignored settings, each a full sentence naming file and
    /// key, for the daemon to log.
    pub warnings: Vec<String>,
}

/// The server config file (upstream-compatible keys, see PROTOCOL.md).
/// Build it with [`ServerConfig::parse`] or [`ServerConfig::builtin_default`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `server:` section: workers, limits, pid and stats.
    pub server: ServerSection,
    /// `proto:` section: listeners, TLS, timeout.
    pub proto: ProtoSection,
    /// `auth:` section: anonymous access and the password, key and ACL files.
    pub auth: AuthSection,
    /// `cluster:` section, when the node replicates to peers.
    pub cluster: Option<ClusterSection>,
}

/// The `server:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSection {
    /// Worker threads; at least 1. Default 2.
    pub workers: usize,
    /// Log a warning when a delivery takes longer than this; `None` (written
    /// `0`) turns it off. Written in µs. Default 50,000 µs (50 ms).
    pub latency_warn: Option<Duration>,
    /// Pending messages per client before it is dropped as a slow consumer.
    /// Default 1024.
    pub data_queue: usize,
    /// Most `/` separators in a topic. Default 32.
    pub max_topic_depth: usize,
    /// Largest SUBSCRIBE/UNSUBSCRIBE frame. Default 1,000,000.
    pub max_topic_length: usize,
    /// Largest PUBLISH frame (`topic 00 payload`). Default 1,100,000.
    pub max_pub_size: usize,
    /// File to write the daemon's pid to. Default none.
    pub pid_file: Option<PathBuf>,
    /// Address of the HTTP stats endpoint. Default none (off).
    pub bind_stats: Option<SocketAddr>,
}

/// The `proto:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtoSection {
    /// Control/data listeners (TCP or Unix socket); at least one. Required:
    /// where to listen is a choice the config must make.
    pub bind: Vec<BindAddr>,
    /// UDP publish listeners. Default none.
    pub bind_udp: Vec<SocketAddr>,
    /// Largest UDP datagram accepted. Default 4096.
    pub udp_frame_size: usize,
    /// Keep-alive: an operation must arrive within this time. Written in
    /// seconds, may be fractional. Default 5 s.
    pub timeout: Duration,
    /// PEM certificate chain; set together with `tls_key`. Default none.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key; set together with `tls_cert`. Default none.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: when set, TLS clients must present a
    /// certificate one of them issued. Needs `tls_cert`. Default none.
    pub tls_client_ca: Option<PathBuf>,
    /// The common name (CN) of a TLS client's verified certificate is its
    /// login, whatever login and password it sends; a certificate without
    /// exactly one non-empty CN is refused. Needs `tls_client_ca`. Plain
    /// and Unix-socket clients log in as usual. Default false.
    pub tls_client_cn_login: bool,
    /// Accept plain (non-TLS) connections. Default true.
    pub allow_no_tls: bool,
}

/// The `auth:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "a map of auth settings (allow_anonymous, password_file, ...)"
)]
pub struct AuthSection {
    /// Accept the empty login. Default true (upstream's example config).
    pub allow_anonymous: bool,
    /// htpasswd file (bcrypt). Default none: no password logins.
    pub password_file: Option<PathBuf>,
    /// UDP encryption key file. Default none: no encrypted UDP.
    pub key_file: Option<PathBuf>,
    /// ACL file. Default none: every login gets full rights, admin included.
    pub acl: Option<PathBuf>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            allow_anonymous: true,
            password_file: None,
            key_file: None,
            acl: None,
        }
    }
}

/// The `cluster:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map with the key config")]
pub struct ClusterSection {
    /// The peers file (a list of `{path, user, password, timeout, tls,
    /// tls_ca}`); required when the section is present.
    pub config: PathBuf,
}

/// A control/data listener address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BindAddr {
    /// `IP:PORT` (IPv6 as `[ADDR]:PORT`).
    Tcp(SocketAddr),
    /// A path ending in `.sock` or `.socket`.
    Unix(PathBuf),
}

impl Default for ServerSection {
    fn default() -> Self {
        let limits = Limits::default();
        ServerSection {
            workers: 2,
            latency_warn: Some(Duration::from_micros(50_000)),
            data_queue: limits.data_queue,
            max_topic_depth: limits.max_topic_depth,
            max_topic_length: limits.max_topic_length,
            max_pub_size: limits.max_pub_size,
            pid_file: None,
            bind_stats: None,
        }
    }
}

impl ServerConfig {
    /// Parses and validates the config file's text. `path` names the file in
    /// errors and is the base for relative paths inside it.
    pub fn parse(text: &str, path: &Path) -> Result<ParsedConfig, FileError> {
        let raw: RawConfig = deserialize_yaml(text, path, PhantomData)?;
        let mut warnings = Vec::new();
        if raw.server.license.is_some() {
            let warning = located(text, path, "server", "license")
                .message("ignored: Enterprise licence (this server has no licensed features)");
            warnings.push(warning.to_string());
        }
        check_tls(&raw.proto, text, path)?;
        let mut config = raw.into_config();
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(ParsedConfig { config, warnings })
    }

    /// The config used when no file exists: TCP and UDP on 127.0.0.1:2873,
    /// stats on 127.0.0.1:8880, anonymous access, and no password, key or
    /// ACL file (so everyone has full rights, admin included); upstream
    /// defaults for the rest. Safe because it listens on loopback only.
    pub fn builtin_default() -> ServerConfig {
        let local = SocketAddr::from(([127, 0, 0, 1], 2873));
        let limits = Limits::default();
        ServerConfig {
            server: ServerSection {
                bind_stats: Some(SocketAddr::from(([127, 0, 0, 1], 8880))),
                ..ServerSection::default()
            },
            proto: ProtoSection {
                bind: vec![BindAddr::Tcp(local)],
                bind_udp: vec![local],
                udp_frame_size: limits.udp_frame_size,
                timeout: limits.timeout,
                tls_cert: None,
                tls_key: None,
                tls_client_ca: None,
                tls_client_cn_login: false,
                allow_no_tls: true,
            },
            auth: AuthSection::default(),
            cluster: None,
        }
    }

    /// The broker limits this config sets; limits without a config key keep
    /// [`Limits::default`].
    pub fn limits(&self) -> Limits {
        Limits {
            max_topic_depth: self.server.max_topic_depth,
            max_topic_length: self.server.max_topic_length,
            max_pub_size: self.server.max_pub_size,
            data_queue: self.server.data_queue,
            timeout: self.proto.timeout,
            udp_frame_size: self.proto.udp_frame_size,
            ..Limits::default()
        }
    }

    /// Control/data listeners (`proto.bind`).
    pub fn binds(&self) -> &[BindAddr] {
        &self.proto.bind
    }

    /// UDP listeners (`proto.bind_udp`), possibly none.
    pub fn udp_binds(&self) -> &[SocketAddr] {
        &self.proto.bind_udp
    }

    /// The stats HTTP listener (`server.bind_stats`), if any.
    pub fn stats_bind(&self) -> Option<SocketAddr> {
        self.server.bind_stats
    }

    /// Whether TLS is configured (certificate and key).
    pub fn tls_enabled(&self) -> bool {
        self.proto.tls_cert.is_some() && self.proto.tls_key.is_some()
    }

    fn resolve_paths(&mut self, base: &Path) {
        let files = [
            &mut self.server.pid_file,
            &mut self.proto.tls_cert,
            &mut self.proto.tls_key,
            &mut self.proto.tls_client_ca,
            &mut self.auth.password_file,
            &mut self.auth.key_file,
            &mut self.auth.acl,
        ];
        for file in files.into_iter().flatten() {
            resolve(base, file);
        }
        if let Some(cluster) = &mut self.cluster {
            resolve(base, &mut cluster.config);
        }
        for bind in &mut self.proto.bind {
            if let BindAddr::Unix(socket) = bind {
                resolve(base, socket);
            }
        }
    }
}

/// Parses the ACL file: a map from login (`_` = anonymous) to
/// `{sub: [masks], pub: [masks], admin: bool, replicator: bool}`, every key
/// optional (a missing list denies everything). A login listed with no
/// rights may still log in. A null or empty file is an empty ACL: no one
/// may log in. Masks are validated against `max_depth`.
pub fn parse_acl(text: &str, path: &Path, max_depth: usize) -> Result<Acl, FileError> {
    let seed = UniqueMapSeed {
        value: EntrySeed { max_depth },
        what: "user",
    };
    let entries = deserialize_yaml(text, path, OptionalSeed(seed))?;
    Acl::from_entries(entries.unwrap_or_default(), max_depth).map_err(|err| {
        FileError::new(
            path,
            Some(&err.login),
            format!("invalid mask {:?}: {}", err.mask, err.reason),
        )
    })
}

/// Deserializes YAML `text` with `seed`, turning a failure into a
/// [`FileError`] with position, key path and a message free of both.
pub(crate) fn deserialize_yaml<'de, S: DeserializeSeed<'de>>(
    text: &'de str,
    path: &Path,
    seed: S,
) -> Result<S::Value, FileError> {
    let mut track = serde_path_to_error::Track::new();
    let yaml = yaml_serde::Deserializer::from_str(text);
    seed.deserialize(serde_path_to_error::Deserializer::new(yaml, &mut track))
        .map_err(|err| yaml_error(path, &track.path(), &err))
}

/// A YAML map whose keys must be distinct: a login listed twice is an error
/// at the second one (plain maps keep the last silently). Yields the entries
/// in file order; `what` names a key in messages ("user").
#[derive(Clone, Copy)]
pub(crate) struct UniqueMapSeed<S> {
    /// Seed for each value.
    pub(crate) value: S,
    /// What a key is, for the duplicate message.
    pub(crate) what: &'static str,
}

/// Deserializes `null`/an empty document as `None`, anything else with the
/// inner seed.
#[derive(Clone, Copy)]
pub(crate) struct OptionalSeed<S>(pub(crate) S);

fn yaml_error(
    path: &Path,
    key_path: &serde_path_to_error::Path,
    err: &yaml_serde::Error,
) -> FileError {
    let key = key_path.to_string();
    // Syntax errors end the path with an unknown segment (`server.?`).
    let key = key.split('?').next().unwrap_or("").trim_end_matches('.');
    let key = (!key.is_empty()).then_some(key);
    let location = err.location();
    let mut message = err.to_string();
    if let Some(location) = &location {
        let mark = format!(" at line {} column {}", location.line(), location.column());
        message = message.replacen(&mark, "", 1);
    }
    let message = strip_key_prefix(&message, key).to_owned();
    FileError::new(path, key, message).at(
        location.as_ref().map(|l| l.line()),
        location.as_ref().map(|l| l.column()),
    )
}

/// yaml_serde prefixes messages with the path of the value it was reading,
/// which is `key` or one of its parents; the key is shown separately. In a
/// file that is a list (the cluster file) that path starts with the root's
/// `.` (`.[1].timeout`), which `key` does not.
fn strip_key_prefix<'a>(message: &'a str, key: Option<&str>) -> &'a str {
    let message = match message.strip_prefix('.') {
        Some(rest) if rest.starts_with('[') => rest,
        _ => message,
    };
    let mut candidate = key.unwrap_or("");
    while !candidate.is_empty() {
        if let Some(rest) = message
            .strip_prefix(candidate)
            .and_then(|r| r.strip_prefix(": "))
        {
            return rest;
        }
        candidate = candidate
            .rfind(['.', '['])
            .and_then(|end| candidate.get(..end))
            .unwrap_or("");
    }
    message
}

/// A [`FileError`] placed at `section.key` in a block-style file; without
/// line and column when the key cannot be found by a plain scan.
struct Located<'a> {
    path: &'a Path,
    key: String,
    position: Option<(usize, usize)>,
}

impl Located<'_> {
    fn message(self, message: &str) -> FileError {
        FileError::new(self.path, Some(&self.key), message.to_owned()).at(
            self.position.map(|(line, _)| line),
            self.position.map(|(_, column)| column),
        )
    }
}

fn located<'a>(text: &str, path: &'a Path, section: &str, key: &str) -> Located<'a> {
    Located {
        path,
        key: format!("{section}.{key}"),
        position: find_key(text, section, key),
    }
}

/// Line and column (1-based) of `key:` indented under a top-level
/// `section:`.
fn find_key(text: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    let starts_key = |content: &str, name: &str| {
        content
            .strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    let mut in_section = false;
    for (index, line) in text.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if indent == 0 {
            in_section = starts_key(content, section);
        } else if in_section && starts_key(content, key) {
            return Some((index + 1, indent + 1));
        }
    }
    None
}

fn check_tls(proto: &RawProto, text: &str, path: &Path) -> Result<(), FileError> {
    let both =
        "set both tls_cert (PEM certificate chain) and tls_key (PEM private key), or neither";
    match (&proto.tls_cert, &proto.tls_key) {
        (Some(_), None) => {
            let message = format!("tls_key is missing: {both}");
            return Err(located(text, path, "proto", "tls_cert").message(&message));
        }
        (None, Some(_)) => {
            let message = format!("tls_cert is missing: {both}");
            return Err(located(text, path, "proto", "tls_key").message(&message));
        }
        (None, None) if proto.tls_client_ca.is_some() => {
            let message = "client certificates need TLS: set tls_cert and tls_key too";
            return Err(located(text, path, "proto", "tls_client_ca").message(message));
        }
        (None, None) if !proto.allow_no_tls => {
            let message = "plain connections are forbidden but TLS is not configured: \
                set tls_cert and tls_key, or allow_no_tls: true";
            return Err(located(text, path, "proto", "allow_no_tls").message(message));
        }
        _ => {}
    }
    if proto.tls_client_cn_login && proto.tls_client_ca.is_none() {
        let message = "the common name can be the login only of a verified client \
            certificate: set tls_client_ca (and tls_cert, tls_key), or remove the key";
        return Err(located(text, path, "proto", "tls_client_cn_login").message(message));
    }
    Ok(())
}

fn resolve(base: &Path, file: &mut PathBuf) {
    if file.is_relative() {
        *file = base.join(&*file);
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map with the sections server, proto, auth and cluster"
)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    proto: RawProto,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    cluster: Option<ClusterSection>,
}

/// `server:` as written: [`ServerSection`] plus upstream's `license`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "a map of server settings (workers, data_queue, ...)"
)]
struct RawServer {
    #[serde(deserialize_with = "positive")]
    workers: usize,
    #[serde(deserialize_with = "micros")]
    latency_warn: Option<Duration>,
    #[serde(deserialize_with = "positive")]
    data_queue: usize,
    #[serde(deserialize_with = "positive")]
    max_topic_depth: usize,
    #[serde(deserialize_with = "positive")]
    max_topic_length: usize,
    #[serde(deserialize_with = "positive")]
    max_pub_size: usize,
    pid_file: Option<PathBuf>,
    bind_stats: Option<Parsed<SocketAddr>>,
    license: Option<yaml_serde::Value>,
}

impl Default for RawServer {
    fn default() -> Self {
        let ServerSection {
            workers,
            latency_warn,
            data_queue,
            max_topic_depth,
            max_topic_length,
            max_pub_size,
            pid_file,
            bind_stats,
        } = ServerSection::default();
        RawServer {
            workers,
            latency_warn,
            data_queue,
            max_topic_depth,
            max_topic_length,
            max_pub_size,
            pid_file,
            bind_stats: bind_stats.map(Parsed),
            license: None,
        }
    }
}

/// `proto:` as written: [`ProtoSection`] plus upstream's `fips` and
/// `tls_pkcs12`, which deserialize only when acceptable.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map of proto settings (bind, timeout, ...)"
)]
struct RawProto {
    #[serde(deserialize_with = "one_or_many")]
    bind: Vec<BindAddr>,
    #[serde(default, deserialize_with = "one_or_many")]
    bind_udp: Vec<SocketAddr>,
    #[serde(default = "default_udp_frame_size", deserialize_with = "positive")]
    udp_frame_size: usize,
    #[serde(default = "default_timeout", deserialize_with = "seconds")]
    timeout: Duration,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
    #[serde(default)]
    tls_client_ca: Option<PathBuf>,
    #[serde(default)]
    tls_client_cn_login: bool,
    #[serde(default = "yes")]
    allow_no_tls: bool,
    #[serde(default, rename = "fips")]
    _fips: Option<FipsOff>,
    #[serde(default, rename = "tls_pkcs12")]
    _tls_pkcs12: Option<Parsed<Pkcs12Bundle>>,
}

impl RawConfig {
    fn into_config(self) -> ServerConfig {
        let RawConfig {
            server,
            proto,
            auth,
            cluster,
        } = self;
        ServerConfig {
            server: ServerSection {
                workers: server.workers,
                latency_warn: server.latency_warn,
                data_queue: server.data_queue,
                max_topic_depth: server.max_topic_depth,
                max_topic_length: server.max_topic_length,
                max_pub_size: server.max_pub_size,
                pid_file: server.pid_file,
                bind_stats: server.bind_stats.map(|Parsed(addr)| addr),
            },
            proto: ProtoSection {
                bind: proto.bind,
                bind_udp: proto.bind_udp,
                udp_frame_size: proto.udp_frame_size,
                timeout: proto.timeout,
                tls_cert: proto.tls_cert,
                tls_key: proto.tls_key,
                tls_client_ca: proto.tls_client_ca,
                tls_client_cn_login: proto.tls_client_cn_login,
                allow_no_tls: proto.allow_no_tls,
            },
            auth,
            cluster,
        }
    }
}

fn default_udp_frame_size() -> usize {
    Limits::default().udp_frame_size
}

fn default_timeout() -> Duration {
    Limits::default().timeout
}

fn yes() -> bool {
    true
}

fn positive<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    deserializer.deserialize_any(PositiveVisitor)
}

fn micros<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    deserializer.deserialize_any(MicrosVisitor)
}

fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(SecondsVisitor)
}

fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromConfigStr,
{
    deserializer.deserialize_any(ListVisitor(PhantomData))
}

/// `proto.fips` as written: only `false` deserializes.
struct FipsOff;

impl<'de> Deserialize<'de> for FipsOff {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bool(FipsVisitor)
    }
}

struct FipsVisitor;

impl Visitor<'_> for FipsVisitor {
    type Value = FipsOff;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("false")
    }

    fn visit_bool<E: de::Error>(self, fips: bool) -> Result<FipsOff, E> {
        if fips {
            return Err(E::custom(
                "FIPS mode is not available in this server; remove the key or set it to false",
            ));
        }
        Ok(FipsOff)
    }
}

/// `proto.tls_pkcs12` as written: never accepted, the error explains the
/// conversion to PEM.
struct Pkcs12Bundle;

impl FromConfigStr for Pkcs12Bundle {
    const EXPECTING: &'static str = "nothing (use tls_cert and tls_key)";

    fn from_config_str(bundle: &str) -> Result<Self, String> {
        Err(format!(
            "PKCS#12 bundles are not supported; convert {bundle:?} to PEM and set tls_cert and \
             tls_key instead, e.g. `openssl pkcs12 -in {bundle} -nokeys -out server.crt` and \
             `openssl pkcs12 -in {bundle} -nocerts -nodes -out server.key`"
        ))
    }
}

struct PositiveVisitor;

impl Visitor<'_> for PositiveVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of at least 1")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<usize, E> {
        if value == 0 {
            return Err(E::custom("must be at least 1, got 0"));
        }
        usize::try_from(value).map_err(|_| E::custom(format!("{value} is too large")))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<usize, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::custom(format!("must be at least 1, got {value}"))),
        }
    }
}

/// Microseconds, `0` meaning "off".
struct MicrosVisitor;

impl Visitor<'_> for MicrosVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of microseconds (0 = off)")
    }

    fn visit_u64<E: de::Error>(self, micros: u64) -> Result<Option<Duration>, E> {
        Ok((micros > 0).then(|| Duration::from_micros(micros)))
    }

    fn visit_i64<E: de::Error>(self, micros: i64) -> Result<Option<Duration>, E> {
        match u64::try_from(micros) {
            Ok(micros) => self.visit_u64(micros),
            Err(_) => Err(E::custom(format!(
                "must be 0 (off) or more microseconds, got {micros}"
            ))),
        }
    }
}

struct SecondsVisitor;

impl SecondsVisitor {
    fn duration<E: de::Error>(seconds: f64) -> Result<Duration, E> {
        let positive = "must be a number of seconds greater than 0";
        if !seconds.is_finite() || seconds <= 0.0 {
            return Err(E::custom(format!("{positive}, got {seconds}")));
        }
        match Duration::try_from_secs_f64(seconds) {
            Ok(duration) if !duration.is_zero() => Ok(duration),
            Ok(_) => Err(E::custom(format!("{positive}, got {seconds}"))),
            Err(_) => Err(E::custom(format!("{seconds} seconds is too long"))),
        }
    }
}

impl Visitor<'_> for SecondsVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds, e.g. 5 or 0.5")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Duration, E> {
        Self::duration(value as f64)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Duration, E> {
        Self::duration(value as f64)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Duration, E> {
        Self::duration(value)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
        Err(E::custom(format!(
            "expected a number of seconds, got {value:?}"
        )))
    }
}

/// A config value written as one string.
trait FromConfigStr: Sized {
    /// What a valid value looks like, for messages.
    const EXPECTING: &'static str;

    /// Parses the value, or says why not.
    fn from_config_str(text: &str) -> Result<Self, String>;
}

impl FromConfigStr for BindAddr {
    const EXPECTING: &'static str =
        "IP:PORT (e.g. 0.0.0.0:2873 or [::]:2873) or a Unix socket path ending in .sock or .socket";

    fn from_config_str(text: &str) -> Result<Self, String> {
        if is_unix_socket(text) {
            return Ok(BindAddr::Unix(PathBuf::from(text)));
        }
        text.parse().map(BindAddr::Tcp).map_err(|_| {
            format!(
                "expected {}, got {text:?} (host names are not resolved)",
                Self::EXPECTING
            )
        })
    }
}

impl FromConfigStr for SocketAddr {
    const EXPECTING: &'static str = "IP:PORT (e.g. 127.0.0.1:2873 or [::1]:2873)";

    fn from_config_str(text: &str) -> Result<Self, String> {
        if is_unix_socket(text) {
            return Err(format!(
                "a Unix socket is not possible here, got {text:?}; expected {}",
                Self::EXPECTING
            ));
        }
        text.parse().map_err(|_| {
            format!(
                "expected {}, got {text:?} (host names are not resolved)",
                Self::EXPECTING
            )
        })
    }
}

fn is_unix_socket(text: &str) -> bool {
    text.ends_with(".sock") || text.ends_with(".socket")
}

/// One string value parsed with [`FromConfigStr`], positioned at the value.
struct Parsed<T>(T);

impl<'de, T: FromConfigStr> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_str(StrVisitor(PhantomData))
            .map(Parsed)
    }
}

struct StrVisitor<T>(PhantomData<T>);

impl<T: FromConfigStr> Visitor<'_> for StrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        T::from_config_str(value).map_err(E::custom)
    }
}

/// A string or a non-empty list of strings.
struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: FromConfigStr> Visitor<'de> for ListVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, or a list of them", T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Vec<T>, E> {
        T::from_config_str(value)
            .map(|one| vec![one])
            .map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(Parsed(item)) = seq.next_element()? {
            items.push(item);
        }
        if items.is_empty() {
            return Err(de::Error::custom(
                "the list is empty: give at least one address, or remove the key",
            ));
        }
        Ok(items)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for OptionalSeed<S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for OptionalSeed<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map, or nothing")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for UniqueMapSeed<S> {
    type Value = Vec<(String, S::Value)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for UniqueMapSeed<S> {
    type Value = Vec<(String, S::Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map from {} to settings", self.what)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(String, S::Value)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key_seed(NewKeySeed {
            seen: &seen,
            what: self.what,
        })? {
            let value = map.next_value_seed(self.value)?;
            seen.insert(key.clone());
            entries.push((key, value));
        }
        Ok(entries)
    }
}

/// A map key that must not be in `seen`; checked while reading the key so
/// the error points at the duplicate.
struct NewKeySeed<'a> {
    seen: &'a std::collections::HashSet<String>,
    what: &'static str,
}

impl<'de> DeserializeSeed<'de> for NewKeySeed<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for NewKeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} name", self.what)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        if self.seen.contains(value) {
            return Err(E::custom(format!(
                "{} {value:?} is listed twice; keep one entry",
                self.what
            )));
        }
        Ok(value.to_owned())
    }
}

/// One user's ACL entry, masks validated as they are read.
#[derive(Clone, Copy)]
struct EntrySeed {
    max_depth: usize,
}

/// The keys of an ACL entry.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EntryKey {
    Sub,
    Pub,
    Admin,
    Replicator,
    Metrics,
}

const ENTRY_KEYS: &[&str] = &["sub", "pub", "admin", "replicator", "metrics"];

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = AclEntry;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<AclEntry, D::Error> {
        deserializer.deserialize_struct("AclEntry", ENTRY_KEYS, self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = AclEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with keys sub, pub, admin, replicator, metrics (all optional)")
    }

    fn visit_unit<E: de::Error>(self) -> Result<AclEntry, E> {
        Ok(AclEntry::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AclEntry, A::Error> {
        let masks = MasksSeed {
            max_depth: self.max_depth,
        };
        let mut entry = AclEntry::default();
        while let Some(key) = map.next_key()? {
            match key {
                EntryKey::Sub => entry.sub = map.next_value_seed(masks)?,
                EntryKey::Pub => entry.publish = map.next_value_seed(masks)?,
                EntryKey::Admin => entry.admin = map.next_value()?,
                EntryKey::Replicator => entry.replicator = map.next_value()?,
                EntryKey::Metrics => entry.metrics = map.next_value()?,
            }
        }
        Ok(entry)
    }
}

/// A list of topic masks, each validated where it is written.
#[derive(Clone, Copy)]
struct MasksSeed {
    max_depth: usize,
}

impl<'de> DeserializeSeed<'de> for MasksSeed {
    type Value = Vec<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<String>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MasksSeed {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of topic masks, e.g. [\"sensors/#\", \"+/status\"]")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut masks = Vec::new();
        while let Some(mask) = seq.next_element_seed(MaskSeed {
            max_depth: self.max_depth,
        })? {
            masks.push(mask);
        }
        Ok(masks)
    }
}

struct MaskSeed {
    max_depth: usize,
}

impl<'de> DeserializeSeed<'de> for MaskSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for MaskSeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a topic mask")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        match topic::parse_filter(value.as_bytes(), self.max_depth) {
            Ok(_) => Ok(value.to_owned()),
            Err(TopicError::Empty) => Err(E::custom(format!(
                "{value:?} is not a valid topic mask: it is empty \
                 (in YAML, # starts a comment: write '#' in quotes)"
            ))),
            Err(reason) => Err(E::custom(format!(
                "{value:?} is not a valid topic mask: {reason}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
