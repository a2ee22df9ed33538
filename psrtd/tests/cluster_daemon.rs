//! Clustering with the real daemon: `cluster.config` and `--test-config`,
//! a wrong peer password shown in `/status`, a peer killed by PID and
//! restarted heals by itself, SIGHUP re-reads the peer list, and a peer
//! may be a Unix socket path.

mod daemon_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use daemon_support::*;
use nix::sys::signal::Signal;

/// One node's files (see [`cluster_node_files`]), its cluster file listing
/// `peers` as `(port, password)`.
fn node_files(dir: &TempDir, name: &str, port: u16, stats: u16, peers: &[(u16, &str)]) -> PathBuf {
    let peers: String = peers
        .iter()
        .map(|&(peer, password)| peer_entry(peer, password, ""))
        .collect();
    cluster_node_files(dir, name, (port, stats), &peers, "")
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The `cluster.peers` of a node's `/status`.
fn peers(stats: u16) -> Vec<serde_json::Value> {
    let (status, body) = http_get(addr(stats), "/status");
    assert!(status.contains("200"), "{status}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    json["cluster"]["peers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn peer_state(stats: u16) -> String {
    peers(stats)
        .first()
        .and_then(|p| p["state"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// A subscriber to `filter` with its data socket.
struct Subscriber {
    _control: TcpStream,
    data: TcpStream,
}

impl Subscriber {
    fn new(port: u16, filter: &str) -> Subscriber {
        let (mut control, token) = login(addr(port), "", "");
        let token = token.expect("anonymous login");
        let mut data = TcpStream::connect(addr(port)).expect("data socket");
        data.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        data.write_all(&[0xEE, 0xAB, 0x00]).expect("greeting");
        let mut header = [0u8; 4];
        data.read_exact(&mut header).expect("greeting reply");
        data.write_all(&token).expect("token");
        data.write_all(&[5]).expect("timeout byte");
        let mut ok = [0u8; 1];
        data.read_exact(&mut ok).expect("data OK");
        assert_eq!(ok, [OK]);
        let mut frame = vec![0x02];
        frame.extend_from_slice(&u32::try_from(filter.len()).expect("short").to_le_bytes());
        frame.extend_from_slice(filter.as_bytes());
        control.write_all(&frame).expect("subscribe");
        control.read_exact(&mut ok).expect("subscribe reply");
        assert_eq!(ok, [OK]);
        Subscriber {
            _control: control,
            data,
        }
    }

    /// The next pushed payload (beacons skipped).
    fn next(&mut self) -> Vec<u8> {
        loop {
            let mut kind = [0u8; 1];
            self.data.read_exact(&mut kind).expect("pushed frame");
            if kind[0] == 0 {
                continue;
            }
            let mut head = [0u8; 5];
            self.data.read_exact(&mut head).expect("frame head");
            let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; len];
            self.data.read_exact(&mut body).expect("frame body");
            let nul = body.iter().position(|&b| b == 0).expect("separator");
            return body.split_off(nul + 1);
        }
    }
}

#[test]
fn test_config_lists_the_peers_and_names_a_bad_cluster_key() {
    let dir = TempDir::new("cluster-test-config");
    let config = node_files(&dir, "a", 1, 2, &[(3, "secret")]);
    let out = run_bounded(psrtd().arg("--test-config").arg("-c").arg(&config));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("peer: 127.0.0.1:3 as \"repl\""), "{stdout}");
    dir.write("a.cluster.yml", "- path: 127.0.0.1:3\n  timeout: never\n");
    let out = run_bounded(psrtd().arg("--test-config").arg("-c").arg(&config));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("a.cluster.yml:2:"), "{stderr}");
    assert!(stderr.contains("[0].timeout"), "{stderr}");
}

#[test]
fn a_wrong_peer_password_is_reported_in_status() {
    let dir = TempDir::new("cluster-password");
    let (port_a, stats_a, port_b) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let b_config = node_files(&dir, "b", port_b, free_tcp_port(), &[]);
    let _b = Daemon::start(&b_config, port_b);
    let a_config = node_files(&dir, "a", port_a, stats_a, &[(port_b, "wrong")]);
    let a = Daemon::start(&a_config, port_a);
    let refused = poll(|| {
        peers(stats_a).first().is_some_and(|p| {
            p["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("login refused"))
        })
    });
    assert!(refused, "{:?}\n{}", peers(stats_a), a.log());
    assert_ne!(peer_state(stats_a), "up");
    // Retries are not logged one by one.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        a.log().matches("cluster link down").count(),
        1,
        "{}",
        a.log()
    );
}

#[test]
fn a_peer_killed_and_restarted_heals_by_itself() {
    let dir = TempDir::new("cluster-heal");
    let (port_a, stats_a, port_b, stats_b) = (
        free_tcp_port(),
        free_tcp_port(),
        free_tcp_port(),
        free_tcp_port(),
    );
    let a_config = node_files(&dir, "a", port_a, stats_a, &[(port_b, "secret")]);
    let b_config = node_files(&dir, "b", port_b, stats_b, &[(port_a, "secret")]);
    let a = Daemon::start(&a_config, port_a);
    let mut b = Daemon::start(&b_config, port_b);
    assert!(poll(|| peer_state(stats_a) == "up"), "{}", a.log());
    let mut subscriber = Subscriber::new(port_b, "plant/#");
    let (mut publisher, _) = login(addr(port_a), "", "");
    assert_eq!(publish(&mut publisher, "plant/1", b"before"), OK);
    assert_eq!(subscriber.next(), b"before");

    b.signal(Signal::SIGKILL);
    b.wait_exit();
    assert!(poll(|| peer_state(stats_a) != "up"), "{:?}", peers(stats_a));
    let b = Daemon::start(&b_config, port_b);
    assert!(
        poll(|| peer_state(stats_a) == "up"),
        "{}\n{}",
        a.log(),
        b.log()
    );
    let mut subscriber = Subscriber::new(port_b, "plant/#");
    // Nothing was published since the link came back, so A has no stale
    // NOT_REQUIRED answer for the topic.
    assert_eq!(publish(&mut publisher, "plant/1", b"after"), OK);
    assert_eq!(subscriber.next(), b"after");
    let reconnects = peers(stats_a)[0]["reconnects"].as_u64().expect("count");
    assert!(reconnects >= 1, "{:?}", peers(stats_a));
    a.wait_for_log("cluster link up", 2);
}

/// Whether `/status` lists exactly the peers on `ports`, each up.
fn peers_up(stats: u16, ports: &[u16]) -> bool {
    let peers = peers(stats);
    peers.len() == ports.len()
        && ports.iter().all(|port| {
            let path = format!("127.0.0.1:{port}");
            peers
                .iter()
                .any(|p| p["peer"] == path.as_str() && p["state"] == "up")
        })
}

/// How many times the log says the link to the peer on `port` came up.
fn links_up_logged(daemon: &Daemon, port: u16) -> usize {
    let peer = format!("127.0.0.1:{port}");
    daemon
        .log()
        .lines()
        .filter(|line| line.contains("cluster link up") && line.contains(&peer))
        .count()
}

#[test]
fn sighup_connects_added_peers_drops_removed_ones_and_keeps_the_others() {
    let dir = TempDir::new("cluster-reload");
    let (port_a, stats_a, port_b, stats_b, port_c) = (
        free_tcp_port(),
        free_tcp_port(),
        free_tcp_port(),
        free_tcp_port(),
        free_tcp_port(),
    );
    let _b = Daemon::start(&node_files(&dir, "b", port_b, stats_b, &[]), port_b);
    let _c = Daemon::start(&node_files(&dir, "c", port_c, free_tcp_port(), &[]), port_c);
    let a_config = node_files(&dir, "a", port_a, stats_a, &[(port_b, "secret")]);
    let a = Daemon::start(&a_config, port_a);
    assert!(poll(|| peers_up(stats_a, &[port_b])), "{}", a.log());
    assert_eq!(links_up_logged(&a, port_b), 1, "{}", a.log());

    // Added: C connects; B, unchanged, keeps the link it has.
    node_files(
        &dir,
        "a",
        port_a,
        stats_a,
        &[(port_b, "secret"), (port_c, "secret")],
    );
    a.signal(Signal::SIGHUP);
    assert!(
        poll(|| peers_up(stats_a, &[port_b, port_c])),
        "{:?}\n{}",
        peers(stats_a),
        a.log()
    );
    a.wait_for_log("cluster peer list reloaded", 1);
    assert_eq!(links_up_logged(&a, port_b), 1, "{}", a.log());
    assert_eq!(peers(stats_a)[0]["reconnects"], 0, "{:?}", peers(stats_a));

    // Removed: B leaves /status and its connections close on B.
    let idle = r#"psrt_connections{listener="tcp"} 0"#;
    assert!(!http_get(addr(stats_b), "/metrics").1.contains(idle));
    node_files(&dir, "a", port_a, stats_a, &[(port_c, "secret")]);
    a.signal(Signal::SIGHUP);
    assert!(
        poll(|| peers_up(stats_a, &[port_c])),
        "{:?}",
        peers(stats_a)
    );
    a.wait_for_log("cluster peer removed or changed: disconnecting", 1);
    assert!(
        poll(|| http_get(addr(stats_b), "/metrics").1.contains(idle)),
        "{}",
        http_get(addr(stats_b), "/metrics").1
    );
    assert_eq!(links_up_logged(&a, port_c), 1, "{}", a.log());
}

#[test]
fn a_peer_listed_by_its_unix_socket_replicates() {
    let dir = TempDir::new("cluster-unix");
    let (port_a, stats_a, port_b) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let socket = dir.join("b.sock");
    let b_config = node_files(&dir, "b", port_b, free_tcp_port(), &[]);
    let tcp_only = format!("bind: 127.0.0.1:{port_b}\n");
    let both = format!("bind: [127.0.0.1:{port_b}, {}]\n", socket.display());
    let text = std::fs::read_to_string(&b_config).expect("b config");
    std::fs::write(&b_config, text.replacen(&tcp_only, &both, 1)).expect("write");
    let b = Daemon::start(&b_config, port_b);
    assert!(poll(|| socket.exists()), "{}", b.log());
    let peer = format!(
        "- path: {}\n  user: repl\n  password: secret\n",
        socket.display()
    );
    let a = Daemon::start(
        &cluster_node_files(&dir, "a", (port_a, stats_a), &peer, ""),
        port_a,
    );
    assert!(
        poll(|| peer_state(stats_a) == "up"),
        "{:?}\n{}",
        peers(stats_a),
        a.log()
    );
    let mut subscriber = Subscriber::new(port_b, "plant/#");
    let (mut publisher, _) = login(addr(port_a), "", "");
    assert_eq!(
        publish(&mut publisher, "plant/unix", b"over the socket"),
        OK
    );
    assert_eq!(subscriber.next(), b"over the socket");
    let sent = || peers(stats_a)[0]["sent"].as_u64().unwrap_or(0);
    assert!(poll(|| sent() >= 1), "{:?}", peers(stats_a));
}

/// A peer that speaks only the original protocol: it accepts any login,
/// answers NOP, takes PUBLISH_REPL offers (wanting every payload) and
/// closes the connection on any other op byte, as the original server does
/// on one it does not know. Reports each closing op byte and each
/// replicated `(topic, payload)`.
fn original_peer(
    listener: std::net::TcpListener,
) -> std::sync::mpsc::Receiver<Result<(String, Vec<u8>), u8>> {
    let (events, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(stream) = stream else { return };
            let events = events.clone();
            std::thread::spawn(move || serve_original(stream, &events));
        }
    });
    received
}

fn serve_original(
    mut s: TcpStream,
    events: &std::sync::mpsc::Sender<Result<(String, Vec<u8>), u8>>,
) -> Option<()> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let read = |s: &mut TcpStream, n: usize| -> Option<Vec<u8>> {
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    let len = |bytes: &[u8]| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    read(&mut s, 3)?;
    let login = read(&mut s, 4)?;
    read(&mut s, len(&login))?;
    s.write_all(&[0xEE, 0xAA, 0x01, 0x00]).ok()?;
    s.write_all(&[9; 32]).ok()?;
    loop {
        let op = read(&mut s, 1)?[0];
        match op {
            0x00 => s.write_all(&[OK]).ok()?,
            0x11 => {
                let head = read(&mut s, 4)?;
                let topic = String::from_utf8(read(&mut s, len(&head))?).ok()?;
                s.write_all(&[0x02]).ok()?;
                let head = read(&mut s, 13)?;
                let payload = read(&mut s, len(&head[9..]))?;
                s.write_all(&[OK]).ok()?;
                events.send(Ok((topic, payload))).ok()?;
            }
            other => {
                let _ = events.send(Err(other));
                return None;
            }
        }
    }
}

#[test]
fn a_peer_that_does_not_know_the_pipelined_op_gets_publish_repl() {
    let dir = TempDir::new("cluster-original-peer");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port_b = listener.local_addr().expect("addr").port();
    let events = original_peer(listener);
    let (port_a, stats_a) = (free_tcp_port(), free_tcp_port());
    let a_config = node_files(&dir, "a", port_a, stats_a, &[(port_b, "secret")]);
    let a = Daemon::start(&a_config, port_a);
    let first = events.recv_timeout(Duration::from_secs(10));
    assert_eq!(first, Ok(Err(0x12)), "the link probes first\n{}", a.log());
    assert!(poll(|| peer_state(stats_a) == "up"), "{}", a.log());
    let op = peers(stats_a).first().map(|p| p["op"].clone());
    assert_eq!(op, Some("publish_repl".into()), "/status names the op");
    let (mut publisher, _) = login(addr(port_a), "", "");
    assert_eq!(publish(&mut publisher, "plant/1", b"to the original"), OK);
    let replicated = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(10)).ok())
        .find(|event| event.is_ok());
    assert_eq!(
        replicated,
        Some(Ok(("plant/1".to_owned(), b"to the original".to_vec()))),
        "{}",
        a.log()
    );
    assert_eq!(
        a.log()
            .matches("does not speak pipelined replication")
            .count(),
        1,
        "logged once\n{}",
        a.log()
    );
}
