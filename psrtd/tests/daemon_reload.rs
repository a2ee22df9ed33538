//! SIGHUP reloads the password, ACL and key files: a user removed from the
//! ACL loses publish rights on its live session and cannot log in again; a
//! broken ACL on reload is logged and the rules in force stay.

mod daemon_support;

use std::net::SocketAddr;

use daemon_support::{Daemon, ERR_ACCESS, OK, TempDir, bcrypt_hash, free_tcp_port, login, publish};
use nix::sys::signal::Signal;

const RELOADED: &str = "access rules reloaded";
const RELOAD_FAILED: &str = "reload failed";

#[test]
fn sighup_applies_a_new_acl_and_keeps_rules_on_a_broken_one() {
    let dir = TempDir::new("reload");
    let port = free_tcp_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    dir.write(
        "passwd",
        &format!(
            "alice:{}\nbob:{}\n",
            bcrypt_hash("alice-pw"),
            bcrypt_hash("bob-pw")
        ),
    );
    let acl = dir.write("acl.yml", "alice: {pub: [\"#\"]}\nbob: {pub: [\"#\"]}\n");
    let config = dir.write(
        "config.yml",
        &format!(
            "proto:\n  bind: 127.0.0.1:{port}\n\
             auth:\n  allow_anonymous: false\n  password_file: passwd\n  acl: acl.yml\n"
        ),
    );
    let daemon = Daemon::start(&config, port);

    let (mut alice, token) = login(addr, "alice", "alice-pw");
    assert!(token.is_some(), "alice refused; log:\n{}", daemon.log());
    let (mut bob, token) = login(addr, "bob", "bob-pw");
    assert!(token.is_some(), "bob refused; log:\n{}", daemon.log());
    assert_eq!(publish(&mut alice, "t/1", b"x"), OK);

    std::fs::write(&acl, "bob: {pub: [\"#\"]}\n").expect("rewrite ACL");
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_log(RELOADED, 1);
    assert_eq!(publish(&mut alice, "t/1", b"x"), ERR_ACCESS);
    assert_eq!(publish(&mut bob, "t/1", b"x"), OK);
    assert!(
        login(addr, "alice", "alice-pw").1.is_none(),
        "alice logged in again"
    );

    std::fs::write(&acl, "alice: {pub: [\"#\"]}\nbob:\n  pub: [\"a/#/b\"]\n").expect("break ACL");
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_log(RELOAD_FAILED, 1);
    let log = daemon.log();
    assert!(
        log.contains("acl.yml:3") && log.contains("bob"),
        "error not located:\n{log}"
    );
    assert_eq!(publish(&mut bob, "t/2", b"still"), OK, "old rules dropped");
    assert_eq!(
        publish(&mut alice, "t/2", b"x"),
        ERR_ACCESS,
        "broken file applied"
    );
    assert!(
        login(addr, "bob", "bob-pw").1.is_some(),
        "server stopped serving"
    );
    assert_eq!(daemon.log().matches(RELOADED).count(), 1);
}
