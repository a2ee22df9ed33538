//! Telling whoever started the daemon whether it came up: the launching
//! process of `psrtd -d`, and systemd (`Type=notify`).
//!
//! With `-d` the process forks ([`daemonize`]); the launching process
//! then waits on a pipe until the daemon has bound every listener (it
//! writes [`READY`]) or failed (it writes the error), and exits 0 or 1
//! with the error on its stderr, so a boot script sees what happened.
//! If the daemon dies before either, the pipe closes empty and the
//! launcher fails too. Under systemd the same moments send `READY=1` on
//! `$NOTIFY_SOCKET` (nothing is sent without one).

use std::io::{PipeWriter, Read, Write};
use std::process::ExitCode;

/// What the daemon writes on the pipe once every listener is bound.
const READY: &str = "ready\n";

/// Where the outcome of the start goes.
#[derive(Debug, Default)]
pub struct Startup {
    /// The launching process of `-d`, until told.
    launcher: Option<PipeWriter>,
}

impl Startup {
    /// Every listener is bound: the launcher exits 0, systemd marks the
    /// service started.
    pub fn ready(&mut self) {
        if let Some(mut pipe) = self.launcher.take() {
            let _ = pipe.write_all(READY.as_bytes());
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }

    /// The start failed with `message`: the launcher prints it and exits 1.
    pub fn failed(&mut self, message: &str) {
        if let Some(mut pipe) = self.launcher.take() {
            let _ = pipe.write_all(message.as_bytes());
        }
    }
}

/// Tells systemd `states` when it supervises this process; does nothing
/// otherwise (no `$NOTIFY_SOCKET`).
pub fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(false, states) {
        tracing::warn!(%err, "cannot notify systemd");
    }
}

/// The process after [`daemonize`].
#[derive(Debug)]
pub enum Role {
    /// The daemon, in the background: report the start to [`Startup`].
    Daemon(Startup),
    /// The launching process: exit with this status (the daemon's start
    /// outcome, already printed).
    Launcher(ExitCode),
}

/// Forks to the background, before any runtime thread exists as fork
/// requires. The daemon continues in a new session with `/` as working
/// directory (every config path is absolute by now) and standard streams
/// on /dev/null; the launcher waits for its start outcome.
pub fn daemonize() -> Result<Role, String> {
    let (outcome, pipe) =
        std::io::pipe().map_err(|err| format!("cannot run in the background: {err}"))?;
    match daemonize::Daemonize::new().execute() {
        daemonize::Outcome::Parent(Ok(_)) => {
            drop(pipe);
            Ok(Role::Launcher(await_start(outcome)))
        }
        daemonize::Outcome::Parent(Err(err)) => Err(format!("cannot run in the background: {err}")),
        daemonize::Outcome::Child(result) => {
            drop(outcome);
            let mut startup = Startup {
                launcher: Some(pipe),
            };
            match result {
                Ok(_) => Ok(Role::Daemon(startup)),
                Err(err) => {
                    let message = format!("cannot run in the background: {err}");
                    startup.failed(&message);
                    Err(message)
                }
            }
        }
    }
}

/// Reads the daemon's start outcome to the end of the pipe, prints an
/// error, and returns the launcher's exit status.
fn await_start(mut outcome: impl Read) -> ExitCode {
    let mut text = String::new();
    let _ = outcome.read_to_string(&mut text);
    if text == READY {
        return ExitCode::SUCCESS;
    }
    if text.is_empty() {
        text = String::from("the daemon ended during start-up (its log is in syslog)");
    }
    for line in text.lines() {
        eprintln!("psrtd: {line}");
    }
    ExitCode::FAILURE
}
