//! `psrtd --test-config`: a good config prints what would be served and
//! exits 0 without binding or writing; a broken config or referenced file
//! exits non-zero and names the file, line and key.

mod daemon_support;

use std::path::Path;

use daemon_support::{TempDir, bcrypt_hash, free_tcp_port, psrtd, run_bounded};

/// Runs `psrtd --test-config -c config`; (success, stdout, stderr).
fn test_config(config: &Path) -> (bool, String, String) {
    let output = run_bounded(psrtd().arg("--test-config").arg("-c").arg(config));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts the config is refused with `psrtd: FILE:LINE...KEY` on stderr.
fn assert_refused(config: &Path, file_and_line: &str, key: &str) {
    let (ok, _, stderr) = test_config(config);
    assert!(!ok, "accepted; stderr:\n{stderr}");
    let message = stderr
        .lines()
        .find(|line| line.starts_with("psrtd: "))
        .unwrap_or_else(|| panic!("no `psrtd:` line in:\n{stderr}"));
    assert!(
        message.contains(file_and_line),
        "{file_and_line} missing: {message}"
    );
    assert!(message.contains(key), "{key} missing: {message}");
}

const BIND: &str = "proto:\n  bind: 127.0.0.1:2873\n";

#[test]
fn good_config_prints_listeners_and_binds_nothing() {
    let dir = TempDir::new("tc-good");
    let port = free_tcp_port();
    dir.write("passwd", &format!("alice:{}\n", bcrypt_hash("pw")));
    dir.write("acl.yml", "alice: {pub: [\"#\"]}\n_: {sub: [\"#\"]}\n");
    dir.write("keys.yml", &format!("alice: {}\n", "0f".repeat(32)));
    let config = dir.write(
        "config.yml",
        &format!(
            "server:\n  workers: 3\n  pid_file: run.pid\n  bind_stats: 127.0.0.1:8880\n\
             proto:\n  bind: [127.0.0.1:{port}, psrt.sock]\n  bind_udp: 127.0.0.1:{port}\n\
             auth:\n  password_file: passwd\n  acl: acl.yml\n  key_file: keys.yml\n"
        ),
    );
    let (ok, stdout, stderr) = test_config(&config);
    assert!(ok, "refused: {stderr}");
    let socket = dir.join("psrt.sock");
    let expected = [
        format!("tcp: 127.0.0.1:{port}"),
        format!("unix: {}", socket.display()),
        format!("udp: 127.0.0.1:{port}"),
        "stats: 127.0.0.1:8880".to_owned(),
        "tls: off".to_owned(),
        "anonymous: on".to_owned(),
        "workers: 3".to_owned(),
    ];
    for line in expected {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing in:\n{stdout}"
        );
    }
    assert!(!socket.exists(), "--test-config created the socket");
    assert!(
        !dir.join("run.pid").exists(),
        "--test-config wrote the pid file"
    );
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port still free");
}

#[test]
fn unknown_key_is_named() {
    let dir = TempDir::new("tc-key");
    let config = dir.write("config.yml", &format!("{BIND}  colour: blue\n"));
    assert_refused(&config, "config.yml:3", "colour");
}

#[test]
fn bad_acl_mask_is_named() {
    let dir = TempDir::new("tc-acl");
    dir.write(
        "acl.yml",
        "_:\n  sub: [\"ok/#\"]\nbob:\n  pub: [\"a/#/b\"]\n",
    );
    let config = dir.write("config.yml", &format!("{BIND}auth:\n  acl: acl.yml\n"));
    assert_refused(&config, "acl.yml:4", "bob");
}

#[test]
fn apache_md5_password_is_named() {
    let dir = TempDir::new("tc-apr1");
    dir.write(
        "passwd",
        &format!(
            "ok:{}\ncarol:$apr1$Vx6cQ1Yz$Dm8LrJvUy7y5Bq3Hf8o0/.\n",
            bcrypt_hash("x")
        ),
    );
    let config = dir.write(
        "config.yml",
        &format!("{BIND}auth:\n  password_file: passwd\n"),
    );
    assert_refused(&config, "passwd:2", "carol");
    let (_, _, stderr) = test_config(&config);
    assert!(
        stderr.contains("$apr1$") && stderr.contains("htpasswd -B"),
        "{stderr}"
    );
}

#[test]
fn bad_key_file_is_named() {
    let dir = TempDir::new("tc-keys");
    dir.write(
        "keys.yml",
        &format!("good: {}\ndave: 12ab\n", "00".repeat(32)),
    );
    let config = dir.write(
        "config.yml",
        &format!("{BIND}auth:\n  key_file: keys.yml\n"),
    );
    assert_refused(&config, "keys.yml:2", "dave");
}

#[test]
fn tls_pkcs12_is_refused_with_advice() {
    let dir = TempDir::new("tc-p12");
    let config = dir.write("config.yml", &format!("{BIND}  tls_pkcs12: server.p12\n"));
    assert_refused(&config, "config.yml:3", "proto.tls_pkcs12");
    let (_, _, stderr) = test_config(&config);
    assert!(
        stderr.contains("tls_cert") && stderr.contains("tls_key"),
        "{stderr}"
    );
}

#[test]
fn missing_referenced_file_is_named() {
    let dir = TempDir::new("tc-missing");
    let config = dir.write("config.yml", &format!("{BIND}auth:\n  acl: nowhere.yml\n"));
    let (ok, _, stderr) = test_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains("nowhere.yml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn unusable_tls_key_is_named() {
    let dir = TempDir::new("tc-tls");
    dir.write(
        "server.crt",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    dir.write("server.key", "no key here\n");
    let config = dir.write(
        "config.yml",
        &format!("{BIND}  tls_cert: server.crt\n  tls_key: server.key\n"),
    );
    let (ok, _, stderr) = test_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains("server.key") && stderr.contains("proto.tls_key"),
        "{stderr}"
    );
}

/// Without `-c`, psrtd uses /etc/psrtd/config.yml, then
/// /usr/local/etc/psrtd/config.yml, else the built-in default. Only the
/// last case is checkable without touching /etc; the selection itself is
/// unit-tested in `setup`.
#[test]
fn no_config_file_uses_builtin_default() {
    let defaults = ["/etc/psrtd/config.yml", "/usr/local/etc/psrtd/config.yml"];
    if defaults.iter().any(|path| Path::new(path).exists()) {
        eprintln!("skipped: a default config file exists on this machine");
        return;
    }
    let output = run_bounded(psrtd().arg("--test-config"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for line in [
        "config: built-in default",
        "tcp: 127.0.0.1:2873",
        "udp: 127.0.0.1:2873",
        "stats: 127.0.0.1:8880",
        "anonymous: on",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing in:\n{stdout}"
        );
    }
    assert!(
        stderr.contains("built-in default"),
        "no log line saying so:\n{stderr}"
    );
}

#[test]
fn client_cn_login_without_client_ca_is_named() {
    let dir = TempDir::new("tc-cn-login");
    let config = dir.write(
        "config.yml",
        &format!(
            "{BIND}  tls_cert: server.crt\n  tls_key: server.key\n  tls_client_cn_login: true\n"
        ),
    );
    assert_refused(&config, "config.yml:5", "proto.tls_client_cn_login");
    let (_, _, stderr) = test_config(&config);
    assert!(stderr.contains("set tls_client_ca"), "{stderr}");
}
