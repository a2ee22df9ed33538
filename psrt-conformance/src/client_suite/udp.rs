//! Client cases: publishing over UDP, plain and sealed, with and without
//! acks.

use std::time::Duration;

use psrt_proto::spec::ServerSpec;

use crate::fixture::{auth, keys, loopback};

/// How long an acked publish waits for its ack.
pub const ACK_WAIT: Duration = Duration::from_secs(5);

/// Hex of [`udp_test_key`].
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Alice's AES key: the bytes 0 to 31.
pub fn udp_test_key() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

/// Turns UDP on in `spec`, with user `alice` (password `secret`, key
/// [`udp_test_key`]) publishing under `udp/` only and anonymous full
/// access for the subscriber.
pub fn udp_spec(spec: &mut ServerSpec) {
    spec.udp.push(loopback());
    spec.auth = auth(
        true,
        "alice: {pub: ['udp/#']}\n_: {sub: ['#'], pub: ['#']}\n",
        &[("alice", "secret")],
    );
    spec.auth.keys = Some(keys(&format!("alice: {KEY_HEX}\n")));
}

/// Implementation detail of [`client_suite!`](crate::client_suite!).
#[doc(hidden)]
#[macro_export]
macro_rules! __client_udp_cases {
    ($rt:ident, $runtime:ty) => {
        use std::net::SocketAddr;
        use std::time::Duration;

        use psrt_proto::wire::status;
        use $crate::client_suite::{ACK_WAIT, Inbox, run, serve, tcp, udp_spec, udp_test_key};
        use $crate::fixture::Server;
        use $rt::client::{Cipher, Client, ClientError, ClientOptions, UdpAuth, UdpClient};

        type R = $runtime;

        /// A server from [`udp_spec`], its UDP address and the messages of
        /// a subscriber to `udp/#` over TCP.
        async fn udp_server() -> (Server, SocketAddr, Client, Inbox<R>) {
            let server = serve::<R>(udp_spec);
            let udp = server.addrs().udp.expect("UDP bound");
            let subscriber = Client::connect(&tcp(&server), ClientOptions::default())
                .await
                .expect("client connects");
            let messages = Inbox::<R>::new(subscriber.take_messages());
            subscriber.subscribe("udp/#").await.expect("subscribed");
            (server, udp, subscriber, messages)
        }

        #[test]
        fn plain_datagrams_with_and_without_ack() {
            run::<R>(async {
                let (_server, udp, _subscriber, mut messages) = udp_server().await;
                let mut client = UdpClient::new(udp, "alice", UdpAuth::Plain("secret".into()))
                    .await
                    .expect("socket");
                let code = client
                    .publish_acked("udp/plain", b"acked", ACK_WAIT)
                    .await
                    .expect("ack");
                assert_eq!(code, status::OK);
                assert_eq!(&messages.next().await.payload[..], b"acked");

                client.publish("udp/plain", b"fire").await.expect("sent");
                assert_eq!(&messages.next().await.payload[..], b"fire");

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
                messages.assert_quiet().await;
            });
        }

        #[test]
        fn sealed_datagrams_with_both_ciphers() {
            run::<R>(async {
                let (_server, udp, _subscriber, mut messages) = udp_server().await;
                for cipher in [Cipher::Aes128Gcm, Cipher::Aes256Gcm] {
                    let auth = UdpAuth::Key {
                        key: udp_test_key(),
                        cipher,
                    };
                    let mut client = UdpClient::new(udp, "alice", auth).await.expect("socket");
                    let code = client
                        .publish_acked("udp/sealed", b"secret payload", ACK_WAIT)
                        .await
                        .expect("ack");
                    assert_eq!(code, status::OK, "{cipher:?}");
                    assert_eq!(&messages.next().await.payload[..], b"secret payload");
                    client.publish("udp/sealed", b"no ack").await.expect("sent");
                    assert_eq!(&messages.next().await.payload[..], b"no ack");
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
                messages.assert_quiet().await;
            });
        }

        #[test]
        fn missing_ack_times_out() {
            run::<R>(async {
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

        #[test]
        fn a_late_ack_is_not_taken_for_the_next_one() {
            run::<R>(async {
                // A fake server: answers the first datagram late with ERR,
                // the second at once with OK, each to the port it came from.
                let fake = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
                let addr = fake.local_addr().expect("addr");
                std::thread::spawn(move || {
                    let mut buf = [0; 4096];
                    let (_, first) = fake.recv_from(&mut buf).expect("first datagram");
                    std::thread::sleep(Duration::from_millis(500));
                    let _ = fake.send_to(&[0xEE, 0xAA, 0x01, 0x00, status::ERR], first);
                    let (_, second) = fake.recv_from(&mut buf).expect("second datagram");
                    let _ = fake.send_to(&[0xEE, 0xAA, 0x01, 0x00, status::OK], second);
                });
                let mut client = UdpClient::new(addr, "", UdpAuth::Plain(String::new()))
                    .await
                    .expect("socket");
                let err = client
                    .publish_acked("t", b"1", Duration::from_millis(200))
                    .await
                    .expect_err("the first ack is late");
                assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
                let code = client
                    .publish_acked("t", b"2", ACK_WAIT)
                    .await
                    .expect("second ack");
                assert_eq!(code, status::OK);
            });
        }
    };
}
