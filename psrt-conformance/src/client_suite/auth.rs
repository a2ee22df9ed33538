//! Client cases: logins, ACL refusals and TLS.

use psrt_proto::broker::AuthConfig;

use crate::fixture::auth;

/// User `alice` (password `secret`) who may publish only under
/// `allowed/`, and anonymous access off.
pub fn restricted_auth() -> AuthConfig {
    auth(
        false,
        "alice: {sub: ['#'], pub: ['allowed/#']}\n",
        &[("alice", "secret")],
    )
}

/// Implementation detail of [`client_suite!`](crate::client_suite!).
#[doc(hidden)]
#[macro_export]
macro_rules! __client_auth_cases {
    ($rt:ident, $runtime:ty) => {
        use psrt_proto::client::ClientError as CoreError;
        use psrt_proto::tls::server_config_from_pem;
        use $crate::client_suite::{Inbox, login, restricted_auth, run, serve, tcp};
        use $crate::fixture::pki;
        use $rt::client::{Client, ClientError, ClientOptions, TlsOptions};

        type R = $runtime;

        #[test]
        fn acl_denial_is_access_denied_and_session_survives() {
            run::<R>(async {
                let server = serve::<R>(|spec| spec.auth = restricted_auth());
                let client = Client::connect(&tcp(&server), login("alice", "secret"))
                    .await
                    .expect("client connects");
                let mut messages = Inbox::<R>::new(client.take_messages());
                client.subscribe("#").await.expect("subscribed");
                let err = client
                    .publish("forbidden/x", "no")
                    .await
                    .expect_err("denied");
                assert!(matches!(err, ClientError::AccessDenied), "{err:?}");
                client.publish("allowed/x", "yes").await.expect("allowed");
                let message = messages.next().await;
                assert_eq!(message.topic_str(), Some("allowed/x"));
                messages.assert_quiet().await;
            });
        }

        #[test]
        fn wrong_password_is_login_refused() {
            run::<R>(async {
                let server = serve::<R>(|spec| spec.auth = restricted_auth());
                for (user, password) in [("alice", "wrong"), ("mallory", "secret"), ("", "")] {
                    let err = Client::connect(&tcp(&server), login(user, password))
                        .await
                        .expect_err("refused");
                    assert!(
                        matches!(err, ClientError::Protocol(CoreError::LoginRefused)),
                        "{user}: {err:?}"
                    );
                    assert_eq!(err.to_string(), "login refused by the server");
                }
            });
        }

        #[test]
        fn tls_session_with_a_custom_ca() {
            run::<R>(async {
                let certs = pki();
                let server = serve::<R>(|spec| {
                    let (cert, key) = (certs.cert_pem.as_bytes(), certs.key_pem.as_bytes());
                    let config = server_config_from_pem(cert, key);
                    spec.conn.tls = Some(config.expect("server TLS config"));
                    spec.conn.allow_no_tls = false;
                });

                let tls = TlsOptions {
                    ca_pem: Some(certs.ca_pem.into_bytes()),
                    ..TlsOptions::default()
                };
                let secure = ClientOptions {
                    tls: Some(tls.clone()),
                    ..ClientOptions::default()
                };
                let client = Client::connect(&tcp(&server), secure)
                    .await
                    .expect("TLS connects");
                let mut messages = Inbox::<R>::new(client.take_messages());
                client.subscribe("s/#").await.expect("subscribed");
                let big = vec![7_u8; 100_000];
                client
                    .publish("s/big", big.clone())
                    .await
                    .expect("published");
                let message = messages.next().await;
                assert_eq!(message.topic_str(), Some("s/big"));
                assert_eq!(message.payload, big);

                let by_name = ClientOptions {
                    tls: Some(TlsOptions {
                        server_name: Some("localhost".into()),
                        ..tls
                    }),
                    ..ClientOptions::default()
                };
                Client::connect(&tcp(&server), by_name)
                    .await
                    .expect("TLS by name connects");

                let plain = Client::connect(&tcp(&server), ClientOptions::default())
                    .await
                    .expect_err("plain refused");
                assert!(
                    matches!(plain, ClientError::Protocol(CoreError::GreetingRefused)),
                    "{plain:?}"
                );

                let untrusted = ClientOptions {
                    tls: Some(TlsOptions {
                        ca_pem: Some(pki().ca_pem.into_bytes()),
                        ..TlsOptions::default()
                    }),
                    ..ClientOptions::default()
                };
                let err = Client::connect(&tcp(&server), untrusted)
                    .await
                    .expect_err("unknown CA refused");
                assert!(
                    matches!(err, ClientError::Protocol(CoreError::Tls(_))),
                    "{err:?}"
                );
            });
        }
    };
}
