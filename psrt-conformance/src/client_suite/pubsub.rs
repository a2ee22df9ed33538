//! Client cases: publish, subscribe, pipelining, clones on tasks and
//! threads, keep-alive, slow readers, Unix sockets, publish-only
//! sessions, errors.

/// Implementation detail of [`client_suite!`](crate::client_suite!).
#[doc(hidden)]
#[macro_export]
macro_rules! __client_pubsub_cases {
    ($rt:ident, $runtime:ty) => {
        use std::time::Duration;

        use $crate::client_suite::{
            ClientRuntime, Inbox, login, on_thread, run, serve, socket_path, tcp,
        };
        use $rt::client::{Client, ClientError, ClientOptions};

        type R = $runtime;

        /// Connects to `addr` with `options`.
        async fn connect_with(addr: &str, options: ClientOptions) -> Client {
            Client::connect(addr, options)
                .await
                .expect("client connects")
        }

        /// Connects to `addr` with default options.
        async fn connect(addr: &str) -> Client {
            connect_with(addr, ClientOptions::default()).await
        }

        #[test]
        fn publish_reaches_a_subscriber() {
            run::<R>(async {
                let server = serve::<R>(|_| ());
                let subscriber = connect(&tcp(&server)).await;
                let mut messages = Inbox::<R>::new(subscriber.take_messages());
                assert!(subscriber.take_messages().is_none(), "taken only once");
                subscriber
                    .subscribe("room/+/temp")
                    .await
                    .expect("subscribed");
                let publisher = connect(&tcp(&server)).await;
                publisher
                    .publish("room/1/temp", "20.5")
                    .await
                    .expect("published");
                publisher
                    .publish("room/1/humidity", "40")
                    .await
                    .expect("published");
                let message = messages.next().await;
                assert_eq!(message.topic_str(), Some("room/1/temp"));
                assert_eq!(&message.payload[..], b"20.5");
                messages.assert_quiet().await;
                publisher.bye().await.expect("bye answered");
                subscriber.bye().await.expect("bye answered");
                messages.assert_ends().await;
            });
        }

        #[test]
        fn bulk_subscribe_and_unsubscribe() {
            run::<R>(async {
                let server = serve::<R>(|_| ());
                let client = connect(&tcp(&server)).await;
                let mut messages = Inbox::<R>::new(client.take_messages());
                client
                    .subscribe_bulk(&["a/1", "b/#", "c"])
                    .await
                    .expect("subscribed");
                for topic in ["a/1", "b/x/y", "c", "d"] {
                    client.publish(topic, topic).await.expect("published");
                }
                for topic in ["a/1", "b/x/y", "c"] {
                    let message = messages.next().await;
                    assert_eq!(message.topic_str(), Some(topic));
                    assert_eq!(&message.payload[..], topic.as_bytes());
                }
                messages.assert_quiet().await;
                client
                    .unsubscribe_bulk(&["a/1", "b/#"])
                    .await
                    .expect("unsubscribed");
                client.publish("a/1", "x").await.expect("published");
                client.publish("c", "still").await.expect("published");
                let message = messages.next().await;
                assert_eq!(message.topic_str(), Some("c"));
                assert_eq!(&message.payload[..], b"still");
                client.unsubscribe("c").await.expect("unsubscribed");
                client.publish("c", "gone").await.expect("published");
                messages.assert_quiet().await;
            });
        }

        #[test]
        fn ten_thousand_pipelined_publishes_arrive_in_order() {
            const COUNT: usize = 10_000;
            run::<R>(async {
                let server = serve::<R>(|spec| spec.limits.data_queue = COUNT * 2);
                let options = ClientOptions {
                    queue: COUNT,
                    ..ClientOptions::default()
                };
                let client = connect_with(&tcp(&server), options).await;
                let mut messages = Inbox::<R>::new(client.take_messages());
                client.subscribe("bench").await.expect("subscribed");
                let mut tickets = Vec::with_capacity(COUNT);
                for i in 0..COUNT {
                    let payload = (i as u32).to_le_bytes().to_vec();
                    let ticket = client.publish_nowait("bench", payload).await;
                    tickets.push(ticket.expect("queued"));
                }
                for ticket in tickets {
                    ticket.await.expect("acknowledged");
                }
                for i in 0..COUNT {
                    let message = messages.next().await;
                    let expected = (i as u32).to_le_bytes();
                    assert_eq!(&message.payload[..], expected, "message {i}");
                }
                messages.assert_quiet().await;
            });
        }

        #[test]
        fn clones_publish_concurrently() {
            run::<R>(async {
                let server = serve::<R>(|_| ());
                let client = connect(&tcp(&server)).await;
                let mut messages = Inbox::<R>::new(client.take_messages());
                client.subscribe("t/#").await.expect("subscribed");
                let mut tasks = Vec::new();
                for task in 0..4 {
                    let client = client.clone();
                    tasks.push(R::spawn(async move {
                        for i in 0..100 {
                            client
                                .publish(&format!("t/{task}"), format!("{i}"))
                                .await
                                .expect("published");
                        }
                    }));
                }
                for task in tasks {
                    task.await;
                }
                let mut next_of = [0_u32; 4];
                for _ in 0..400 {
                    let message = messages.next().await;
                    let topic = message.topic_str().expect("utf-8 topic");
                    let task: usize = topic[2..].parse().expect("task number");
                    let i: u32 = std::str::from_utf8(&message.payload)
                        .expect("utf-8")
                        .parse()
                        .expect("number");
                    assert_eq!(i, next_of[task], "per-publisher order");
                    next_of[task] += 1;
                }
            });
        }

        #[test]
        fn a_clone_works_from_another_thread() {
            run::<R>(async {
                let server = serve::<R>(|_| ());
                let client = connect(&tcp(&server)).await;
                let mut messages = Inbox::<R>::new(client.take_messages());
                client.subscribe("x/#").await.expect("subscribed");
                // The session's tasks stay on this thread; the clone talks
                // to them from a second thread with a runtime of its own.
                let clone = client.clone();
                let published = on_thread(move || {
                    R::block_on(async move {
                        for i in 0..10 {
                            clone.publish("x/thread", format!("{i}")).await?;
                        }
                        Ok::<_, ClientError>(())
                    })
                });
                published.await.expect("published from the other thread");
                for i in 0..10 {
                    let message = messages.next().await;
                    assert_eq!(message.payload, format!("{i}").into_bytes());
                }
            });
        }

        #[test]
        fn idle_client_stays_connected_thanks_to_keepalive() {
            run::<R>(async {
                let server = serve::<R>(|spec| spec.limits.timeout = Duration::from_secs(1));
                let options = ClientOptions {
                    timeout: Duration::from_secs(1),
                    ..ClientOptions::default()
                };
                let client = connect_with(&tcp(&server), options).await;
                let mut messages = Inbox::<R>::new(client.take_messages());
                client.subscribe("k").await.expect("subscribed");
                R::sleep(Duration::from_secs(3)).await;
                client.publish("k", "alive").await.expect("still connected");
                let message = messages.next().await;
                assert_eq!(&message.payload[..], b"alive");
            });
        }

        #[test]
        fn slow_reader_is_not_mistaken_for_a_silent_server() {
            run::<R>(async {
                let server = serve::<R>(|_| ());
                // A one-message channel: the data task waits on this test
                // while it sleeps far beyond the one-second silence limit.
                let options = ClientOptions {
                    timeout: Duration::from_secs(1),
                    queue: 1,
                    ..ClientOptions::default()
                };
                let client = connect_with(&tcp(&server), options).await;
                let mut messages = Inbox::<R>::new(client.take_messages());
                client.subscribe("slow").await.expect("subscribed");
                for i in 0..3 {
                    let sent = client.publish("slow", format!("{i}")).await;
                    sent.expect("published");
                }
                R::sleep(Duration::from_secs(3)).await;
                for i in 0..3 {
                    let message = messages.next().await;
                    assert_eq!(message.payload, format!("{i}").into_bytes());
                }
                R::sleep(Duration::from_millis(1500)).await;
                client.publish("slow", "later").await.expect("published");
                assert_eq!(&messages.next().await.payload[..], b"later");
            });
        }

        #[test]
        fn unix_socket_session() {
            run::<R>(async {
                let (_dir, path) = socket_path();
                let server = serve::<R>(|spec| spec.unix.push(path.clone()));
                let addr = path.to_str().expect("utf-8 path");
                // Over a Unix socket the password is not checked.
                let client = connect_with(addr, login("nobody", "wrong")).await;
                let mut messages = Inbox::<R>::new(client.take_messages());
                client.subscribe("u").await.expect("subscribed");
                client.publish("u", "over unix").await.expect("published");
                assert_eq!(&messages.next().await.payload[..], b"over unix");
                client.bye().await.expect("bye");
                drop(server);
            });
        }

        #[test]
        fn dropping_every_handle_ends_the_session() {
            run::<R>(async {
                let server = serve::<R>(|_| ());
                let client = connect(&tcp(&server)).await;
                let mut messages = Inbox::<R>::new(client.take_messages());
                let clone = client.clone();
                drop(client);
                clone
                    .subscribe("d")
                    .await
                    .expect("a clone keeps the session");
                drop(clone);
                messages.assert_ends().await;
            });
        }

        #[test]
        fn publish_only_client_has_no_messages() {
            run::<R>(async {
                let server = serve::<R>(|_| ());
                let options = ClientOptions {
                    data_socket: false,
                    ..ClientOptions::default()
                };
                let client = connect_with(&tcp(&server), options).await;
                assert!(client.take_messages().is_none());
                client.publish("p", "x").await.expect("published");
            });
        }

        #[test]
        fn invalid_topic_is_refused_and_session_survives() {
            run::<R>(async {
                let server = serve::<R>(|_| ());
                let client = connect(&tcp(&server)).await;
                let err = client.publish("a/#", "x").await.expect_err("wildcard");
                assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
                client.publish("a/b", "x").await.expect("still usable");
            });
        }

        #[test]
        fn requests_after_bye_fail() {
            run::<R>(async {
                let server = serve::<R>(|_| ());
                let client = connect(&tcp(&server)).await;
                let other = client.clone();
                client.bye().await.expect("bye");
                let err = other.publish("a", "x").await.expect_err("closed");
                assert!(
                    matches!(err, ClientError::Disconnected(_) | ClientError::Protocol(_)),
                    "{err:?}"
                );
            });
        }

        #[test]
        fn connection_refused_names_the_target() {
            run::<R>(async {
                // Bind then drop a listener to find a port nobody listens on.
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr").to_string();
                drop(listener);
                let err = Client::connect(&addr, ClientOptions::default())
                    .await
                    .expect_err("refused");
                assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
                assert!(err.to_string().contains(&addr), "{err}");
            });
        }
    };
}
