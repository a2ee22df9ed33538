//! `psrt-cli -m`: publish one message to every topic, over TCP (all
//! topics pipelined) or UDP.

use std::net::SocketAddr;

use bytes::Bytes;
use psrt_proto::udp::{NONCE_LEN, TAG_LEN};
use psrt_proto::wire::status;
use psrt_runtime_tokio::client::{DEFAULT_PORT, UdpAuth, UdpClient};

use super::args::Args;
use super::{CliError, connect, connect_options};

/// Publishes over a publish-only session; every topic's publish is in
/// flight at once and each answer is checked.
pub async fn publish_tcp(args: &Args, payload: Bytes) -> Result<(), CliError> {
    let mut options = connect_options(args)?;
    options.data_socket = false;
    let client = connect(args, options).await?;
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
pub async fn publish_udp(args: &Args, payload: Bytes) -> Result<(), CliError> {
    for topic in &args.topics {
        let len = datagram_len(args, topic, payload.len());
        if len > args.udp_frame_size {
            return Err(CliError::UdpTooLarge {
                topic: topic.clone(),
                len,
                max: args.udp_frame_size,
            });
        }
    }
    let server = resolve(&args.target).await?;
    let auth = match args.udp_key {
        Some(key) => UdpAuth::Key {
            key: key.0,
            cipher: args.udp_cipher.into(),
        },
        None => UdpAuth::Plain(args.password.clone()),
    };
    let mut client = UdpClient::new(server, &args.user, auth).await?;
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

/// Bytes of the datagram publishing `payload_len` bytes to `topic`: the
/// envelope (`EE AA`, version, ENC, login, `00`), then the password and
/// `00` or, with `--udp-key`, the nonce and tag around the body (OP,
/// priority, topic, `00`, payload).
fn datagram_len(args: &Args, topic: &str, payload_len: usize) -> usize {
    let envelope = 5 + args.user.len() + 1;
    let body = 2 + topic.len() + 1 + payload_len;
    let auth = match args.udp_key {
        Some(_) => NONCE_LEN + TAG_LEN,
        None => args.password.len() + 1,
    };
    envelope + auth + body
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

#[cfg(test)]
mod tests {
    use clap::Parser;
    use psrt_proto::udp::{Cipher, encode_plain, encode_sealed};

    use super::*;

    #[test]
    fn datagram_length_matches_the_encoders() {
        let plain = Args::try_parse_from([
            "psrt-cli", "h:1", "--udp", "-u", "bob", "-p", "pw", "-t", "a/b", "-m", "x",
        ])
        .unwrap();
        let mut out = Vec::new();
        encode_plain(&mut out, "bob", b"pw", true, 0, "a/b", &[7; 100]).unwrap();
        assert_eq!(datagram_len(&plain, "a/b", 100), out.len());

        let key = "11".repeat(32);
        let sealed = Args::try_parse_from([
            "psrt-cli",
            "h:1",
            "--udp",
            "-u",
            "bob",
            "--udp-key",
            &key,
            "-t",
            "a/b",
            "-m",
            "x",
        ])
        .unwrap();
        out.clear();
        let nonce = [0; NONCE_LEN];
        encode_sealed(
            &mut out,
            "bob",
            &[0x11; 32],
            Cipher::Aes256Gcm,
            nonce,
            false,
            0,
            "a/b",
            &[7; 100],
        )
        .unwrap();
        assert_eq!(datagram_len(&sealed, "a/b", 100), out.len());
    }
}
