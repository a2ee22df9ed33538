//! kill -9 of a client process: in the middle of a PUBLISH frame (its
//! session, subscription and half frame vanish, nothing half-published is
//! delivered), and of a process holding only a session's data socket (the
//! control session lives on and binds a new data socket with its token).
//!
//! The client process is this test binary run again with
//! `PSRT_HOSTILE_CHILD` set: it runs [`child_client`] only, prints
//! `HOSTILE-READY` and sleeps until killed.

mod daemon_support;
mod hostile_support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hostile_support::{Broker, Control, DataSocket, OK, Opts, figure, poll_for};
use nix::sys::signal::Signal;

const CHILD_ENV: &str = "PSRT_HOSTILE_CHILD";
const ADDR_ENV: &str = "PSRT_HOSTILE_ADDR";
const TOKEN_ENV: &str = "PSRT_HOSTILE_TOKEN";
const READY: &str = "HOSTILE-READY";

/// The child's part; does nothing in a normal test run.
#[test]
fn child_client() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let addr: SocketAddr = std::env::var(ADDR_ENV)
        .expect("addr")
        .parse()
        .expect("addr");
    let _keep = match mode.as_str() {
        "mid-frame" => {
            let mut control = Control::login(addr, "", "").expect("child login");
            let data = control.data_socket(addr);
            assert_eq!(control.subscribe("killed/#"), OK);
            let mut frame = vec![0x01, 0x7F];
            frame.extend_from_slice(&1000u32.to_le_bytes());
            frame.extend_from_slice(b"victim/half\x00only-part-of-the-payload");
            control.stream.write_all(&frame).expect("half frame");
            (Some(control), Some(data))
        }
        _ => {
            let hex = std::env::var(TOKEN_ENV).expect("token");
            let token: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
                .collect();
            let token: [u8; 32] = token.try_into().expect("32 bytes");
            (
                None,
                Some(DataSocket::open(addr, &token).expect("child data socket")),
            )
        }
    };
    println!("{READY}");
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_secs(60));
}

/// Starts the child in `mode` and waits until it is ready.
fn spawn_child(mode: &str, addr: SocketAddr, token: Option<&[u8; 32]>) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", "child_client", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .env(ADDR_ENV, addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(token) = token {
        let hex: String = token.iter().map(|b| format!("{b:02x}")).collect();
        command.env(TOKEN_ENV, hex);
    }
    let mut child = command.spawn().expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(READY));
        let _ = ready_tx.send(ready);
    });
    let ready = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or(false);
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        panic!("child client never got ready");
    }
    child
}

/// SIGKILL to the child (by its PID) and reap it.
fn kill9(mut child: Child) -> Instant {
    daemon_support::signal_pid(child.id(), Signal::SIGKILL);
    let at = Instant::now();
    child.wait().expect("reap child");
    at
}

#[test]
fn kill_9_mid_frame_leaves_no_session_and_no_half_message() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let broker = Broker::start("kill-mid-frame", &Opts::default());
    let mut observer = Control::login(broker.tcp, "", "").expect("login");
    let mut data = observer.data_socket(broker.tcp);
    assert_eq!(observer.subscribe("#"), OK);
    let child = spawn_child("mid-frame", broker.tcp, None);
    assert!(broker.wait_clients(2), "child session missing");
    assert_eq!(broker.subscription_count(), 2);
    let killed = kill9(child);
    assert!(broker.wait_clients(1), "killed client's session kept");
    let cleaned = killed.elapsed();
    assert_eq!(
        broker.subscription_count(),
        1,
        "killed client's subscription kept"
    );
    assert_eq!(observer.publish("marker/after", b"m"), OK);
    let (topic, _) = data.next_message().expect("marker");
    assert_eq!(topic, "marker/after", "a half frame was delivered");
    broker.assert_serving("after kill -9 mid-frame");
    figure(
        "kill9",
        format!(
            "mid_frame session_gone_after={}ms half_message_delivered=no",
            cleaned.as_millis()
        ),
    );
}

#[test]
fn kill_9_of_the_data_socket_only_keeps_the_session() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let broker = Broker::start("kill-data", &Opts::default());
    let mut control = Control::login(broker.tcp, "", "").expect("login");
    assert_eq!(control.subscribe("kept/#"), OK);
    let child = spawn_child("data-only", broker.tcp, Some(&control.token));
    assert_eq!(
        DataSocket::open(broker.tcp, &control.token).err(),
        Some(hostile_support::ERR),
        "the child's data socket is not bound"
    );
    let killed = kill9(child);
    assert_eq!(control.publish("kept/lost-while-unbound", b"x"), OK);
    let mut rebound = None;
    assert!(
        poll_for(Duration::from_secs(5), || {
            rebound = DataSocket::open(broker.tcp, &control.token).ok();
            rebound.is_some()
        }),
        "the token could not bind a new data socket"
    );
    let rebind_after = killed.elapsed();
    let mut data = rebound.expect("rebound");
    assert_eq!(control.nop().expect("control alive"), OK);
    assert_eq!(control.publish("kept/after", b"y"), OK);
    assert_eq!(data.next_message().expect("message").0, "kept/after");
    assert_eq!(broker.client_count(), 1);
    figure(
        "kill9",
        format!(
            "data_only control_kept=yes rebind_after={}ms",
            rebind_after.as_millis()
        ),
    );
}
