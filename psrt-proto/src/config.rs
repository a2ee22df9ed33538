//! The server's YAML files, parsed from text: the server config
//! ([`ServerConfig::parse`]) and the ACL ([`parse_acl`]). The password and
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
    /// Accept plain (non-TLS) connections. Default true.
    pub allow_no_tls: bool,
}

/// The `auth:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
#[serde(deny_unknown_fields)]
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
/// which is `key` or one of its parents; the key is shown separately.
fn strip_key_prefix<'a>(message: &'a str, key: Option<&str>) -> &'a str {
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
        (None, None) if !proto.allow_no_tls => {
            let message = "plain connections are forbidden but TLS is not configured: \
                set tls_cert and tls_key, or allow_no_tls: true";
            return Err(located(text, path, "proto", "allow_no_tls").message(message));
        }
        _ => {}
    }
    Ok(())
}

fn resolve(base: &Path, file: &mut PathBuf) {
    if file.is_relative() {
        *file = base.join(&*file);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields, default)]
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
#[serde(deny_unknown_fields)]
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
    #[serde(default = "yes")]
    allow_no_tls: bool,
    #[serde(default, rename = "fips", deserialize_with = "refuse_fips")]
    _fips: (),
    #[serde(default, rename = "tls_pkcs12", deserialize_with = "refuse_pkcs12")]
    _tls_pkcs12: (),
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
    let micros = u64::deserialize(deserializer)?;
    Ok((micros > 0).then(|| Duration::from_micros(micros)))
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

fn refuse_fips<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    if bool::deserialize(deserializer)? {
        return Err(de::Error::custom(
            "FIPS mode is not available in this server; remove the key or set it to false",
        ));
    }
    Ok(())
}

fn refuse_pkcs12<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    let bundle = String::deserialize(deserializer)?;
    Err(de::Error::custom(format!(
        "PKCS#12 bundles are not supported; convert {bundle:?} to PEM and set tls_cert and \
         tls_key instead, e.g. `openssl pkcs12 -in {bundle} -nokeys -out server.crt` and \
         `openssl pkcs12 -in {bundle} -nocerts -nodes -out server.key`"
    )))
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
}

const ENTRY_KEYS: &[&str] = &["sub", "pub", "admin", "replicator"];

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = AclEntry;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<AclEntry, D::Error> {
        deserializer.deserialize_struct("AclEntry", ENTRY_KEYS, self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = AclEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with keys sub, pub, admin, replicator (all optional)")
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
mod tests {
    use super::*;

    const ETC: &str = "/etc/psrtd/config.yml";

    fn parse(text: &str) -> Result<ParsedConfig, FileError> {
        ServerConfig::parse(text, Path::new(ETC))
    }

    fn config(text: &str) -> ServerConfig {
        match parse(text) {
            Ok(parsed) => parsed.config,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }

    fn error(text: &str) -> FileError {
        match parse(text) {
            Ok(parsed) => panic!("expected an error, got {parsed:?}"),
            Err(err) => err,
        }
    }

    fn tcp(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    const UPSTREAM: &str = "\
server:
  workers: 2            # worker threads
  latency_warn: 50000   # µs
  data_queue: 1024
  max_topic_depth: 32
  max_topic_length: 1000000
  max_pub_size: 1100000
  pid_file: /var/run/psrtd/psrtd.pid
  bind_stats: 127.0.0.1:8880
proto:
  bind: 0.0.0.0:2873
  bind_udp: 0.0.0.0:2873
  udp_frame_size: 4096
  timeout: 5
  tls_cert: certs/server.crt
  tls_key: certs/server.key
  allow_no_tls: true
auth:
  allow_anonymous: true
  password_file: psrt-passwd
  key_file: keys.yml
  acl: acl.yml
cluster:
  config: cluster.yml
";

    #[test]
    fn upstream_example_parses_and_resolves_paths() {
        let parsed = parse(UPSTREAM).expect("upstream example");
        assert!(parsed.warnings.is_empty());
        let config = parsed.config;
        assert_eq!(config.server.workers, 2);
        assert_eq!(config.server.latency_warn, Some(Duration::from_millis(50)));
        assert_eq!(
            config.server.pid_file.as_deref(),
            Some(Path::new("/var/run/psrtd/psrtd.pid"))
        );
        assert_eq!(config.stats_bind(), Some(tcp("127.0.0.1:8880")));
        assert_eq!(config.binds(), [BindAddr::Tcp(tcp("0.0.0.0:2873"))]);
        assert_eq!(config.udp_binds(), [tcp("0.0.0.0:2873")]);
        assert_eq!(config.proto.timeout, Duration::from_secs(5));
        assert_eq!(
            config.proto.tls_cert.as_deref(),
            Some(Path::new("/etc/psrtd/certs/server.crt"))
        );
        assert_eq!(
            config.proto.tls_key.as_deref(),
            Some(Path::new("/etc/psrtd/certs/server.key"))
        );
        assert!(config.tls_enabled());
        assert_eq!(
            config.auth.password_file.as_deref(),
            Some(Path::new("/etc/psrtd/psrt-passwd"))
        );
        assert_eq!(
            config.auth.key_file.as_deref(),
            Some(Path::new("/etc/psrtd/keys.yml"))
        );
        assert_eq!(
            config.auth.acl.as_deref(),
            Some(Path::new("/etc/psrtd/acl.yml"))
        );
        assert_eq!(
            config.cluster.map(|c| c.config),
            Some(PathBuf::from("/etc/psrtd/cluster.yml"))
        );
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let config = config("proto:\n  bind: 127.0.0.1:2873\n");
        assert_eq!(config.server, ServerSection::default());
        assert_eq!(config.server.workers, 2);
        assert_eq!(config.server.bind_stats, None);
        assert!(config.udp_binds().is_empty());
        assert_eq!(config.proto.udp_frame_size, 4096);
        assert!(config.proto.allow_no_tls);
        assert!(!config.tls_enabled());
        assert_eq!(config.auth, AuthSection::default());
        assert!(config.auth.allow_anonymous);
        assert_eq!(config.cluster, None);
        assert_eq!(config.limits(), Limits::default());
    }

    #[test]
    fn config_values_map_onto_limits() {
        let config = config(
            "server:\n  data_queue: 7\n  max_topic_depth: 3\n  max_topic_length: 100\n  \
             max_pub_size: 200\nproto:\n  bind: 127.0.0.1:1\n  udp_frame_size: 512\n  \
             timeout: 0.25\n",
        );
        let limits = config.limits();
        assert_eq!(limits.data_queue, 7);
        assert_eq!(limits.max_topic_depth, 3);
        assert_eq!(limits.max_topic_length, 100);
        assert_eq!(limits.max_pub_size, 200);
        assert_eq!(limits.udp_frame_size, 512);
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.max_login_size, Limits::default().max_login_size);
    }

    #[test]
    fn builtin_default_listens_on_loopback_with_full_rights() {
        let config = ServerConfig::builtin_default();
        assert_eq!(config.binds(), [BindAddr::Tcp(tcp("127.0.0.1:2873"))]);
        assert_eq!(config.udp_binds(), [tcp("127.0.0.1:2873")]);
        assert_eq!(config.stats_bind(), Some(tcp("127.0.0.1:8880")));
        assert!(config.auth.allow_anonymous);
        assert_eq!(config.auth.password_file, None);
        assert_eq!(config.auth.key_file, None);
        assert_eq!(config.auth.acl, None);
        assert!(!config.tls_enabled());
        assert!(config.proto.allow_no_tls);
        assert_eq!(config.limits(), Limits::default());
    }

    #[test]
    fn bind_accepts_lists_ipv6_and_unix_sockets() {
        let config = config(
            "proto:\n  bind:\n    - '[::1]:2873'\n    - run/psrtd.sock\n    - /tmp/p.socket\n  \
             bind_udp: ['127.0.0.1:2873', '[::]:2874']\n",
        );
        assert_eq!(
            config.binds(),
            [
                BindAddr::Tcp(tcp("[::1]:2873")),
                BindAddr::Unix(PathBuf::from("/etc/psrtd/run/psrtd.sock")),
                BindAddr::Unix(PathBuf::from("/tmp/p.socket")),
            ]
        );
        assert_eq!(
            config.udp_binds(),
            [tcp("127.0.0.1:2873"), tcp("[::]:2874")]
        );
    }

    #[test]
    fn relative_paths_follow_a_relative_config_file() {
        let text =
            "proto:\n  bind: 127.0.0.1:1\nauth:\n  acl: acl.yml\n  key_file: /abs/keys.yml\n";
        let parsed = ServerConfig::parse(text, Path::new("conf/psrtd.yml")).expect("config");
        assert_eq!(
            parsed.config.auth.acl.as_deref(),
            Some(Path::new("conf/acl.yml"))
        );
        assert_eq!(
            parsed.config.auth.key_file.as_deref(),
            Some(Path::new("/abs/keys.yml"))
        );
        let parsed = ServerConfig::parse(text, Path::new("psrtd.yml")).expect("config");
        assert_eq!(
            parsed.config.auth.acl.as_deref(),
            Some(Path::new("acl.yml"))
        );
    }

    #[test]
    fn timeout_not_a_number_names_file_line_and_key() {
        let err = error("proto:\n  bind: 127.0.0.1:1\n  timeout: abc\n");
        assert_eq!(
            err.to_string(),
            "/etc/psrtd/config.yml:3:12: proto.timeout: expected a number of seconds, got \"abc\""
        );
        assert_eq!(err.path, PathBuf::from(ETC));
        assert_eq!((err.line, err.column), (Some(3), Some(12)));
        assert_eq!(err.key.as_deref(), Some("proto.timeout"));
    }

    #[test]
    fn timeout_must_be_positive_and_finite() {
        for bad in ["0", "-1", ".nan", ".inf", "0.0000000000001"] {
            let err = error(&format!("proto:\n  bind: 127.0.0.1:1\n  timeout: {bad}\n"));
            assert_eq!(err.key.as_deref(), Some("proto.timeout"), "{bad}");
            assert_eq!(err.line, Some(3), "{bad}");
            assert!(err.message.contains("greater than 0"), "{bad}: {err}");
        }
        let err = error("proto:\n  bind: 127.0.0.1:1\n  timeout: 1e300\n");
        assert!(err.message.contains("too long"), "{err}");
    }

    #[test]
    fn counts_must_be_at_least_one() {
        let keys = [
            "workers",
            "data_queue",
            "max_topic_depth",
            "max_topic_length",
            "max_pub_size",
        ];
        for key in keys {
            for bad in ["0", "-3"] {
                let err = error(&format!(
                    "server:\n  {key}: {bad}\nproto:\n  bind: 127.0.0.1:1\n"
                ));
                assert_eq!(err.key.as_deref(), Some(&*format!("server.{key}")));
                assert_eq!(err.line, Some(2));
                assert_eq!(err.message, format!("must be at least 1, got {bad}"));
            }
        }
        let err = error("proto:\n  bind: 127.0.0.1:1\n  udp_frame_size: 0\n");
        assert_eq!(err.key.as_deref(), Some("proto.udp_frame_size"));
        let err = error("server:\n  workers: two\nproto:\n  bind: 127.0.0.1:1\n");
        assert_eq!(err.key.as_deref(), Some("server.workers"));
        assert!(
            err.message.contains("a whole number of at least 1"),
            "{err}"
        );
    }

    #[test]
    fn latency_warn_zero_turns_it_off() {
        let config = config("server:\n  latency_warn: 0\nproto:\n  bind: 127.0.0.1:1\n");
        assert_eq!(config.server.latency_warn, None);
    }

    #[test]
    fn unknown_keys_are_named_with_the_valid_ones() {
        let err = error("server:\n  workers: 1\n  wrokers: 2\nproto:\n  bind: 127.0.0.1:1\n");
        assert_eq!(err.key.as_deref(), Some("server.wrokers"));
        assert_eq!((err.line, err.column), (Some(3), Some(3)));
        assert!(err.message.contains("unknown field `wrokers`"), "{err}");
        assert!(err.message.contains("`workers`"), "{err}");
        assert!(err.message.contains("`bind_stats`"), "{err}");

        let err = error("proto:\n  bind: 127.0.0.1:1\nextra: 1\n");
        assert_eq!(err.key.as_deref(), Some("extra"));
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("`proto`"), "{err}");

        let err = error("proto:\n  bind: 127.0.0.1:1\nauth:\n  passwords: x\n");
        assert_eq!(err.key.as_deref(), Some("auth.passwords"));
        assert!(err.message.contains("`password_file`"), "{err}");

        let err = error("proto:\n  bind: 127.0.0.1:1\ncluster:\n  config: c.yml\n  peers: []\n");
        assert_eq!(err.key.as_deref(), Some("cluster.peers"));
    }

    #[test]
    fn license_is_accepted_with_a_warning() {
        let parsed =
            parse("server:\n  license: /etc/psrtd/license.yml\nproto:\n  bind: 127.0.0.1:1\n")
                .expect("licence is accepted");
        assert_eq!(
            parsed.warnings,
            [
                "/etc/psrtd/config.yml:2:3: server.license: ignored: Enterprise licence \
              (this server has no licensed features)"
            ]
        );
    }

    #[test]
    fn fips_false_is_accepted_and_true_refused() {
        config("proto:\n  bind: 127.0.0.1:1\n  fips: false\n");
        let err = error("proto:\n  bind: 127.0.0.1:1\n  fips: true\n");
        assert_eq!(err.key.as_deref(), Some("proto.fips"));
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("FIPS mode is not available"), "{err}");
    }

    #[test]
    fn pkcs12_explains_the_conversion_to_pem() {
        let err = error("proto:\n  bind: 127.0.0.1:1\n  tls_pkcs12: server.p12\n");
        assert_eq!(err.key.as_deref(), Some("proto.tls_pkcs12"));
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("tls_cert"), "{err}");
        assert!(
            err.message
                .contains("openssl pkcs12 -in server.p12 -nokeys -out server.crt"),
            "{err}"
        );
        assert!(
            err.message
                .contains("openssl pkcs12 -in server.p12 -nocerts -nodes -out server.key"),
            "{err}"
        );
    }

    #[test]
    fn tls_cert_and_key_come_together() {
        let err = error("proto:\n  bind: 127.0.0.1:1\n  tls_cert: a.crt\n");
        assert_eq!(
            err.to_string(),
            "/etc/psrtd/config.yml:3:3: proto.tls_cert: tls_key is missing: set both tls_cert \
             (PEM certificate chain) and tls_key (PEM private key), or neither"
        );
        let err = error("proto:\n  bind: 127.0.0.1:1\n\n  # key only\n  tls_key: a.key\n");
        assert_eq!(err.key.as_deref(), Some("proto.tls_key"));
        assert_eq!(err.line, Some(5));
        assert!(err.message.starts_with("tls_cert is missing"), "{err}");
    }

    #[test]
    fn forbidding_plain_connections_needs_tls() {
        let err = error("proto:\n  bind: 127.0.0.1:1\n  allow_no_tls: false\n");
        assert_eq!(err.key.as_deref(), Some("proto.allow_no_tls"));
        assert_eq!((err.line, err.column), (Some(3), Some(3)));
        assert!(err.message.contains("TLS is not configured"), "{err}");
        let ok = config(
            "proto:\n  bind: 127.0.0.1:1\n  allow_no_tls: false\n  tls_cert: c\n  tls_key: k\n",
        );
        assert!(!ok.proto.allow_no_tls);
    }

    #[test]
    fn cross_key_errors_without_a_findable_line_omit_it() {
        let err = error("proto: {bind: 127.0.0.1:1, tls_key: k}\n");
        assert_eq!(err.key.as_deref(), Some("proto.tls_key"));
        assert_eq!((err.line, err.column), (None, None));
        assert!(
            err.to_string()
                .starts_with("/etc/psrtd/config.yml: proto.tls_key: ")
        );
    }

    #[test]
    fn bad_addresses_are_explained() {
        let err = error("proto:\n  bind: localhost:2873\n");
        assert_eq!(err.key.as_deref(), Some("proto.bind"));
        assert_eq!((err.line, err.column), (Some(2), Some(9)));
        assert!(err.message.contains("got \"localhost:2873\""), "{err}");
        assert!(err.message.contains(".sock"), "{err}");

        let err = error("proto:\n  bind:\n    - 127.0.0.1:1\n    - 1.2.3.4\n");
        assert_eq!(err.key.as_deref(), Some("proto.bind[1]"));
        assert_eq!(err.line, Some(4));

        let err = error("proto:\n  bind: 127.0.0.1:1\n  bind_udp: [127.0.0.1:1, udp.sock]\n");
        assert_eq!(err.key.as_deref(), Some("proto.bind_udp[1]"));
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("Unix socket is not possible"), "{err}");

        let err = error("server:\n  bind_stats: stats.sock\nproto:\n  bind: 127.0.0.1:1\n");
        assert_eq!(err.key.as_deref(), Some("server.bind_stats"));
        assert_eq!(err.line, Some(2));

        let err = error("proto:\n  bind: []\n");
        assert_eq!(err.key.as_deref(), Some("proto.bind"));
        assert!(err.message.contains("the list is empty"), "{err}");
    }

    #[test]
    fn missing_sections_and_keys_are_named() {
        let err = error("server:\n  workers: 1\n");
        assert!(err.message.contains("missing field `proto`"), "{err}");
        let err = error("proto:\n  timeout: 1\n");
        assert_eq!(err.key.as_deref(), Some("proto"));
        assert!(err.message.contains("missing field `bind`"), "{err}");
        let err = error("");
        assert!(err.message.contains("missing field `proto`"), "{err}");
        let err = error("proto:\n  bind: 127.0.0.1:1\ncluster: {}\n");
        assert_eq!(err.key.as_deref(), Some("cluster"));
        assert!(err.message.contains("missing field `config`"), "{err}");
    }

    #[test]
    fn yaml_syntax_errors_have_a_position() {
        let err = error("proto:\n  bind: [127.0.0.1:1\nauth: {\n");
        assert!(err.line.is_some(), "{err}");
        assert!(err.column.is_some(), "{err}");
        assert!(!err.key.as_deref().unwrap_or("").contains('?'), "{err}");
        assert!(!err.message.contains(" at line "), "{err}");
    }

    #[test]
    fn file_error_display_leaves_out_unknown_parts() {
        let mut err = FileError::new(Path::new("f.yml"), None, "broken".into());
        assert_eq!(err.to_string(), "f.yml: broken");
        err.line = Some(4);
        assert_eq!(err.to_string(), "f.yml:4: broken");
        err.column = Some(2);
        err.key = Some("a.b".into());
        assert_eq!(err.to_string(), "f.yml:4:2: a.b: broken");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let err = FileError::unreadable(Path::new("x.yml"), &io);
        assert_eq!(err.to_string(), "x.yml: cannot read the file: gone");
    }

    fn acl(text: &str) -> Acl {
        match parse_acl(text, Path::new("acl.yml"), 8) {
            Ok(acl) => acl,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }

    fn acl_error(text: &str, max_depth: usize) -> FileError {
        match parse_acl(text, Path::new("acl.yml"), max_depth) {
            Ok(acl) => panic!("expected an error, got {acl:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn acl_builds_rights_per_user() {
        let acl = acl(
            "_:\n  sub: ['public/#']\nalice:\n  sub: ['#']\n  pub: [sensors/+/temp]\n  \
             admin: true\nrepl:\n  replicator: true\nnobody:\n",
        );
        let anonymous = acl.rights("").expect("anonymous entry");
        assert!(anonymous.may_subscribe("public/x"));
        assert!(!anonymous.may_subscribe("private/x"));
        assert!(!anonymous.may_publish("public/x"));
        assert!(!anonymous.is_admin());
        let alice = acl.rights("alice").expect("alice");
        assert!(alice.may_publish("sensors/1/temp"));
        assert!(!alice.may_publish("sensors/1/hum"));
        assert!(alice.may_subscribe("anything/at/all"));
        assert!(alice.is_admin());
        assert!(!alice.is_replicator());
        assert!(acl.rights("repl").expect("repl").is_replicator());
        let nobody = acl.rights("nobody").expect("listed without rights");
        assert!(!nobody.may_publish("a"));
        assert!(!nobody.may_subscribe("a"));
        assert!(acl.rights("mallory").is_none());
    }

    #[test]
    fn empty_or_null_acl_lets_no_one_in() {
        for text in ["", "# nothing\n", "~\n", "null"] {
            let acl = acl(text);
            assert!(acl.rights("").is_none(), "{text:?}");
            assert!(acl.rights("alice").is_none(), "{text:?}");
        }
    }

    #[test]
    fn invalid_mask_names_user_mask_and_line() {
        let err = acl_error("alice:\n  sub:\n    - a/#\n    - a/#/b\n", 8);
        assert_eq!(err.key.as_deref(), Some("alice.sub[1]"));
        assert_eq!(err.line, Some(4));
        assert_eq!(
            err.to_string(),
            "acl.yml:4:7: alice.sub[1]: \"a/#/b\" is not a valid topic mask: a wildcard must \
             be a whole level, and # only the last one"
        );
        let err = acl_error("bob:\n  pub: [a/b/c/d]\n", 2);
        assert_eq!(err.key.as_deref(), Some("bob.pub[0]"));
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("\"a/b/c/d\""), "{err}");
    }

    #[test]
    fn unquoted_hash_mask_gets_a_hint() {
        let err = acl_error("alice:\n  sub:\n    - #\n", 8);
        assert_eq!(err.key.as_deref(), Some("alice.sub[0]"));
        assert!(err.message.contains("write '#' in quotes"), "{err}");
    }

    #[test]
    fn acl_unknown_key_and_bad_types_are_errors() {
        let err = acl_error("alice:\n  subscribe: ['#']\n", 8);
        assert_eq!(err.key.as_deref(), Some("alice.subscribe"));
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("`sub`"), "{err}");
        assert!(err.message.contains("`replicator`"), "{err}");
        let err = acl_error("alice:\n  sub: '#'\n", 8);
        assert_eq!(err.key.as_deref(), Some("alice.sub"));
        assert!(err.message.contains("a list of topic masks"), "{err}");
        let err = acl_error("alice:\n  admin: yes please\n", 8);
        assert_eq!(err.key.as_deref(), Some("alice.admin"));
        let err = acl_error("- alice\n", 8);
        assert!(err.message.contains("a map from user"), "{err}");
    }

    #[test]
    fn acl_user_listed_twice_is_an_error_at_the_second() {
        let err = acl_error("alice:\n  admin: true\nbob: {}\nalice:\n  sub: ['#']\n", 8);
        assert_eq!(err.line, Some(4));
        assert!(
            err.message.contains("user \"alice\" is listed twice"),
            "{err}"
        );
    }
}
