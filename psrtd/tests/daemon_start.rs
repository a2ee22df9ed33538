//! An honest start: `psrtd -d` fails with the error on stderr when the
//! daemon cannot bind; a second daemon refuses a pid file or a Unix socket
//! that a running one holds, and leaves them alone; `--test-config`
//! reports every problem in one run, a pid file it could not write, and
//! the warnings of an exposed config; systemd hears READY=1 once every
//! listener is bound, and RELOADING=1 then READY=1 around a reload.

mod daemon_support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Child, Stdio};

use daemon_support::{
    Daemon, TempDir, WAIT, bcrypt_hash, free_tcp_port, login, poll, psrtd, run_bounded, signal_pid,
};
use nix::sys::signal::Signal;

/// `psrtd ARGS -c config`, run to completion: (success, stdout, stderr).
fn run_psrtd(args: &[&str], config: &Path) -> (bool, String, String) {
    let output = run_bounded(psrtd().args(args).arg("-c").arg(config));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn daemonize_reports_a_taken_port_and_exits_non_zero() {
    let dir = TempDir::new("start-taken");
    let taken = TcpListener::bind("127.0.0.1:0").expect("take a port");
    let port = taken.local_addr().expect("addr").port();
    let config = dir.write(
        "config.yml",
        &format!("server:\n  pid_file: psrtd.pid\nproto:\n  bind: 127.0.0.1:{port}\n"),
    );
    let (ok, _, stderr) = run_psrtd(&["-d"], &config);
    assert!(!ok, "psrtd -d succeeded on a taken port; stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("in use"),
        "the launcher does not say why:\n{stderr}"
    );
    assert!(
        !dir.join("psrtd.pid").exists(),
        "a failed start left its pid file"
    );
}

#[test]
fn second_daemon_refuses_a_locked_pid_file() {
    let dir = TempDir::new("start-pid");
    let (first_port, second_port) = (free_tcp_port(), free_tcp_port());
    let first = dir.write(
        "first.yml",
        &format!("server:\n  pid_file: psrtd.pid\nproto:\n  bind: 127.0.0.1:{first_port}\n"),
    );
    let second = dir.write(
        "second.yml",
        &format!("server:\n  pid_file: psrtd.pid\nproto:\n  bind: 127.0.0.1:{second_port}\n"),
    );
    let daemon = Daemon::start(&first, first_port);
    let (ok, _, stderr) = run_psrtd(&[], &second);
    assert!(!ok, "second daemon started; stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("locked by pid {}", daemon.pid())),
        "the holder is not named:\n{stderr}"
    );
    let written = std::fs::read_to_string(dir.join("psrtd.pid")).expect("pid file kept");
    assert_eq!(written.trim(), daemon.pid().to_string());
    let (_stream, token) = login(loopback(first_port), "", "");
    assert!(token.is_some(), "the first daemon no longer serves");
}

#[test]
fn second_daemon_leaves_a_live_unix_socket_alone() {
    let dir = TempDir::new("start-sock");
    let (first_port, second_port) = (free_tcp_port(), free_tcp_port());
    let first = dir.write(
        "first.yml",
        &format!("proto:\n  bind: [127.0.0.1:{first_port}, psrt.sock]\n"),
    );
    let second = dir.write(
        "second.yml",
        &format!("proto:\n  bind: [127.0.0.1:{second_port}, psrt.sock]\n"),
    );
    let _daemon = Daemon::start(&first, first_port);
    let socket = dir.join("psrt.sock");
    let (ok, _, stderr) = run_psrtd(&[], &second);
    assert!(!ok, "second daemon started; stderr:\n{stderr}");
    assert!(
        stderr.contains("psrt.sock") && stderr.contains("running server answers"),
        "the socket is not named:\n{stderr}"
    );
    assert!(
        UnixStream::connect(&socket).is_ok(),
        "the first daemon's Unix socket was taken over or removed"
    );
}

#[test]
fn test_config_refuses_a_pid_file_in_a_missing_folder() {
    let dir = TempDir::new("start-pid-dir");
    let config = dir.write(
        "config.yml",
        "server:\n  pid_file: nowhere/psrtd.pid\nproto:\n  bind: 127.0.0.1:2873\n",
    );
    let (ok, _, stderr) = run_psrtd(&["--test-config"], &config);
    assert!(!ok, "accepted; stderr:\n{stderr}");
    assert!(
        stderr.contains("server.pid_file") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn test_config_reports_every_problem_with_its_key() {
    let dir = TempDir::new("start-all");
    dir.write(
        "passwd",
        &format!("ok:{}\nbad:plaintext\n", bcrypt_hash("x")),
    );
    let config = dir.write(
        "config.yml",
        "server:\n  pid_file: gone/psrtd.pid\nproto:\n  bind: 127.0.0.1:2873\n  \
         tls_cert: missing.crt\n  tls_key: missing.key\n\
         auth:\n  acl: nowhere.yml\n  password_file: passwd\n  key_file: absent.yml\n",
    );
    let (ok, _, stderr) = run_psrtd(&["--test-config"], &config);
    assert!(!ok, "accepted; stderr:\n{stderr}");
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("psrtd: "))
        .collect();
    for (file, key) in [
        ("gone/psrtd.pid", "server.pid_file"),
        ("nowhere.yml", "auth.acl"),
        ("passwd:2", "bad"),
        ("absent.yml", "auth.key_file"),
        ("missing.crt", "proto.tls_cert"),
        ("missing.key", "proto.tls_key"),
    ] {
        assert!(
            problems
                .iter()
                .any(|line| line.contains(file) && line.contains(key)),
            "{file} with {key} not reported in:\n{stderr}"
        );
    }
}

#[test]
fn test_config_warns_about_an_exposed_open_broker() {
    let dir = TempDir::new("start-warn");
    let config = dir.write(
        "config.yml",
        "server:\n  bind_stats: 0.0.0.0:8880\nproto:\n  bind: 0.0.0.0:2873\n",
    );
    let (ok, stdout, stderr) = run_psrtd(&["--test-config"], &config);
    assert!(ok, "refused: {stderr}");
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 2, "{stdout}");
    assert!(
        warnings[0].contains("anonymous") && warnings[0].contains("0.0.0.0:2873"),
        "{stdout}"
    );
    assert!(
        warnings[1].contains("stats page on 0.0.0.0:8880"),
        "{stdout}"
    );

    dir.write("acl.yml", "_: {sub: [\"public/#\"]}\n");
    let closed = dir.write(
        "closed.yml",
        "server:\n  bind_stats: 127.0.0.1:8880\nproto:\n  bind: 0.0.0.0:2873\n\
         auth:\n  acl: acl.yml\n",
    );
    let (ok, stdout, stderr) = run_psrtd(&["--test-config"], &closed);
    assert!(ok, "refused: {stderr}");
    assert!(!stdout.contains("warning:"), "{stdout}");
}

/// A child killed (if still running) and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// The next notification psrtd sent on `socket`.
fn notification(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let len = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

#[test]
fn systemd_hears_ready_once_bound_and_reloading_around_a_reload() {
    let dir = TempDir::new("start-notify");
    let port = free_tcp_port();
    let config = dir.write("config.yml", &format!("proto:\n  bind: 127.0.0.1:{port}\n"));
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut daemon = Reaped(
        psrtd()
            .arg("-c")
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn psrtd"),
    );
    let ready = notification(&socket);
    assert!(ready.contains("READY=1"), "{ready:?}");
    TcpStream::connect(loopback(port)).expect("listening once READY=1 is sent");

    signal_pid(daemon.0.id(), Signal::SIGHUP);
    let reloading = notification(&socket);
    assert!(reloading.contains("RELOADING=1"), "{reloading:?}");
    let reloaded = notification(&socket);
    assert!(reloaded.contains("READY=1"), "{reloaded:?}");

    signal_pid(daemon.0.id(), Signal::SIGTERM);
    assert!(
        poll(|| matches!(daemon.0.try_wait(), Ok(Some(_)))),
        "psrtd did not stop"
    );
}
