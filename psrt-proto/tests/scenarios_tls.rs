//! TLS end to end through the in-memory node: the crate's own client state
//! machines speak TLS (rcgen certificates, rustls on both sides) to the
//! server's connections (PROTOCOL.md "Greeting and login", MODE `01`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use psrt_proto::Limits;
use psrt_proto::TxBuf;
use psrt_proto::broker::AuthConfig;
use psrt_proto::client::{ClientEvent, ControlClient, DataClient, Message};
use psrt_proto::conn::{ConnConfig, Transport};
use psrt_proto::node::ConnId;
use psrt_proto::tls::{TlsSession, client_config, server_config_from_pem};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
};
use support::*;

const TIMEOUT: Duration = Duration::from_secs(5);
/// A handshake plus a request needs far fewer exchanges.
const MAX_ROUNDS: usize = 50;

/// A server configuration and a client configuration trusting its CA.
fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let server = server_config_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .expect("server config");
    let client = client_config(Some(ca.pem().as_bytes())).expect("client config");
    (server, client)
}

fn tls_server(allow_no_tls: bool) -> (Server, Arc<rustls::ClientConfig>) {
    let (server_cfg, client_cfg) = tls_configs();
    let config = ConnConfig {
        tls: Some(server_cfg),
        allow_no_tls,
        tls_client_cn_login: false,
    };
    (
        Server::with_config(Limits::default(), AuthConfig::open(), config),
        client_cfg,
    )
}

fn client_tls(cfg: &Arc<rustls::ClientConfig>) -> TlsSession {
    TlsSession::client(cfg.clone(), "localhost").expect("client session")
}

/// Moves bytes both ways between a control client and its server socket
/// until neither side has anything more to say.
fn pump_control(server: &mut Server, c: ConnId, client: &mut ControlClient) {
    for _ in 0..MAX_ROUNDS {
        let mut tx = TxBuf::new();
        client.poll_transmit(&mut tx);
        let up = tx.to_vec();
        if !up.is_empty() {
            server.send(c, &up);
        }
        let down = server.recv(c);
        if !down.is_empty() {
            client.read_buf().extend_from_slice(&down);
            client
                .handle_input(server.now)
                .expect("client accepts the server's bytes");
        }
        if up.is_empty() && down.is_empty() {
            return;
        }
    }
    panic!("control exchange did not settle");
}

/// As [`pump_control`] for a data socket; returns the messages received.
fn pump_data(server: &mut Server, d: ConnId, client: &mut DataClient) -> Vec<Message> {
    let mut messages = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let mut tx = TxBuf::new();
        client.poll_transmit(&mut tx);
        let up = tx.to_vec();
        if !up.is_empty() {
            server.send(d, &up);
        }
        let down = server.recv(d);
        if !down.is_empty() {
            client.read_buf().extend_from_slice(&down);
            client
                .handle_input(server.now)
                .expect("data client accepts the server's bytes");
        }
        messages.extend(std::iter::from_fn(|| client.poll_message()));
        if up.is_empty() && down.is_empty() {
            return messages;
        }
    }
    panic!("data exchange did not settle");
}

fn events(client: &mut ControlClient) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

#[test]
fn login_subscribe_publish_and_receive_inside_tls() {
    let (mut server, cfg) = tls_server(false);
    let c = server.connect();
    let mut control =
        ControlClient::new("", b"", Some(client_tls(&cfg)), TIMEOUT, server.now).expect("client");
    pump_control(&mut server, c, &mut control);
    let token = match events(&mut control).as_slice() {
        [ClientEvent::LoggedIn { token }] => *token,
        other => panic!("expected a login, got {other:?}"),
    };

    let d = server.connect();
    let mut data = DataClient::new(token, TIMEOUT, Some(client_tls(&cfg)), 1 << 20, server.now);
    pump_data(&mut server, d, &mut data);
    assert!(data.is_streaming());

    let sub = control
        .subscribe(&["secure/#"], server.now)
        .expect("subscribe");
    let publish = control
        .publish("secure/x", b"over tls", PRIO, server.now)
        .expect("publish");
    pump_control(&mut server, c, &mut control);
    assert_eq!(
        events(&mut control),
        [
            ClientEvent::Reply {
                id: sub,
                status: OK
            },
            ClientEvent::Reply {
                id: publish,
                status: OK
            }
        ]
    );
    let messages = pump_data(&mut server, d, &mut data);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].topic_str(), Some("secure/x"));
    assert_eq!(&messages[0].payload[..], b"over tls");

    let bye = control.bye(server.now).expect("bye");
    pump_control(&mut server, c, &mut control);
    assert_eq!(
        events(&mut control),
        [
            ClientEvent::Reply {
                id: bye,
                status: OK
            },
            ClientEvent::Closed
        ]
    );
    assert!(server.closed(c));
    server.recv(d);
    assert!(server.closed(d));
    server.assert_baseline();
}

#[test]
fn with_plain_forbidden_plain_tcp_is_closed_but_tls_and_unix_are_served() {
    let (mut server, cfg) = tls_server(false);
    let plain = server.connect();
    assert!(server.request(plain, &CONTROL_GREETING).is_empty());
    assert!(server.closed(plain));
    let (unix, out) = server.try_login_on(Transport::Unix, b"", b"");
    assert_eq!(out.len(), 36);
    assert!(!server.closed(unix));
    let c = server.connect();
    let mut control =
        ControlClient::new("", b"", Some(client_tls(&cfg)), TIMEOUT, server.now).expect("client");
    pump_control(&mut server, c, &mut control);
    assert!(control.is_logged_in());
}

#[test]
fn garbage_instead_of_a_tls_handshake_closes() {
    let (mut server, _) = tls_server(true);
    let c = server.connect();
    server.send(c, &[0xEE, 0xAA, 0x01]);
    assert!(!server.closed(c), "waiting for the ClientHello");
    server.send(c, b"this is not a TLS record at all");
    server.recv(c);
    assert!(server.closed(c));
}
