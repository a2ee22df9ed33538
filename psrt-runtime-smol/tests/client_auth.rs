//! Logins, ACL refusals and TLS through the async client.

mod client_support;

use client_support::*;
use psrt_proto::broker::AuthConfig;
use psrt_proto::client::ClientError as CoreError;
use psrt_runtime_smol::client::{Client, ClientError, ClientOptions, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};

/// Users `alice` (password `secret`) who may publish only under
/// `allowed/`, and anonymous access off.
fn restricted_auth() -> AuthConfig {
    AuthConfig {
        allow_anonymous: false,
        acl: acl("alice: {sub: ['#'], pub: ['allowed/#']}\n"),
        passwords: Some(passwords(&[("alice", "secret")])),
        keys: None,
    }
}

fn options(login: &str, password: &str) -> ClientOptions {
    ClientOptions {
        login: login.into(),
        password: password.into(),
        ..ClientOptions::default()
    }
}

#[test]
fn acl_denial_is_access_denied_and_session_survives() {
    run(async {
        let mut spec = open_spec();
        spec.auth = restricted_auth();
        let server = start(spec).await;
        let client = connect_as(&server.tcp(), "alice", "secret").await;
        let messages = client.take_messages().expect("receiver");
        client.subscribe("#").await.expect("subscribed");
        let err = client
            .publish("forbidden/x", "no")
            .await
            .expect_err("denied");
        assert!(matches!(err, ClientError::AccessDenied), "{err:?}");
        client.publish("allowed/x", "yes").await.expect("allowed");
        let message = next(&messages).await;
        assert_eq!(message.topic_str(), Some("allowed/x"));
        assert_quiet(&messages).await;
    });
}

#[test]
fn wrong_password_is_login_refused() {
    run(async {
        let mut spec = open_spec();
        spec.auth = restricted_auth();
        let server = start(spec).await;
        for (login, password) in [("alice", "wrong"), ("mallory", "secret"), ("", "")] {
            let err = Client::connect(&server.tcp(), options(login, password))
                .await
                .expect_err("refused");
            assert!(
                matches!(err, ClientError::Protocol(CoreError::LoginRefused)),
                "{login}: {err:?}"
            );
            assert_eq!(err.to_string(), "login refused by the server");
        }
    });
}

/// A CA and a certificate it issued for `localhost` and 127.0.0.1, with
/// the server's key: (CA PEM, certificate PEM, key PEM).
fn pki() -> (String, String, String) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "psrt client test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[test]
fn tls_session_with_a_custom_ca() {
    run(async {
        let (ca, cert, key) = pki();
        let mut spec = open_spec();
        spec.conn.tls = Some(
            psrt_proto::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes())
                .expect("server TLS config"),
        );
        spec.conn.allow_no_tls = false;
        let server = start(spec).await;

        let tls = TlsOptions {
            ca_pem: Some(ca.into_bytes()),
            server_name: None,
        };
        let secure = ClientOptions {
            tls: Some(tls.clone()),
            ..ClientOptions::default()
        };
        let client = Client::connect(&server.tcp(), secure)
            .await
            .expect("TLS connects");
        let messages = client.take_messages().expect("receiver");
        client.subscribe("s/#").await.expect("subscribed");
        let big = vec![7_u8; 100_000];
        client
            .publish("s/big", big.clone())
            .await
            .expect("published");
        let message = next(&messages).await;
        assert_eq!(message.topic_str(), Some("s/big"));
        assert_eq!(message.payload, big);

        let by_name = ClientOptions {
            tls: Some(TlsOptions {
                server_name: Some("localhost".into()),
                ..tls
            }),
            ..ClientOptions::default()
        };
        Client::connect(&server.tcp(), by_name)
            .await
            .expect("TLS by name connects");

        let plain = Client::connect(&server.tcp(), ClientOptions::default())
            .await
            .expect_err("plain refused");
        assert!(
            matches!(plain, ClientError::Protocol(CoreError::GreetingRefused)),
            "{plain:?}"
        );

        let (other_ca, _, _) = pki();
        let untrusted = ClientOptions {
            tls: Some(TlsOptions {
                ca_pem: Some(other_ca.into_bytes()),
                server_name: None,
            }),
            ..ClientOptions::default()
        };
        let err = Client::connect(&server.tcp(), untrusted)
            .await
            .expect_err("unknown CA refused");
        assert!(
            matches!(err, ClientError::Protocol(CoreError::Tls(_))),
            "{err:?}"
        );
    });
}
