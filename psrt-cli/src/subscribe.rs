//! `psrt-cli` without `-m`: subscribe and print every message until
//! interrupted or the server ends the session.

use std::io::Write;

use super::args::Args;
use super::output::{format_message, format_verbose};
use super::{CliError, connect, connect_options, subscribe_each};

/// Topic subscribed to when `-t` is not given.
const ALL_TOPICS: &str = "#";

/// Subscribes to the topics of `-t` (default `#`) one by one, so a
/// refusal names the topic, and prints each message (`-v`: on one line).
/// Ctrl-C ends the session cleanly; the server closing it is an error,
/// unless the target lists several cluster nodes (`node1:2873,node2:2873`):
/// then the client library fails over to the next node that answers and
/// subscribes again there (said once on stderr), and only a failover that
/// gives up ends the command with an error.
pub async fn subscribe(args: &Args) -> Result<(), CliError> {
    let topics: Vec<&str> = if args.topics.is_empty() {
        vec![ALL_TOPICS]
    } else {
        args.topics.iter().map(String::as_str).collect()
    };
    let client = connect(args, connect_options(args)?).await?;
    let messages = client.take_messages().ok_or(CliError::StreamEnded)?;
    subscribe_each(&client, &topics).await?;
    let mut stdout = std::io::stdout().lock();
    let mut failovers = 0;
    loop {
        let message = tokio::select! {
            message = messages.recv() => message,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Ok(message) = message else {
            return Err(CliError::StreamEnded);
        };
        if client.failovers() != failovers {
            failovers = client.failovers();
            eprintln!("psrt-cli: lost the node; failed over to {}", client.node());
        }
        let topic = String::from_utf8_lossy(&message.topic);
        let line = if args.verbose {
            format_verbose(&topic, &message.payload)
        } else {
            format_message(&topic, &message.payload)
        };
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(CliError::Output)?;
    }
    drop(stdout);
    client.bye().await?;
    Ok(())
}
