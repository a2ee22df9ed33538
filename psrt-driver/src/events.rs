//! Logging the broker's events, and reloading the access rules: the
//! parts of a driver that do log I/O or read files.

use psrt_proto::broker::{Broker, BrokerEvent, EventLevel};

use crate::core::ServerCore;

/// Runs `f` on the broker under `core`'s lock, takes the events it raised
/// out with it, and logs them once the lock is released, so log I/O
/// (syslog) never holds up the other sockets.
pub fn with_broker_logged<R>(core: &ServerCore, f: impl FnOnce(&mut Broker) -> R) -> R {
    let (result, events) = {
        let mut broker = core.lock();
        let result = f(&mut broker);
        let events: Vec<BrokerEvent> = std::iter::from_fn(|| broker.poll_event()).collect();
        (result, events)
    };
    events.iter().for_each(log_event);
    result
}

fn log_event(event: &BrokerEvent) {
    match event.level() {
        EventLevel::Info => tracing::info!("{event}"),
        EventLevel::Warn => tracing::warn!("{event}"),
    }
}

/// Re-reads the access rules with the server's
/// [`ServerCore::reloader`], puts them in force and logs the outcome; `Ok`
/// at once when there is nothing to re-read. Blocks while the files are
/// read: call it off the event loop. On error the old rules stay and the
/// message is returned.
pub fn reload(core: &ServerCore) -> Result<(), String> {
    let Some(reload) = core.reloader() else {
        return Ok(());
    };
    let reloaded = core.reload(reload());
    match &reloaded {
        Ok(()) => tracing::info!("access rules reloaded"),
        Err(message) => tracing::error!(%message, "reload failed; keeping the rules in force"),
    }
    reloaded
}
