//! Greeting and login.

use std::path::Path;

use psrt_proto::auth::Passwords;

use crate::Start;
use crate::client::{CONTROL, Conn, IO_TIMEOUT, OK, Session, login_frame};
use crate::fixture::{Server, auth, hash, spec};

/// ACL giving `alice`, `bob` and anonymous full rights; `carol` has a
/// password but no entry.
const ACL: &str = "
_: {pub: ['#'], sub: ['#']}
alice: {pub: ['#'], sub: ['#']}
bob: {pub: ['#'], sub: ['#']}
";

/// Greets, sends a login and asserts the server closes without a byte.
fn assert_refused(server: &Server, login: &str, password: &str, what: &str) {
    let mut conn = Conn::tcp(server.tcp());
    conn.greet(CONTROL);
    conn.send(&login_frame(login, password));
    conn.expect_closed(IO_TIMEOUT, what);
}

/// `EE AA 00` → `EE AA 01 00`; `01 00 00 00 00` → a 32-byte token, a
/// fresh one per session.
pub fn anonymous_login(start: Start) {
    let server = Server::start(start, spec());
    let mut conn = Conn::tcp(server.tcp());
    conn.send(&[0xEE, 0xAA, 0x00]);
    conn.expect(&[0xEE, 0xAA, 0x01, 0x00], "greeting answer");
    conn.send(&[0x01, 0x00, 0x00, 0x00, 0x00]);
    let token = conn.recv(32);
    let other = Session::anonymous(server.tcp());
    assert_ne!(token, other.token, "tokens differ between sessions");
    conn.send(&[0x00]);
    assert_eq!(conn.status(), OK, "NOP after anonymous login");
}

/// With `allow_anonymous: false` the empty login is closed without a reply.
pub fn anonymous_refused_when_off(start: Start) {
    let mut spec = spec();
    spec.auth = auth(false, ACL, &[("alice", "secret")]);
    let server = Server::start(start, spec);
    assert_refused(&server, "", "", "anonymous login with anonymous off");
    let mut alice = Session::login(server.tcp(), "alice", "secret");
    assert_eq!(alice.nop(), OK, "a user still logs in");
}

/// bcrypt hashes verify, in the `$2b$` form and the `$2y$` form that
/// `htpasswd -B` writes.
pub fn password_login_with_bcrypt(start: Start) {
    let mut spec = spec();
    let mut rules = auth(false, ACL, &[]);
    let alice = hash("secret");
    let bob = hash("hunter2").replacen("$2b$", "$2y$", 1);
    let file = format!("# users\nalice:{alice}\nbob:{bob}\n");
    rules.passwords = Some(Passwords::parse(&file, Path::new("psrt-passwd")).expect("parse"));
    spec.auth = rules;
    let server = Server::start(start, spec);
    let mut alice = Session::login(server.tcp(), "alice", "secret");
    assert_eq!(alice.nop(), OK, "alice ($2b$)");
    let mut bob = Session::login(server.tcp(), "bob", "hunter2");
    assert_eq!(bob.nop(), OK, "bob ($2y$)");
}

/// A wrong password (and an unknown login) is closed without a reply.
pub fn wrong_password_refused(start: Start) {
    let mut spec = spec();
    spec.auth = auth(true, ACL, &[("alice", "secret")]);
    let server = Server::start(start, spec);
    assert_refused(&server, "alice", "wrong", "wrong password");
    assert_refused(&server, "alice", "", "empty password");
    assert_refused(&server, "mallory", "secret", "unknown login");
}

/// A user with a valid password but no ACL entry is refused.
pub fn user_without_acl_refused(start: Start) {
    let mut spec = spec();
    spec.auth = auth(true, ACL, &[("alice", "secret"), ("carol", "pw")]);
    let server = Server::start(start, spec);
    assert_refused(&server, "carol", "pw", "user without ACL entry");
}

/// NOP is answered OK, repeatedly.
pub fn nop_answers_ok(start: Start) {
    let server = Server::start(start, spec());
    let mut session = Session::anonymous(server.tcp());
    for _ in 0..3 {
        assert_eq!(session.nop(), OK, "NOP");
    }
}

/// BYE is answered OK, then the server closes.
pub fn bye_answers_ok_then_closes(start: Start) {
    let server = Server::start(start, spec());
    let mut session = Session::anonymous(server.tcp());
    assert_eq!(session.op(&[0xFF]), OK, "BYE");
    session.control.expect_closed(IO_TIMEOUT, "after BYE");
}
