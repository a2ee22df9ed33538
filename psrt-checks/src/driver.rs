//! Server-driver helpers that every runtime shares but psrt-proto must not
//! hold, because they log, touch the file system or block: the rest of
//! the runtime-independent server lives in
//! [`psrt_proto::server_support`].

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;

use psrt_proto::broker::{Broker, BrokerEvent, EventLevel};
use psrt_proto::server_support::ServerCore;

/// Mode of a Unix-socket file: owner and group may connect.
const UNIX_SOCKET_MODE: u32 = 0o770;

/// Logs and drops the broker's pending events, each at its own level.
/// Call with the broker's lock held, after every call into it.
pub fn log_events(broker: &mut Broker) {
    while let Some(event) = broker.poll_event() {
        log_event(&event);
    }
}

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

/// Binds a non-blocking Unix-socket listener at `path` with mode 0770.
/// A socket file left there by a crashed run is replaced (it would make
/// the bind fail); any other kind of file is left alone and the bind
/// fails.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(UNIX_SOCKET_MODE))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A path under the temp directory unique to this test and process.
    fn temp_path(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("psrt-checks-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn bind_unix_replaces_a_stale_socket_and_restricts_the_mode() {
        let path = temp_path("stale.sock");
        drop(UnixListener::bind(&path).expect("first bind"));
        assert!(
            UnixListener::bind(&path).is_err(),
            "the stale file blocks a plain bind"
        );
        let listener = bind_unix(&path).expect("bind over the stale socket");
        let mode = std::fs::metadata(&path)
            .expect("socket file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, UNIX_SOCKET_MODE);
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(listener);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn bind_unix_leaves_other_files_alone() {
        let path = temp_path("regular");
        std::fs::write(&path, b"keep me").expect("regular file");
        assert!(bind_unix(&path).is_err());
        assert_eq!(std::fs::read(&path).expect("still there"), b"keep me");
        let _ = std::fs::remove_file(&path);
    }
}
