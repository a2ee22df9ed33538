//! Unix-socket and TLS transports.

use std::os::unix::fs::PermissionsExt;

use psrt_proto::tls::server_config_from_pem;

use crate::Start;
use crate::client::{CONTROL, Conn, DATA, IO_TIMEOUT, OK, Session};
use crate::fixture::{Pki, Server, auth, pki, spec};
use crate::tls_client::TlsStream;

/// On a Unix socket (mode 0770) any login gets full rights, even with
/// anonymous access off and no ACL entry.
pub fn unix_socket_full_rights(start: Start) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("psrt.sock");
    let mut spec = spec();
    spec.unix = vec![path.clone()];
    spec.auth = auth(false, "someone: {}", &[]);
    let server = Server::start(start, spec);
    let bound = server.addrs().unix.clone().expect("Unix socket bound");
    assert_eq!(bound, path, "bound path");
    let mode = std::fs::metadata(&path)
        .expect("socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o770, "socket file mode");
    let mut session = Session::login_on(Conn::unix(&path), "nobody", "whatever");
    let mut data_conn = Conn::unix(&path);
    data_conn.send_greeting(DATA);
    let mut data = session.open_data_on(data_conn, 5);
    assert_eq!(session.subscribe(&["#"]), OK, "subscribe #");
    assert_eq!(session.publish("unix/x", b"local"), OK, "publish");
    data.expect("unix/x", b"local");
    server.stop();
    assert!(!path.exists(), "socket file removed on stop");
}

/// A TLS server config for `pki`.
fn tls_spec(pki: &Pki, allow_no_tls: bool) -> psrt_proto::spec::ServerSpec {
    let mut spec = spec();
    let config = server_config_from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
        .expect("server TLS config");
    spec.conn.tls = Some(config);
    spec.conn.allow_no_tls = allow_no_tls;
    spec
}

/// A TLS session and TLS data socket, logged in anonymously.
fn tls_session(server: &Server, pki: &Pki) -> (Session, crate::client::DataConn) {
    let ca = pki.ca_pem.as_bytes();
    let control = TlsStream::connect(server.tcp(), CONTROL, ca).expect("TLS control");
    let session = Session::finish_login(control.into_conn(), "", "");
    let data_stream = TlsStream::connect(server.tcp(), DATA, ca).expect("TLS data");
    let data = session.open_data_on(data_stream.into_conn(), 5);
    (session, data)
}

/// `EE AA 01`, a TLS handshake, then the whole protocol inside TLS; plain
/// clients still work when `allow_no_tls` is on.
pub fn tls_login_and_publish(start: Start) {
    let pki = pki();
    let server = Server::start(start, tls_spec(&pki, true));
    let (mut session, mut data) = tls_session(&server, &pki);
    assert_eq!(session.subscribe(&["tls/#"]), OK, "subscribe over TLS");
    let big = vec![0x5A; 100_000];
    assert_eq!(session.publish("tls/big", &big), OK, "publish over TLS");
    data.expect("tls/big", &big);
    let mut plain = Session::anonymous(server.tcp());
    assert_eq!(plain.publish("tls/plain", b"p"), OK, "plain publish");
    data.expect("tls/plain", b"p");
}

/// With `allow_no_tls: false` a plain greeting is closed without a reply;
/// TLS clients are served.
pub fn tls_required_refuses_plain(start: Start) {
    let pki = pki();
    let server = Server::start(start, tls_spec(&pki, false));
    let mut plain = Conn::tcp(server.tcp());
    plain.send_greeting(CONTROL);
    plain.expect_closed(IO_TIMEOUT, "plain control greeting");
    let mut plain_data = Conn::tcp(server.tcp());
    plain_data.send_greeting(DATA);
    plain_data.expect_closed(IO_TIMEOUT, "plain data greeting");
    let (mut session, _data) = tls_session(&server, &pki);
    assert_eq!(session.nop(), OK, "TLS client served");
}

/// Asking for TLS from a server without TLS closes the socket.
pub fn tls_not_configured_closes(start: Start) {
    let server = Server::start(start, spec());
    let mut conn = Conn::tcp(server.tcp());
    conn.send(&[0xEE, 0xAA, 0x01]);
    conn.expect_closed(IO_TIMEOUT, "TLS greeting without TLS");
}
