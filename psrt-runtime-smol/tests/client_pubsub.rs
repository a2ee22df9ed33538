//! The async client against the in-process smol server: publish,
//! subscribe, pipelining, keep-alive, Unix sockets, publish-only sessions.

mod client_support;

use std::time::Duration;

use client_support::*;
use psrt_runtime_smol::client::{Client, ClientError, ClientOptions};

#[test]
fn publish_reaches_a_subscriber() {
    run(async {
        let server = start(open_spec()).await;
        let subscriber = connect(&server.tcp()).await;
        let messages = subscriber.take_messages().expect("receiver");
        assert!(subscriber.take_messages().is_none(), "taken only once");
        subscriber
            .subscribe("room/+/temp")
            .await
            .expect("subscribed");
        let publisher = connect(&server.tcp()).await;
        publisher
            .publish("room/1/temp", "20.5")
            .await
            .expect("published");
        publisher
            .publish("room/1/humidity", "40")
            .await
            .expect("published");
        let message = next(&messages).await;
        assert_eq!(message.topic_str(), Some("room/1/temp"));
        assert_eq!(&message.payload[..], b"20.5");
        assert_quiet(&messages).await;
        publisher.bye().await.expect("bye answered");
        subscriber.bye().await.expect("bye answered");
        assert_ends(&messages).await;
    });
}

#[test]
fn bulk_subscribe_and_unsubscribe() {
    run(async {
        let server = start(open_spec()).await;
        let client = connect(&server.tcp()).await;
        let messages = client.take_messages().expect("receiver");
        client
            .subscribe_bulk(&["a/1", "b/#", "c"])
            .await
            .expect("subscribed");
        for topic in ["a/1", "b/x/y", "c", "d"] {
            client.publish(topic, topic).await.expect("published");
        }
        for topic in ["a/1", "b/x/y", "c"] {
            let message = next(&messages).await;
            assert_eq!(message.topic_str(), Some(topic));
            assert_eq!(&message.payload[..], topic.as_bytes());
        }
        assert_quiet(&messages).await;
        client
            .unsubscribe_bulk(&["a/1", "b/#"])
            .await
            .expect("unsubscribed");
        client.publish("a/1", "x").await.expect("published");
        client.publish("c", "still").await.expect("published");
        let message = next(&messages).await;
        assert_eq!(message.topic_str(), Some("c"));
        assert_eq!(&message.payload[..], b"still");
        client.unsubscribe("c").await.expect("unsubscribed");
        client.publish("c", "gone").await.expect("published");
        assert_quiet(&messages).await;
    });
}

#[test]
fn ten_thousand_pipelined_publishes_arrive_in_order() {
    const COUNT: usize = 10_000;
    run(async {
        let mut spec = open_spec();
        spec.limits.data_queue = COUNT * 2;
        let server = start(spec).await;
        let options = ClientOptions {
            queue: COUNT,
            ..ClientOptions::default()
        };
        let client = Client::connect(&server.tcp(), options)
            .await
            .expect("connects");
        let messages = client.take_messages().expect("receiver");
        client.subscribe("bench").await.expect("subscribed");
        let mut tickets = Vec::with_capacity(COUNT);
        for i in 0..COUNT {
            let payload = (i as u32).to_le_bytes().to_vec();
            tickets.push(
                client
                    .publish_nowait("bench", payload)
                    .await
                    .expect("queued"),
            );
        }
        for ticket in tickets {
            ticket.await.expect("acknowledged");
        }
        for i in 0..COUNT {
            let message = next(&messages).await;
            assert_eq!(
                &message.payload[..],
                (i as u32).to_le_bytes(),
                "message {i}"
            );
        }
        assert_quiet(&messages).await;
    });
}

#[test]
fn clones_publish_concurrently() {
    run(async {
        let server = start(open_spec()).await;
        let client = connect(&server.tcp()).await;
        let messages = client.take_messages().expect("receiver");
        client.subscribe("t/#").await.expect("subscribed");
        let mut tasks = Vec::new();
        for task in 0..4 {
            let client = client.clone();
            tasks.push(smol::spawn(async move {
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
            let message = next(&messages).await;
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
fn idle_client_stays_connected_thanks_to_keepalive() {
    run(async {
        let mut spec = open_spec();
        spec.limits.timeout = Duration::from_secs(1);
        let server = start(spec).await;
        let options = ClientOptions {
            timeout: Duration::from_secs(1),
            ..ClientOptions::default()
        };
        let client = Client::connect(&server.tcp(), options)
            .await
            .expect("connects");
        let messages = client.take_messages().expect("receiver");
        client.subscribe("k").await.expect("subscribed");
        smol::Timer::after(Duration::from_secs(3)).await;
        client.publish("k", "alive").await.expect("still connected");
        let message = next(&messages).await;
        assert_eq!(&message.payload[..], b"alive");
    });
}

#[test]
fn unix_socket_session() {
    run(async {
        let path = socket_path("pubsub");
        let mut spec = open_spec();
        spec.unix.push(path.clone());
        let server = start(spec).await;
        let addr = path.to_str().expect("utf-8 path");
        // Over a Unix socket the password is not checked.
        let client = connect_as(addr, "nobody", "wrong").await;
        let messages = client.take_messages().expect("receiver");
        client.subscribe("u").await.expect("subscribed");
        client.publish("u", "over unix").await.expect("published");
        assert_eq!(&next(&messages).await.payload[..], b"over unix");
        client.bye().await.expect("bye");
        drop(server);
    });
}

#[test]
fn dropping_every_handle_ends_the_session() {
    run(async {
        let server = start(open_spec()).await;
        let client = connect(&server.tcp()).await;
        let messages = client.take_messages().expect("receiver");
        let clone = client.clone();
        drop(client);
        clone
            .subscribe("d")
            .await
            .expect("a clone keeps the session");
        drop(clone);
        assert_ends(&messages).await;
    });
}

#[test]
fn publish_only_client_has_no_messages() {
    run(async {
        let server = start(open_spec()).await;
        let options = ClientOptions {
            data_socket: false,
            ..ClientOptions::default()
        };
        let client = Client::connect(&server.tcp(), options)
            .await
            .expect("connects");
        assert!(client.take_messages().is_none());
        client.publish("p", "x").await.expect("published");
    });
}

#[test]
fn invalid_topic_is_refused_and_session_survives() {
    run(async {
        let server = start(open_spec()).await;
        let client = connect(&server.tcp()).await;
        let err = client.publish("a/#", "x").await.expect_err("wildcard");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
        client.publish("a/b", "x").await.expect("still usable");
    });
}

#[test]
fn requests_after_bye_fail() {
    run(async {
        let server = start(open_spec()).await;
        let client = connect(&server.tcp()).await;
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
    run(async {
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
