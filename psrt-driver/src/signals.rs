//! The daemon's signals, handled the same on every runtime: a
//! `signal-hook` thread turns SIGHUP into a reload and SIGTERM or SIGINT
//! into the graceful stop. [`serve`] is the whole of a runtime's
//! `serve(spec, on_bound)` but its own bind and run.

use std::io;
use std::ops::Deref;
use std::thread::JoinHandle;

use psrt_proto::spec::ServerSpec;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::bind::BoundAddrs;
use crate::runtime::Runtime;
use crate::server::{Server, ServerHandle};

/// Catches the signals from before the bind, so a SIGTERM during start-up
/// still means a graceful stop; runs `bind`, then `on_bound` (write the
/// pid file there), then `run` until the server has stopped and drained.
pub fn serve<R: Runtime, S: Deref<Target = Server<R>>>(
    spec: ServerSpec,
    on_bound: impl FnOnce(&BoundAddrs),
    bind: impl FnOnce(ServerSpec) -> io::Result<S>,
    run: impl FnOnce(S) -> io::Result<()>,
) -> io::Result<()> {
    let signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let server = bind(spec)?;
    on_bound(server.addrs());
    let _watch = SignalThread::start(signals, server.handle())?;
    run(server)
}

/// The thread that acts on signals; closed and joined on drop.
struct SignalThread {
    signals: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalThread {
    fn start<R: Runtime>(mut signals: Signals, handle: ServerHandle<R>) -> io::Result<Self> {
        let closer = signals.handle();
        let thread = std::thread::Builder::new()
            .name("psrtd-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        tracing::info!(
                            "SIGHUP: reloading passwords, ACL, keys and TLS certificate"
                        );
                        let _ = handle.reload_blocking();
                    } else {
                        handle.stop();
                        return;
                    }
                }
            })?;
        Ok(Self {
            signals: closer,
            thread: Some(thread),
        })
    }
}

impl Drop for SignalThread {
    fn drop(&mut self) {
        self.signals.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
