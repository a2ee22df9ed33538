//! `psrtd -d`: the launching process exits 0 at once, the daemon writes its
//! pid file once listening, serves, and removes the pid file on SIGTERM.

mod daemon_support;

use std::net::SocketAddr;

use daemon_support::{TempDir, free_tcp_port, login, poll, psrtd, run_bounded, signal_pid};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// Stops the daemon whose pid was read from its pid file, if a test
/// assertion fails before it is stopped.
struct StopOnDrop(Option<u32>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

fn alive(pid: u32) -> bool {
    signal::kill(Pid::from_raw(pid as i32), None).is_ok()
}

#[test]
fn daemonize_writes_pid_file_serves_and_cleans_up() {
    let dir = TempDir::new("daemon");
    let port = free_tcp_port();
    let pid_file = dir.join("psrtd.pid");
    let config = dir.write(
        "config.yml",
        &format!("server:\n  pid_file: psrtd.pid\nproto:\n  bind: 127.0.0.1:{port}\n"),
    );
    let launcher = run_bounded(psrtd().arg("-d").arg("-c").arg(&config));
    assert!(
        launcher.status.success(),
        "{}",
        String::from_utf8_lossy(&launcher.stderr)
    );
    assert!(poll(|| pid_file.exists()), "no pid file");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("read pid file")
        .trim()
        .parse()
        .expect("pid");
    let mut guard = StopOnDrop(Some(pid));
    assert!(alive(pid));

    let (_stream, token) = login(SocketAddr::from(([127, 0, 0, 1], port)), "", "");
    assert!(token.is_some(), "daemon refused anonymous login");

    signal_pid(pid, Signal::SIGTERM);
    assert!(poll(|| !pid_file.exists()), "pid file not removed");
    assert!(poll(|| !alive(pid)), "daemon still running");
    guard.0 = None;
}
