//! In-memory handshakes and data exchange between two [`TlsSession`]s, with
//! certificates made on the fly by rcgen (RSA keys come from fixtures under
//! `tests/data/`, since ring cannot generate RSA keys).

use std::sync::{Arc, LazyLock};

use bytes::BytesMut;
use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};

use super::{
    ServerCert, TlsError, TlsSession, client_config, client_config_with_cert, hint, server_config,
    server_config_from_pem,
};

const RSA_PKCS8: &str = include_str!("../../tests/data/rsa2048.pkcs8.pem");
const RSA_PKCS1: &str = include_str!("../../tests/data/rsa2048.pkcs1.pem");
const EC_PKCS8: &str = include_str!("../../tests/data/ec-p256.pkcs8.pem");
const EC_SEC1: &str = include_str!("../../tests/data/ec-p256.sec1.pem");

/// Upper bound on ping-pong rounds; a handshake needs fewer than 10.
const MAX_ROUNDS: usize = 100;

/// A CA and a server certificate it issued.
struct Pki {
    ca_pem: String,
    cert_pem: String,
}

/// Makes a fresh CA and a certificate for `server_key`, valid for
/// `localhost` and `127.0.0.1`.
fn pki_for(server_key: &KeyPair) -> Pki {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "psrt test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    let cert = params.signed_by(server_key, &ca).expect("server cert");
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
    }
}

/// A matching server and client configuration; the server key PEM is
/// `key_pem` (any encoding of `key`).
fn configs_with(
    key: &KeyPair,
    key_pem: &str,
) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let pki = pki_for(key);
    let server =
        server_config_from_pem(pki.cert_pem.as_bytes(), key_pem.as_bytes()).expect("server config");
    let client = client_config(Some(pki.ca_pem.as_bytes())).expect("client config");
    (server, client)
}

/// Configurations with a generated ECDSA P-256 key.
fn ecdsa_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    configs_with(&key, &key.serialize_pem())
}

/// One pair of configurations shared by the property tests.
static SHARED: LazyLock<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)> =
    LazyLock::new(ecdsa_configs);

/// Moves everything `from` wants to send into `to`, `chunk` bytes per feed,
/// collecting `to`'s plaintext into `got`. Returns whether bytes moved.
fn step(
    from: &mut TlsSession,
    to: &mut TlsSession,
    got: &mut BytesMut,
    chunk: usize,
) -> Result<bool, TlsError> {
    let mut wire = Vec::new();
    from.take_ciphertext(&mut wire);
    for piece in wire.chunks(chunk) {
        let mut input = BytesMut::from(piece);
        while !input.is_empty() && !to.peer_closed() {
            let before = input.len();
            to.feed_ciphertext(&mut input)?;
            let taken = to.take_plaintext(got)?;
            assert!(
                input.len() < before || taken > 0,
                "feed_ciphertext made no progress"
            );
        }
    }
    Ok(!wire.is_empty())
}

/// Plaintext each side received.
#[derive(Default)]
struct Received {
    by_client: BytesMut,
    by_server: BytesMut,
}

/// Shuttles ciphertext both ways until neither side has anything to send.
fn run(
    client: &mut TlsSession,
    server: &mut TlsSession,
    chunk: usize,
    got: &mut Received,
) -> Result<(), TlsError> {
    for _ in 0..MAX_ROUNDS {
        let up = step(client, server, &mut got.by_server, chunk)?;
        let down = step(server, client, &mut got.by_client, chunk)?;
        if !up && !down {
            return Ok(());
        }
    }
    panic!("sessions did not settle in {MAX_ROUNDS} rounds");
}

/// A client and server session from the given configurations.
fn sessions(
    cfgs: &(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>),
    name: &str,
) -> (TlsSession, TlsSession) {
    let client = TlsSession::client(cfgs.1.clone(), name).expect("client session");
    let server = TlsSession::server(cfgs.0.clone()).expect("server session");
    (client, server)
}

/// Deterministic, non-repeating-looking payload.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed ^ ((i >> 8) as u8))
        .collect()
}

/// Handshakes, then sends `len` bytes each way and checks they arrive intact.
fn exchange(
    cfgs: &(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>),
    name: &str,
    len: usize,
    chunk: usize,
) {
    let (mut client, mut server) = sessions(cfgs, name);
    let mut got = Received::default();
    assert!(client.is_handshaking() && server.is_handshaking());
    run(&mut client, &mut server, chunk, &mut got).expect("handshake");
    assert!(!client.is_handshaking() && !server.is_handshaking());
    assert!(!client.wants_write() && !server.wants_write());

    let up = payload(len, 0x5a);
    let down = payload(len, 0xa5);
    client.write_plaintext(&up).expect("client write");
    server.write_plaintext(&down).expect("server write");
    run(&mut client, &mut server, chunk, &mut got).expect("exchange");
    assert_eq!(got.by_server.len(), up.len());
    assert!(got.by_server[..] == up[..], "client->server data corrupted");
    assert_eq!(got.by_client.len(), down.len());
    assert!(
        got.by_client[..] == down[..],
        "server->client data corrupted"
    );
}

#[test]
fn ecdsa_p256_pkcs8_handshake_and_exchange() {
    exchange(&ecdsa_configs(), "localhost", 10_000, usize::MAX);
}

#[test]
fn ed25519_handshake_and_exchange() {
    let key = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    exchange(
        &configs_with(&key, &key.serialize_pem()),
        "localhost",
        10_000,
        usize::MAX,
    );
}

#[test]
fn rsa_pkcs1_and_pkcs8_handshake_and_exchange() {
    let key = KeyPair::from_pem(RSA_PKCS8).expect("RSA fixture");
    exchange(
        &configs_with(&key, RSA_PKCS1),
        "localhost",
        10_000,
        usize::MAX,
    );
    exchange(
        &configs_with(&key, RSA_PKCS8),
        "localhost",
        10_000,
        usize::MAX,
    );
}

#[test]
fn ecdsa_sec1_handshake_and_exchange() {
    let key = KeyPair::from_pem(EC_PKCS8).expect("EC fixture");
    exchange(
        &configs_with(&key, EC_SEC1),
        "localhost",
        10_000,
        usize::MAX,
    );
}

#[test]
fn ip_address_server_name() {
    exchange(&SHARED, "127.0.0.1", 100, usize::MAX);
}

#[test]
fn one_mebibyte_each_way() {
    exchange(&SHARED, "localhost", 1 << 20, usize::MAX);
}

#[test]
fn one_byte_at_a_time() {
    exchange(&SHARED, "localhost", 100_000, 1);
}

#[test]
fn odd_sized_chunks() {
    exchange(&SHARED, "localhost", 200_000, 1_000);
}

#[test]
fn plaintext_written_before_handshake_is_delivered() {
    let (mut client, mut server) = sessions(&SHARED, "localhost");
    client.write_plaintext(b"early hello").expect("write");
    let mut got = Received::default();
    run(&mut client, &mut server, usize::MAX, &mut got).expect("handshake");
    assert_eq!(&got.by_server[..], b"early hello");
    assert!(got.by_client.is_empty());
}

#[test]
fn received_plaintext_is_bounded_until_taken() {
    let (mut client, mut server) = sessions(&SHARED, "localhost");
    run(
        &mut client,
        &mut server,
        usize::MAX,
        &mut Received::default(),
    )
    .expect("handshake");
    let data = payload(1 << 20, 1);
    client.write_plaintext(&data).expect("write");
    let mut wire = Vec::new();
    client.take_ciphertext(&mut wire);
    assert!(!client.wants_write());
    let mut input = BytesMut::from(&wire[..]);
    server.feed_ciphertext(&mut input).expect("feed");
    assert!(
        !input.is_empty(),
        "server swallowed 1 MiB without delivering it"
    );
    server
        .feed_ciphertext(&mut input)
        .expect("second feed, still full");
    let mut out = BytesMut::new();
    let first = server.take_plaintext(&mut out).expect("take");
    assert!(first > 0 && first <= 64 * 1024, "took {first} bytes");
    while !input.is_empty() {
        server.feed_ciphertext(&mut input).expect("feed");
        assert!(server.take_plaintext(&mut out).expect("take") > 0);
    }
    assert!(out[..] == data[..]);
}

#[test]
fn close_notify_reaches_peer() {
    let (mut client, mut server) = sessions(&SHARED, "localhost");
    let mut got = Received::default();
    run(&mut client, &mut server, usize::MAX, &mut got).expect("handshake");
    client.write_plaintext(b"last words").expect("write");
    client.close();
    assert!(client.wants_write());
    assert!(!server.peer_closed());
    run(&mut client, &mut server, usize::MAX, &mut got).expect("close");
    assert!(server.peer_closed());
    assert!(!client.peer_closed());
    assert_eq!(&got.by_server[..], b"last words");
}

#[test]
fn wrong_server_name_fails_handshake() {
    let (mut client, mut server) = sessions(&SHARED, "example.com");
    let err = run(
        &mut client,
        &mut server,
        usize::MAX,
        &mut Received::default(),
    )
    .expect_err("name mismatch must fail");
    assert!(
        matches!(
            err,
            TlsError::Protocol(rustls::Error::InvalidCertificate(_))
        ),
        "{err:?}"
    );
    assert!(client.wants_write(), "client should queue an alert");
}

#[test]
fn untrusted_ca_fails_handshake() {
    let server_cfg = SHARED.0.clone();
    let other_client_cfg = ecdsa_configs().1;
    let mut client = TlsSession::client(other_client_cfg, "localhost").expect("client");
    let mut server = TlsSession::server(server_cfg).expect("server");
    let err = run(
        &mut client,
        &mut server,
        usize::MAX,
        &mut Received::default(),
    )
    .expect_err("unknown CA must fail");
    // Both CAs carry the same name, so the verifier finds a candidate
    // issuer whose signature does not verify.
    assert!(
        matches!(
            err,
            TlsError::Protocol(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature | rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
}

#[test]
fn certificate_errors_read_as_words_not_variant_names() {
    use rustls::CertificateError as Cert;
    let text = |cert| TlsError::Protocol(rustls::Error::InvalidCertificate(cert)).to_string();
    for cert in [Cert::UnknownIssuer, Cert::BadSignature] {
        let words = text(cert);
        assert!(words.contains("not trusted"), "{words}");
    }
    assert!(!text(Cert::UnknownIssuer).contains("UnknownIssuer"));
    assert_eq!(
        text(Cert::Expired),
        "TLS error: the peer's certificate has expired"
    );
    let other = TlsError::Protocol(rustls::Error::DecryptError).to_string();
    assert_eq!(other, format!("TLS error: {}", rustls::Error::DecryptError));
}

#[test]
fn plaintext_protocol_bytes_are_rejected() {
    let mut server = TlsSession::server(SHARED.0.clone()).expect("server");
    let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    let err = server.feed_ciphertext(&mut input).expect_err("not TLS");
    assert!(matches!(err, TlsError::Protocol(_)), "{err:?}");
}

#[test]
fn invalid_server_name_is_reported() {
    let err = TlsSession::client(SHARED.1.clone(), "bad name!").expect_err("invalid");
    assert!(matches!(err, TlsError::InvalidServerName(ref n) if n == "bad name!"));
}

#[test]
fn webpki_roots_client_config_builds() {
    let cfg = client_config(None).expect("default roots");
    let session = TlsSession::client(cfg, "example.com").expect("session");
    assert!(session.wants_write(), "ClientHello ready");
}

#[test]
fn pem_errors_are_clear() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let key_pem = key.serialize_pem();
    let pki = pki_for(&key);

    let err = server_config_from_pem(b"", key_pem.as_bytes()).expect_err("no cert");
    assert!(matches!(err, TlsError::NoCertificate));
    assert_eq!(err.to_string(), "no certificate found in PEM");

    let err = server_config_from_pem(key_pem.as_bytes(), key_pem.as_bytes()).expect_err("key only");
    assert!(matches!(err, TlsError::NoCertificate));

    let err = server_config_from_pem(pki.cert_pem.as_bytes(), pki.cert_pem.as_bytes())
        .expect_err("no key");
    assert!(matches!(err, TlsError::NoPrivateKey));
    assert_eq!(err.to_string(), "no private key found in PEM");

    let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("other key");
    let err = server_config_from_pem(pki.cert_pem.as_bytes(), other.serialize_pem().as_bytes())
        .expect_err("mismatch");
    assert!(matches!(err, TlsError::KeyMismatch), "{err:?}");
    assert_eq!(err.to_string(), "private key does not match certificate");

    let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let err = server_config_from_pem(broken.as_bytes(), key_pem.as_bytes()).expect_err("bad b64");
    assert!(matches!(err, TlsError::Pem(_)), "{err:?}");

    let truncated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
    let err = client_config(Some(truncated.as_bytes())).expect_err("truncated");
    assert!(matches!(err, TlsError::Pem(_)), "{err:?}");

    let err = client_config(Some(b"not a pem")).expect_err("no CA");
    assert!(matches!(err, TlsError::NoCertificate));

    let garbage_ca = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let err = client_config(Some(garbage_ca.as_bytes())).expect_err("bad CA DER");
    assert!(matches!(err, TlsError::InvalidCa(_)), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random bytes in place of a ClientHello never panic and never yield
    /// plaintext.
    #[test]
    fn garbage_before_handshake(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut server = TlsSession::server(SHARED.0.clone()).expect("server");
        let mut input = BytesMut::from(&bytes[..]);
        let fed = server.feed_ciphertext(&mut input);
        let mut out = BytesMut::new();
        let taken = server.take_plaintext(&mut out);
        prop_assert!(out.is_empty());
        prop_assert!(fed.is_err() || taken.is_ok());
        let mut wire = Vec::new();
        server.take_ciphertext(&mut wire);
    }

    /// Flipping one bit of an established session's record never delivers
    /// altered plaintext. TLS 1.3 authenticates the header as the constants
    /// it must hold, so a flip in the type or version byte may go unnoticed;
    /// a flip in the body or tag must fail.
    #[test]
    fn corrupted_record_is_rejected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (mut client, mut server) = sessions(&SHARED, "localhost");
        run(&mut client, &mut server, usize::MAX, &mut Received::default()).expect("handshake");
        client.write_plaintext(b"authentic message").expect("write");
        let mut wire = Vec::new();
        client.take_ciphertext(&mut wire);
        let i = pos.index(wire.len());
        if let Some(byte) = wire.get_mut(i) {
            *byte ^= 1 << bit;
        }
        let mut input = BytesMut::from(&wire[..]);
        let fed = server.feed_ciphertext(&mut input);
        let mut out = BytesMut::new();
        server.take_plaintext(&mut out).expect("take_plaintext fails only after a transport EOF");
        prop_assert!(out.is_empty() || out[..] == b"authentic message"[..], "got {:?}", out);
        if i >= 5 {
            prop_assert!(fed.is_err(), "corrupt body accepted, got {:?}", out);
        }
    }

    /// Random bytes after an established handshake never panic and never
    /// yield plaintext.
    #[test]
    fn garbage_after_handshake(bytes in prop::collection::vec(any::<u8>(), 1..2048)) {
        let (mut client, mut server) = sessions(&SHARED, "localhost");
        run(&mut client, &mut server, usize::MAX, &mut Received::default()).expect("handshake");
        let mut input = BytesMut::from(&bytes[..]);
        let _ = client.feed_ciphertext(&mut input);
        let mut out = BytesMut::new();
        let _ = client.take_plaintext(&mut out);
        prop_assert!(out.is_empty());
    }
}

/// A fresh ECDSA key and a certificate for it from a fresh CA.
fn fresh_pki() -> (Pki, String) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    (pki_for(&key), key.serialize_pem())
}

/// Whether a handshake between the two configurations succeeds.
fn handshake(
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
) -> Result<(TlsSession, TlsSession), TlsError> {
    let mut client = TlsSession::client(client.clone(), "localhost").expect("client");
    let mut server = TlsSession::server(server.clone()).expect("server");
    run(
        &mut client,
        &mut server,
        usize::MAX,
        &mut Received::default(),
    )?;
    Ok((client, server))
}

#[test]
fn replaced_certificate_reaches_new_handshakes_only() {
    let (old, old_key) = fresh_pki();
    let (new, new_key) = fresh_pki();
    let cert = ServerCert::from_pem(old.cert_pem.as_bytes(), old_key.as_bytes()).expect("old");
    let server = server_config(cert.clone(), None).expect("server config");
    let trusts_old = client_config(Some(old.ca_pem.as_bytes())).expect("client");
    let trusts_new = client_config(Some(new.ca_pem.as_bytes())).expect("client");
    let (mut client, mut session) = handshake(&server, &trusts_old).expect("old certificate");
    assert!(
        handshake(&server, &trusts_new).is_err(),
        "new CA before reload"
    );

    cert.replace_from_pem(new.cert_pem.as_bytes(), new_key.as_bytes())
        .expect("replaced");
    handshake(&server, &trusts_new).expect("new certificate after reload");
    // A fresh client: `trusts_old` would resume its session without
    // looking at a certificate.
    let fresh_old = client_config(Some(old.ca_pem.as_bytes())).expect("client");
    assert!(
        handshake(&server, &fresh_old).is_err(),
        "old CA after reload"
    );
    let mut got = Received::default();
    client.write_plaintext(b"still here").expect("write");
    run(&mut client, &mut session, usize::MAX, &mut got).expect("established session");
    assert_eq!(&got.by_server[..], b"still here");
}

#[test]
fn broken_replacement_keeps_the_certificate_in_force() {
    let (pki, key_pem) = fresh_pki();
    let (_, other_key) = fresh_pki();
    let cert = ServerCert::from_pem(pki.cert_pem.as_bytes(), key_pem.as_bytes()).expect("cert");
    let err = cert
        .replace_from_pem(pki.cert_pem.as_bytes(), other_key.as_bytes())
        .expect_err("mismatched key");
    assert!(matches!(err, TlsError::KeyMismatch), "{err:?}");
    let server = server_config(cert, None).expect("server config");
    let client = client_config(Some(pki.ca_pem.as_bytes())).expect("client");
    handshake(&server, &client).expect("the old certificate still serves");
}

#[test]
fn client_ca_requires_a_certificate_it_issued() {
    let (server_pki, server_key) = fresh_pki();
    let (client_pki, client_key) = fresh_pki();
    let (stranger_pki, stranger_key) = fresh_pki();
    let cert =
        ServerCert::from_pem(server_pki.cert_pem.as_bytes(), server_key.as_bytes()).expect("cert");
    let server = server_config(cert, Some(client_pki.ca_pem.as_bytes())).expect("server config");
    let ca = Some(server_pki.ca_pem.as_bytes());

    let anonymous = client_config(ca).expect("client");
    assert!(
        handshake(&server, &anonymous).is_err(),
        "no client certificate"
    );
    let identity = (client_pki.cert_pem.as_bytes(), client_key.as_bytes());
    let signed = client_config_with_cert(ca, Some(identity)).expect("client");
    let (mut client, mut session) = handshake(&server, &signed).expect("issued by the client CA");
    let mut got = Received::default();
    client.write_plaintext(b"hello").expect("write");
    run(&mut client, &mut session, usize::MAX, &mut got).expect("exchange");
    assert_eq!(&got.by_server[..], b"hello");
    let identity = (stranger_pki.cert_pem.as_bytes(), stranger_key.as_bytes());
    let stranger = client_config_with_cert(ca, Some(identity)).expect("client");
    assert!(
        handshake(&server, &stranger).is_err(),
        "issued by another CA"
    );
}

#[test]
fn ca_certificate_as_server_certificate_gets_the_hint() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("self-signed CA:TRUE");
    let server = server_config_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .expect("rustls serves it");
    let client = client_config(Some(cert.pem().as_bytes())).expect("client");
    let err = handshake(&server, &client).expect_err("refused by the client");
    let message = err.to_string();
    assert!(message.contains("CaUsedAsEndEntity"), "{message}");
    assert!(hint(&message).is_some_and(|h| h.contains("CA:FALSE")));
    assert!(hint("connection refused").is_none());
}

/// A client certificate whose subject holds the common name `name` (and
/// an organisation, so a subject without CN is not empty), issued by a
/// fresh CA: the CA PEM, the certificate PEM and its key PEM.
fn client_identity(name: Option<&str>) -> (String, String, String) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "psrt client CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "psrt tests");
    if let Some(name) = name {
        params.distinguished_name.push(DnType::CommonName, name);
    }
    let cert = params.signed_by(&key, &ca).expect("client cert");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// The server's view of the client certificate's common name after a
/// handshake with a client presenting one with `name`.
fn common_name_seen(name: Option<&str>) -> Option<String> {
    let (server_pki, server_key) = fresh_pki();
    let (client_ca, client_cert, client_key) = client_identity(name);
    let cert =
        ServerCert::from_pem(server_pki.cert_pem.as_bytes(), server_key.as_bytes()).expect("cert");
    let server = server_config(cert, Some(client_ca.as_bytes())).expect("server config");
    let identity = (client_cert.as_bytes(), client_key.as_bytes());
    let client = client_config_with_cert(Some(server_pki.ca_pem.as_bytes()), Some(identity))
        .expect("client");
    let (_, session) = handshake(&server, &client).expect("handshake");
    session.peer_common_name()
}

#[test]
fn the_verified_client_certificate_names_its_common_name() {
    assert_eq!(common_name_seen(Some("alice")).as_deref(), Some("alice"));
    assert_eq!(common_name_seen(None), None, "no CN in the subject");
    assert_eq!(common_name_seen(Some("")), None, "an empty CN names no one");
    let (_, session) = handshake(&SHARED.0, &SHARED.1).expect("handshake");
    assert_eq!(session.peer_common_name(), None, "no client certificate");
}
