//! `psrt-cli -m`: publish one message to every topic, over TCP (all
//! topics pipelined) or UDP.

use std::net::SocketAddr;

use psrt_proto::wire::status;
use psrt_runtime_tokio::client::{Client, DEFAULT_PORT, UdpAuth, UdpClient};

use super::args::{Args, MessageArg};
use super::{CliError, connect_options};

/// Publishes over a publish-only session; every topic's publish is in
/// flight at once and each answer is checked.
pub async fn publish_tcp(args: &Args, message: &MessageArg) -> Result<(), CliError> {
    let mut options = connect_options(args)?;
    options.data_socket = false;
    let client = Client::connect(&args.target, options).await?;
    let payload = message.payload();
    let mut tickets = Vec::with_capacity(args.topics.len());
    for topic in &args.topics {
        let ticket = client.publish_nowait(topic, payload.clone()).await;
        tickets.push((topic, ticket));
    }
    for (topic, ticket) in tickets {
        let answer = match ticket {
            Ok(ticket) => ticket.await,
            Err(err) => Err(err),
        };
        answer.map_err(|source| CliError::Publish {
            topic: topic.clone(),
            source,
        })?;
    }
    client.bye().await?;
    Ok(())
}

/// Publishes one datagram per topic; with `--udp-ack` waits for each ack
/// and prints `OK`, failing on any other status.
pub async fn publish_udp(args: &Args, message: &MessageArg) -> Result<(), CliError> {
    let server = resolve(&args.target).await?;
    let auth = match args.udp_key {
        Some(key) => UdpAuth::Key {
            key: key.0,
            cipher: args.udp_cipher.into(),
        },
        None => UdpAuth::Plain(args.password.clone()),
    };
    let mut client = UdpClient::new(server, &args.user, auth).await?;
    let payload = message.payload();
    for topic in &args.topics {
        if !args.udp_ack {
            client.publish(topic, &payload).await?;
            continue;
        }
        let code = client.publish_acked(topic, &payload, args.timeout).await?;
        if code != status::OK {
            return Err(CliError::UdpRefused {
                topic: topic.clone(),
                status: code,
            });
        }
        println!("OK");
    }
    Ok(())
}

/// The UDP address of `HOST:PORT` (or `HOST`, on the default port).
async fn resolve(target: &str) -> Result<SocketAddr, CliError> {
    if target.contains('/') {
        return Err(CliError::UdpPath(target.to_owned()));
    }
    let found = match tokio::net::lookup_host(target).await {
        Ok(mut found) => found.next(),
        Err(_) => tokio::net::lookup_host((target, DEFAULT_PORT))
            .await
            .map_err(|source| CliError::Resolve {
                target: target.to_owned(),
                source,
            })?
            .next(),
    };
    found.ok_or_else(|| CliError::NoAddress(target.to_owned()))
}
