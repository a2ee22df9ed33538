//! TLS at the daemon: SIGHUP reloads the certificate (new connections get
//! the new one, live ones keep working, a broken pair keeps the one in
//! force and says why), and `tls_client_cn_login` makes a client
//! certificate's common name the login. Certificates are made by rcgen;
//! the client is rustls over a blocking loopback socket.

mod daemon_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use daemon_support::{Daemon, ERR_ACCESS, OK, TempDir, free_tcp_port, login, publish};
use nix::sys::signal::Signal;
use psrt_proto::tls::client_config_with_cert;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, StreamOwned};

/// Read/write timeout on test sockets, so a silent server fails the test.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS connection to the daemon.
type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A certificate authority that issues server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
struct Pair {
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    fn server(&self) -> Pair {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        self.issue(CertificateParams::new(names).expect("server params"))
    }

    /// A client certificate whose subject has the common name `cn`, or
    /// none (then only an organisation).
    fn client(&self, cn: Option<&str>) -> Pair {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "psrt tests");
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Pair {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The DER of the first certificate of a PEM text.
fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM certificate")
        .to_vec()
}

/// Opens a TLS socket of `kind` (`0xAA` control, `0xAB` data) trusting
/// only `ca_pem`, presenting `identity` if given, and reads the server's
/// greeting reply: the handshake must succeed.
fn tls_socket(
    addr: SocketAddr,
    kind: u8,
    ca_pem: &str,
    identity: Option<&Pair>,
) -> Result<TlsStream, String> {
    let identity = identity.map(|pair| (pair.cert_pem.as_bytes(), pair.key_pem.as_bytes()));
    let config = client_config_with_cert(Some(ca_pem.as_bytes()), identity).expect("client");
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.write_all(&[0xEE, kind, 0x01]).expect("greeting");
    let name = ServerName::try_from("localhost").expect("name");
    let conn = ClientConnection::new(Arc::clone(&config), name).expect("client connection");
    let mut stream = StreamOwned::new(conn, tcp);
    let mut header = [0u8; 4];
    stream
        .read_exact(&mut header)
        .map_err(|e| format!("TLS handshake or greeting failed: {e}"))?;
    assert_eq!(header, [0xEE, kind, 0x01, 0x00], "server greeting");
    Ok(stream)
}

/// The certificate the server presented on `stream`.
fn presented(stream: &TlsStream) -> Vec<u8> {
    let certs = stream.conn.peer_certificates().expect("server certificate");
    certs.first().expect("one certificate").to_vec()
}

/// Sends a login frame; the token, or `None` when the server closes.
fn tls_login(stream: &mut TlsStream, login: &str, password: &str) -> Option<[u8; 32]> {
    let len = u32::try_from(login.len() + 1 + password.len()).expect("short");
    let mut frame = len.to_le_bytes().to_vec();
    frame.extend_from_slice(login.as_bytes());
    frame.push(0);
    frame.extend_from_slice(password.as_bytes());
    stream.write_all(&frame).expect("login frame");
    let mut token = [0u8; 32];
    stream.read_exact(&mut token).ok().map(|()| token)
}

/// One operation with a length-prefixed body; the status byte.
fn op(stream: &mut impl ReadWrite, head: &[u8], body: &[u8]) -> u8 {
    let mut frame = head.to_vec();
    frame.extend_from_slice(&u32::try_from(body.len()).expect("short").to_le_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).expect("operation");
    let mut status = [0u8; 1];
    stream.read_exact(&mut status).expect("status");
    status[0]
}

/// `topic 00 payload`.
fn topic_and_payload(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = topic.as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(payload);
    body
}

/// A blocking duplex stream (TLS or plain).
trait ReadWrite: Read + Write {}

impl<T: Read + Write> ReadWrite for T {}

/// A TLS control session (logged in anonymously) with a TLS data socket
/// subscribed to `topic`.
struct Subscriber {
    control: TlsStream,
    data: TlsStream,
}

impl Subscriber {
    fn open(addr: SocketAddr, ca_pem: &str, topic: &str) -> Subscriber {
        let mut control = tls_socket(addr, 0xAA, ca_pem, None).expect("control socket");
        let token = tls_login(&mut control, "", "").expect("anonymous login");
        let mut data = tls_socket(addr, 0xAB, ca_pem, None).expect("data socket");
        data.write_all(&token).expect("token");
        data.write_all(&[60]).expect("timeout");
        let mut status = [0u8; 1];
        data.read_exact(&mut status).expect("data socket bound");
        assert_eq!(status[0], OK, "data socket refused");
        assert_eq!(op(&mut control, &[0x02], topic.as_bytes()), OK, "subscribe");
        Subscriber { control, data }
    }

    /// Publishes on its own control socket and reads the message back on
    /// its data socket.
    fn round_trip(&mut self, topic: &str, payload: &[u8]) {
        let body = topic_and_payload(topic, payload);
        assert_eq!(op(&mut self.control, &[0x01, 0x7F], &body), OK, "publish");
        let expected = {
            let mut frame = vec![OK, 0x7F];
            frame.extend_from_slice(&u32::try_from(body.len()).expect("short").to_le_bytes());
            frame.extend_from_slice(&body);
            frame
        };
        let mut got = vec![0u8; expected.len()];
        self.data.read_exact(&mut got).expect("pushed message");
        assert_eq!(got, expected, "the message comes back");
    }
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_only() {
    let dir = TempDir::new("tls-reload");
    let port = free_tcp_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (first_ca, second_ca) = (Ca::new("first CA"), Ca::new("second CA"));
    let (first, second) = (first_ca.server(), second_ca.server());
    let cert = dir.write("server.crt", &first.cert_pem);
    let key = dir.write("server.key", &first.key_pem);
    let config = dir.write(
        "config.yml",
        &format!(
            "proto:\n  bind: 127.0.0.1:{port}\n  tls_cert: server.crt\n  tls_key: server.key\n"
        ),
    );
    let daemon = Daemon::start(&config, port);
    let mut old = Subscriber::open(addr, &first_ca.pem(), "reload/#");
    assert_eq!(presented(&old.control), der_of(&first.cert_pem));
    old.round_trip("reload/before", b"one");

    std::fs::write(&cert, &second.cert_pem).expect("new certificate");
    std::fs::write(&key, &second.key_pem).expect("new key");
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_log("TLS certificate reloaded", 1);
    let fresh = tls_socket(addr, 0xAA, &second_ca.pem(), None)
        .unwrap_or_else(|e| panic!("new certificate not served: {e}; log:\n{}", daemon.log()));
    assert_eq!(presented(&fresh), der_of(&second.cert_pem));
    assert!(
        tls_socket(addr, 0xAA, &first_ca.pem(), None).is_err(),
        "a new connection still got the old certificate"
    );
    old.round_trip("reload/after", b"two");

    // A key that does not match the certificate: refused, second stays.
    std::fs::write(&key, &first.key_pem).expect("mismatched key");
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_log("TLS certificate not reloaded", 1);
    let log = daemon.log();
    assert!(
        log.contains("private key does not match certificate") && log.contains("server.key"),
        "the refusal does not say why:\n{log}"
    );
    let after = tls_socket(addr, 0xAA, &second_ca.pem(), None)
        .unwrap_or_else(|e| panic!("certificate lost on a broken reload: {e}; log:\n{log}"));
    assert_eq!(presented(&after), der_of(&second.cert_pem));
    old.round_trip("reload/broken", b"three");
    assert_eq!(daemon.log().matches("TLS certificate reloaded").count(), 1);
}

#[test]
fn client_certificate_common_name_is_the_login() {
    let dir = TempDir::new("tls-cn-login");
    let port = free_tcp_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let server = server_ca.server();
    dir.write("server.crt", &server.cert_pem);
    dir.write("server.key", &server.key_pem);
    dir.write("clients.crt", &client_ca.pem());
    // Anonymous may only subscribe; alice may publish. No password file:
    // the certificate is alice's credential.
    dir.write("acl.yml", "_: {sub: ['#']}\nalice: {pub: ['#']}\n");
    let config = dir.write(
        "config.yml",
        &format!(
            "proto:\n  bind: 127.0.0.1:{port}\n  tls_cert: server.crt\n  tls_key: server.key\n  \
             tls_client_ca: clients.crt\n  tls_client_cn_login: true\n\
             auth:\n  acl: acl.yml\n"
        ),
    );
    let daemon = Daemon::start(&config, port);
    let ca = server_ca.pem();

    // Plain clients log in as they say: anonymous cannot publish.
    let (mut plain, token) = login(addr, "", "");
    assert!(token.is_some(), "anonymous refused; log:\n{}", daemon.log());
    assert_eq!(publish(&mut plain, "t/1", b"x"), ERR_ACCESS);

    // CN=alice, whatever login it sends, is alice.
    let alice = client_ca.client(Some("alice"));
    let mut stream = tls_socket(addr, 0xAA, &ca, Some(&alice)).expect("alice's handshake");
    assert!(
        tls_login(&mut stream, "", "").is_some(),
        "alice refused; log:\n{}",
        daemon.log()
    );
    let body = topic_and_payload("t/1", b"x");
    assert_eq!(op(&mut stream, &[0x01, 0x7F], &body), OK, "alice's ACL");

    // No CN: refused, with the reason in the audit log.
    let nameless = client_ca.client(None);
    let mut stream = tls_socket(addr, 0xAA, &ca, Some(&nameless)).expect("handshake");
    assert!(
        tls_login(&mut stream, "alice", "").is_none(),
        "no CN logged in"
    );
    daemon.wait_for_log("the client certificate has no usable common name", 1);
    assert!(
        daemon.log().contains("login=\"alice\" peer=127.0.0.1:"),
        "{}",
        daemon.log()
    );

    // A name the ACL does not know: refused as any unknown login.
    let mallory = client_ca.client(Some("mallory"));
    let mut stream = tls_socket(addr, 0xAA, &ca, Some(&mallory)).expect("handshake");
    assert!(
        tls_login(&mut stream, "alice", "").is_none(),
        "mallory logged in"
    );
    daemon.wait_for_log("login=\"mallory\"", 1);

    // Without a client certificate there is no TLS session at all.
    assert!(
        tls_socket(addr, 0xAA, &ca, None).is_err(),
        "a TLS client without certificate got in"
    );
}
