//! Publishing over UDP: plain and sealed datagrams, with and without acks.

mod client_support;

use std::net::SocketAddr;
use std::time::Duration;

use client_support::*;
use psrt_proto::broker::AuthConfig;
use psrt_proto::wire::status;
use psrt_runtime_smol::client::{Cipher, ClientError, UdpAuth, UdpClient};

const ACK_WAIT: Duration = Duration::from_secs(5);
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn key() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

/// A server with UDP on, users `alice` (password `secret`, key [`KEY_HEX`])
/// publishing under `udp/` only, and a subscriber session over TCP.
async fn udp_server() -> (TestServer, SocketAddr) {
    let mut spec = open_spec();
    spec.udp.push("127.0.0.1:0".parse().expect("address"));
    spec.auth = AuthConfig {
        allow_anonymous: true,
        acl: acl("alice: {pub: ['udp/#']}\n_: {sub: ['#'], pub: ['#']}\n"),
        passwords: Some(passwords(&[("alice", "secret")])),
        keys: Some(keys(&format!("alice: {KEY_HEX}\n"))),
    };
    let server = start(spec).await;
    let udp = server.addrs.udp[0];
    (server, udp)
}

#[test]
fn plain_datagrams_with_and_without_ack() {
    run(async {
        let (server, udp) = udp_server().await;
        let subscriber = connect(&server.tcp()).await;
        let messages = subscriber.take_messages().expect("receiver");
        subscriber.subscribe("udp/#").await.expect("subscribed");

        let mut client = UdpClient::new(udp, "alice", UdpAuth::Plain("secret".into()))
            .await
            .expect("socket");
        let code = client
            .publish_acked("udp/plain", b"acked", ACK_WAIT)
            .await
            .expect("ack");
        assert_eq!(code, status::OK);
        assert_eq!(&next(&messages).await.payload[..], b"acked");

        client.publish("udp/plain", b"fire").await.expect("sent");
        assert_eq!(&next(&messages).await.payload[..], b"fire");

        let code = client
            .publish_acked("other/x", b"no", ACK_WAIT)
            .await
            .expect("ack");
        assert_eq!(code, status::ERR_ACCESS);

        let mut wrong = UdpClient::new(udp, "alice", UdpAuth::Plain("wrong".into()))
            .await
            .expect("socket");
        let code = wrong
            .publish_acked("udp/plain", b"no", ACK_WAIT)
            .await
            .expect("ack");
        assert_ne!(code, status::OK);
        assert_quiet(&messages).await;
    });
}

#[test]
fn sealed_datagrams_with_both_ciphers() {
    run(async {
        let (server, udp) = udp_server().await;
        let subscriber = connect(&server.tcp()).await;
        let messages = subscriber.take_messages().expect("receiver");
        subscriber.subscribe("udp/#").await.expect("subscribed");

        for cipher in [Cipher::Aes128Gcm, Cipher::Aes256Gcm] {
            let auth = UdpAuth::Key { key: key(), cipher };
            let mut client = UdpClient::new(udp, "alice", auth).await.expect("socket");
            let code = client
                .publish_acked("udp/sealed", b"secret payload", ACK_WAIT)
                .await
                .expect("ack");
            assert_eq!(code, status::OK, "{cipher:?}");
            assert_eq!(&next(&messages).await.payload[..], b"secret payload");
            client.publish("udp/sealed", b"no ack").await.expect("sent");
            assert_eq!(&next(&messages).await.payload[..], b"no ack");
        }

        // A wrong key fails to open: an auth failure, never delivered.
        let auth = UdpAuth::Key {
            key: [9; 32],
            cipher: Cipher::Aes256Gcm,
        };
        let mut wrong = UdpClient::new(udp, "alice", auth).await.expect("socket");
        match wrong
            .publish_acked("udp/sealed", b"forged", Duration::from_millis(500))
            .await
        {
            Ok(code) => assert_ne!(code, status::OK),
            Err(err) => assert!(matches!(err, ClientError::Timeout(_)), "{err:?}"),
        }
        assert_quiet(&messages).await;
    });
}

#[test]
fn missing_ack_times_out() {
    run(async {
        // A bound UDP socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        let mut client = UdpClient::new(addr, "", UdpAuth::Plain(String::new()))
            .await
            .expect("socket");
        let err = client
            .publish_acked("t", b"x", Duration::from_millis(200))
            .await
            .expect_err("no ack");
        assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    });
}
