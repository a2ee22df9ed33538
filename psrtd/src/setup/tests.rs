//! Config selection, loading every referenced file, and the reload closure,
//! on files written to a fresh temporary folder per test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};

use super::*;

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "psrtd-setup-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt hash")
}

fn load_file(path: &Path) -> Result<Loaded, SetupError> {
    load_from(ConfigSource::File(path.to_path_buf()))
}

fn error_of(path: &Path) -> String {
    load_file(path)
        .expect_err("config must be refused")
        .to_string()
}

const MINIMAL: &str = "proto:\n  bind: 127.0.0.1:0\n";

#[test]
fn explicit_path_wins_even_when_missing() {
    let dir = TempDir::new("explicit");
    let existing = dir.write("a.yml", MINIMAL);
    let missing = dir.0.join("missing.yml");
    let source = select_config(Some(&missing), &[existing.as_path()]);
    assert_eq!(source, ConfigSource::File(missing));
}

#[test]
fn first_existing_candidate_is_chosen() {
    let dir = TempDir::new("candidates");
    let missing = dir.0.join("missing.yml");
    let second = dir.write("second.yml", MINIMAL);
    let third = dir.write("third.yml", MINIMAL);
    let source = select_config(None, &[missing.as_path(), &second, &third]);
    assert_eq!(source, ConfigSource::File(second));
}

#[test]
fn no_candidate_gives_builtin_default() {
    let dir = TempDir::new("none");
    let missing = dir.0.join("missing.yml");
    assert_eq!(
        select_config(None, &[missing.as_path()]),
        ConfigSource::BuiltinDefault
    );
    assert_eq!(select_config(None, &[]), ConfigSource::BuiltinDefault);
}

#[test]
fn builtin_default_is_loopback_and_open() {
    let loaded = load_from(ConfigSource::BuiltinDefault).expect("builtin loads");
    let local = SocketAddr::from(([127, 0, 0, 1], 2873));
    assert_eq!(loaded.spec.tcp, vec![local]);
    assert_eq!(loaded.spec.udp, vec![local]);
    assert_eq!(
        loaded.spec.stats,
        Some(SocketAddr::from(([127, 0, 0, 1], 8880)))
    );
    assert!(loaded.spec.auth.allow_anonymous);
    assert!(loaded.spec.auth.passwords.is_none());
    assert!(
        loaded
            .spec
            .auth
            .acl
            .rights("")
            .is_some_and(|r| r.is_admin())
    );
    assert!(loaded.spec.conn.tls.is_none());
    assert!(loaded.summary().contains("config: built-in default\n"));
}

#[test]
fn full_config_builds_spec_with_relative_paths() {
    let dir = TempDir::new("full");
    dir.write("passwd", &format!("alice:{}\n", hash("secret")));
    dir.write("acl.yml", "alice: {pub: [\"a/#\"], sub: [\"#\"]}\n");
    dir.write("keys.yml", &format!("alice: {}\n", "ab".repeat(32)));
    std::fs::create_dir(dir.0.join("run")).expect("pid file folder");
    let config = dir.write(
        "config.yml",
        "server:\n  workers: 3\n  bind_stats: 127.0.0.1:0\n  pid_file: run/psrtd.pid\n\
         proto:\n  bind: [127.0.0.1:0, test.sock]\n  bind_udp: 127.0.0.1:0\n\
         auth:\n  allow_anonymous: false\n  password_file: passwd\n  acl: acl.yml\n  key_file: keys.yml\n",
    );
    let loaded = load_file(&config).expect("loads");
    let spec = &loaded.spec;
    assert_eq!(spec.workers, 3);
    assert_eq!(spec.tcp, vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    assert_eq!(spec.unix, vec![dir.0.join("test.sock")]);
    assert_eq!(spec.udp.len(), 1);
    assert!(spec.stats.is_some());
    assert!(!spec.auth.allow_anonymous);
    assert!(
        spec.auth
            .passwords
            .as_ref()
            .is_some_and(|p| p.hash("alice").is_some())
    );
    assert!(
        spec.auth
            .keys
            .as_ref()
            .is_some_and(|k| k.key("alice").is_some())
    );
    let rights = spec.auth.acl.rights("alice").expect("alice in ACL");
    assert!(rights.may_publish("a/b") && !rights.may_publish("b"));
    assert!(spec.auth.acl.rights("").is_none());
    assert_eq!(spec.drain_timeout, DRAIN_TIMEOUT);
    assert!(!spec.host.is_empty());
    let summary = loaded.summary();
    for expected in [
        "tcp: 127.0.0.1:0",
        "udp: 127.0.0.1:0",
        "tls: off",
        "anonymous: off",
        "workers: 3",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} missing in {summary}"
        );
    }
    assert!(summary.contains(&format!("unix: {}", dir.0.join("test.sock").display())));
    assert_eq!(
        loaded.config.server.pid_file,
        Some(dir.0.join("run").join("psrtd.pid"))
    );
}

#[test]
fn no_acl_file_gives_full_rights_and_no_password_file_gives_none() {
    let dir = TempDir::new("noacl");
    let config = dir.write("config.yml", MINIMAL);
    let loaded = load_file(&config).expect("loads");
    assert!(
        loaded
            .spec
            .auth
            .acl
            .rights("anyone")
            .is_some_and(|r| r.may_publish("x"))
    );
    assert!(loaded.spec.auth.passwords.is_none());
    assert!(loaded.spec.auth.keys.is_none());
}

#[test]
fn reload_reads_the_same_files_again() {
    let dir = TempDir::new("reload");
    let acl = dir.write("acl.yml", "_: {pub: [\"a\"]}\n");
    let config = dir.write("config.yml", &format!("{MINIMAL}auth:\n  acl: acl.yml\n"));
    let loaded = load_file(&config).expect("loads");
    let reload = loaded.spec.reload.clone().expect("reload closure");
    std::fs::write(&acl, "_: {pub: [\"b\"]}\n").expect("rewrite ACL");
    let auth = reload().expect("reload succeeds");
    let rights = auth.acl.rights("").expect("anonymous entry");
    assert!(rights.may_publish("b") && !rights.may_publish("a"));
    std::fs::write(&acl, "_:\n  pub: [\"a/#/b\"]\n").expect("break ACL");
    let message = reload().expect_err("broken ACL refused");
    assert!(message.contains("acl.yml:2"), "{message}");
    assert!(message.contains("_"), "{message}");
}

#[test]
fn reload_reports_a_deleted_file() {
    let dir = TempDir::new("reload-gone");
    let passwd = dir.write("passwd", &format!("bob:{}\n", hash("pw")));
    let config = dir.write(
        "config.yml",
        &format!("{MINIMAL}auth:\n  password_file: passwd\n"),
    );
    let loaded = load_file(&config).expect("loads");
    std::fs::remove_file(&passwd).expect("remove");
    let reload = loaded.spec.reload.clone().expect("reload closure");
    let message = reload().expect_err("missing file refused");
    assert!(
        message.contains("passwd") && message.contains("cannot read"),
        "{message}"
    );
}

#[test]
fn errors_name_file_line_and_key() {
    let dir = TempDir::new("errors");
    let config = dir.write("config.yml", "proto:\n  bind: 127.0.0.1:0\n  bogus: 1\n");
    let message = error_of(&config);
    assert!(message.contains("config.yml:3"), "{message}");
    assert!(message.contains("bogus"), "{message}");

    dir.write("acl.yml", "bob:\n  sub: [\"a/#/c\"]\n");
    let config = dir.write("config.yml", &format!("{MINIMAL}auth:\n  acl: acl.yml\n"));
    let message = error_of(&config);
    assert!(message.contains("acl.yml:2"), "{message}");
    assert!(message.contains("bob"), "{message}");

    dir.write("passwd", "carol:$apr1$abc$defghijklmnopqrstuvwx\n");
    let config = dir.write(
        "config.yml",
        &format!("{MINIMAL}auth:\n  password_file: passwd\n"),
    );
    let message = error_of(&config);
    assert!(
        message.contains("passwd:1") && message.contains("carol"),
        "{message}"
    );

    dir.write("keys.yml", "dave: 1234\n");
    let config = dir.write(
        "config.yml",
        &format!("{MINIMAL}auth:\n  key_file: keys.yml\n"),
    );
    let message = error_of(&config);
    assert!(
        message.contains("keys.yml:1") && message.contains("dave"),
        "{message}"
    );
}

#[test]
fn missing_config_file_is_named() {
    let dir = TempDir::new("missing");
    let message = error_of(&dir.0.join("nope.yml"));
    assert!(
        message.contains("nope.yml") && message.contains("cannot read"),
        "{message}"
    );
}

#[test]
fn tls_pems_build_a_server_config() {
    let dir = TempDir::new("tls");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    dir.write("server.crt", &cert.pem());
    dir.write("server.key", &key.serialize_pem());
    let tls = "  tls_cert: server.crt\n  tls_key: server.key\n";
    let config = dir.write(
        "config.yml",
        &format!("{MINIMAL}{tls}  allow_no_tls: false\n"),
    );
    let loaded = load_file(&config).expect("loads");
    assert!(loaded.spec.conn.tls.is_some());
    assert!(!loaded.spec.conn.allow_no_tls);
    assert!(loaded.summary().contains("tls: on (TLS only)"));

    let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("other key");
    dir.write("server.key", &other.serialize_pem());
    let message = error_of(&config);
    assert!(
        message.contains("server.crt") && message.contains("server.key"),
        "{message}"
    );
    assert!(message.contains("proto.tls_cert"), "{message}");

    dir.write("server.key", "not a pem\n");
    let err = load_file(&config).expect_err("no key refused");
    assert!(matches!(err, SetupError::Tls { .. }), "{err}");
}

#[test]
fn cluster_config_is_accepted() {
    let dir = TempDir::new("cluster");
    let config = dir.write(
        "config.yml",
        &format!("{MINIMAL}cluster:\n  config: cluster.yml\n"),
    );
    let err = load_file(&config).expect_err("the peers file must exist");
    assert!(err.to_string().contains("cluster.yml"), "{err}");
    dir.write("cluster.yml", "- path: node2:2873\n  user: repl\n");
    let loaded = load_file(&config).expect("cluster key accepted");
    assert!(loaded.config.cluster.is_some());
    assert_eq!(loaded.spec.cluster.peers.len(), 1);
    assert!(loaded.summary().contains("peer: node2:2873"));
}
