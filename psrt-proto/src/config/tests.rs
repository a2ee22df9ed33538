//! Unit tests of the config and ACL parsers: every error path names file,
//! line and key.

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
    let text = "proto:\n  bind: 127.0.0.1:1\nauth:\n  acl: acl.yml\n  key_file: /abs/keys.yml\n";
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
    let err = error("server:\n  latency_warn: -5\nproto:\n  bind: 127.0.0.1:1\n");
    assert_eq!(err.key.as_deref(), Some("server.latency_warn"));
    assert_eq!(err.message, "must be 0 (off) or more microseconds, got -5");
    let err = error("server:\n  latency_warn: 1ms\nproto:\n  bind: 127.0.0.1:1\n");
    assert!(err.message.contains("microseconds"), "{err}");
}

#[test]
fn wrong_shapes_name_what_was_expected() {
    let err = error("- a\n");
    assert_eq!(err.key, None);
    assert!(err.message.contains("the sections server, proto"), "{err}");
    let err = error("proto: 5\n");
    assert_eq!(err.key.as_deref(), Some("proto"));
    assert!(err.message.contains("proto settings"), "{err}");
    assert!(!err.message.contains("Raw"), "{err}");
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
    let parsed = parse("server:\n  license: /etc/psrtd/license.yml\nproto:\n  bind: 127.0.0.1:1\n")
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
    let ok =
        config("proto:\n  bind: 127.0.0.1:1\n  allow_no_tls: false\n  tls_cert: c\n  tls_key: k\n");
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
    let err = error("proto:\n  bind: '127.0.0.1:1\nauth: {}\n");
    assert!(err.line.is_some(), "{err}");
    assert!(err.column.is_some(), "{err}");
    assert!(!err.key.as_deref().unwrap_or("").contains('?'), "{err}");
    assert_eq!((err.line, err.column), (Some(4), Some(1)));
    assert_eq!(err.key.as_deref(), Some("proto.bind"));
    assert_eq!(
        err.message,
        "found unexpected end of stream, while scanning a quoted scalar at line 2 column 9"
    );
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

#[test]
fn tls_client_ca_is_resolved_and_needs_tls() {
    let parsed = config(
        "proto:\n  bind: 127.0.0.1:1\n  tls_cert: c\n  tls_key: k\n  tls_client_ca: clients.crt\n",
    );
    assert_eq!(
        parsed.proto.tls_client_ca.as_deref(),
        Some(Path::new("/etc/psrtd/clients.crt"))
    );
    let err = error("proto:\n  bind: 127.0.0.1:1\n  tls_client_ca: clients.crt\n");
    assert_eq!(err.key.as_deref(), Some("proto.tls_client_ca"));
    assert!(err.message.contains("tls_cert"), "{err}");
}

#[test]
fn tls_client_cn_login_needs_a_client_ca() {
    let tls = "proto:\n  bind: 127.0.0.1:1\n  tls_cert: c\n  tls_key: k\n";
    assert!(!config(tls).proto.tls_client_cn_login, "off by default");
    let on = format!("{tls}  tls_client_ca: clients.crt\n  tls_client_cn_login: true\n");
    assert!(config(&on).proto.tls_client_cn_login);
    let err = error(&format!("{tls}  tls_client_cn_login: true\n"));
    assert_eq!(err.key.as_deref(), Some("proto.tls_client_cn_login"));
    assert_eq!((err.line, err.column), (Some(5), Some(3)), "{err}");
    assert!(err.message.contains("set tls_client_ca"), "{err}");
    let err = error(&format!("{tls}  tls_client_cn_login: maybe\n"));
    assert_eq!(err.key.as_deref(), Some("proto.tls_client_cn_login"));
    assert_eq!(err.line, Some(5), "{err}");
}
