//! A 3-node full mesh on loopback, one runtime per node (tokio, smol,
//! monoio), all in this process: what is published on A and B reaches a
//! subscriber on C exactly once and, per publisher, in order; a link whose
//! peer has no subscriber carries no payload bytes (NOT_REQUIRED).

mod daemon_support;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use psrt_proto::cluster::{ClusterSpec, LinkState, PeerSpec, PeerStats, ReplicationOp};
use psrt_proto::config::PeerConfig;
use psrt_proto::spec::ServerSpec;
use psrt_runtime_tokio::client::{Client, ClientOptions};

/// Messages each publisher sends.
const COUNT: usize = 300;
/// How long anything may take.
const WAIT: Duration = Duration::from_secs(15);

/// A node of the mesh: its runtime's server handle, stopped on drop.
enum Node {
    Tokio(
        psrt_runtime_tokio::server::ServerHandle,
        Option<JoinHandle<()>>,
    ),
    Smol(
        psrt_runtime_smol::server::ServerHandle,
        Option<JoinHandle<()>>,
    ),
    Monoio(
        psrt_runtime_monoio::server::ServerHandle,
        Option<JoinHandle<std::io::Result<()>>>,
    ),
}

impl Node {
    fn peers(&self) -> Vec<PeerStats> {
        match self {
            Node::Tokio(h, _) => h.with_broker(|b| b.cluster().stats()),
            Node::Smol(h, _) => h.with_broker(|b| b.cluster().stats()),
            Node::Monoio(h, _) => h.with_broker(|b| b.cluster().stats()),
        }
    }

    fn peer(&self, addr: SocketAddr) -> PeerStats {
        let name = addr.to_string();
        self.peers()
            .into_iter()
            .find(|p| p.peer == name)
            .expect("peer listed")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        match self {
            Node::Tokio(h, thread) => {
                h.stop();
                thread.take().map(JoinHandle::join);
            }
            Node::Smol(h, thread) => {
                h.stop();
                thread.take().map(JoinHandle::join);
            }
            Node::Monoio(h, thread) => {
                h.stop();
                thread.take().map(JoinHandle::join);
            }
        }
    }
}

/// A free loopback port (free a moment ago, below the ephemeral range).
fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], daemon_support::free_tcp_port()))
}

/// An open node on `addr` replicating to `peers` (anonymous, whose open
/// rights include `replicator`).
fn spec(addr: SocketAddr, peers: &[SocketAddr]) -> ServerSpec {
    let mut spec = ServerSpec::open(addr);
    spec.workers = 2;
    spec.drain_timeout = Duration::from_secs(1);
    spec.cluster = ClusterSpec {
        peers: peers
            .iter()
            .map(|peer| PeerSpec {
                config: PeerConfig {
                    path: peer.to_string(),
                    user: String::new(),
                    password: String::new(),
                    timeout: Duration::from_secs(5),
                    tls: false,
                    tls_ca: None,
                },
                ca_pem: None,
            })
            .collect(),
        ..ClusterSpec::default()
    };
    spec
}

fn start_tokio(spec: ServerSpec) -> Node {
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let server = psrt_runtime_tokio::server::Server::bind(spec)
                .await
                .expect("bind");
            ready_tx.send(server.handle()).expect("ready");
            server.run().await;
        });
    });
    let handle = ready_rx.recv_timeout(WAIT).expect("tokio node started");
    Node::Tokio(handle, Some(thread))
}

fn start_smol(spec: ServerSpec) -> Node {
    let server = smol::block_on(psrt_runtime_smol::server::Server::bind(spec)).expect("bind");
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run_on_threads(2));
    Node::Smol(handle, Some(thread))
}

fn start_monoio(spec: ServerSpec) -> Node {
    let server = psrt_runtime_monoio::server::Server::bind(spec).expect("bind");
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run());
    Node::Monoio(handle, Some(thread))
}

/// Waits until `check` holds, or fails with `what`.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn all_up(node: &Node) -> bool {
    let peers = node.peers();
    peers.len() == 2 && peers.iter().all(|p| p.state == LinkState::Up)
}

async fn connect(addr: SocketAddr, data_socket: bool) -> Client {
    let options = ClientOptions {
        data_socket,
        ..ClientOptions::default()
    };
    Client::connect(&addr.to_string(), options)
        .await
        .expect("connect")
}

#[test]
fn a_three_runtime_mesh_delivers_exactly_once_in_order_and_keeps_unwanted_payloads_off() {
    let [a, b, c] = [free_port(), free_port(), free_port()];
    let node_a = start_tokio(spec(a, &[b, c]));
    let node_b = start_smol(spec(b, &[a, c]));
    let node_c = start_monoio(spec(c, &[a, b]));
    for (name, node) in [("A", &node_a), ("B", &node_b), ("C", &node_c)] {
        wait_until(&format!("every link of {name} up"), || all_up(node));
        let ops: Vec<_> = node.peers().iter().map(|p| p.op).collect();
        assert_eq!(
            ops,
            [Some(ReplicationOp::Pipelined); 2],
            "{name}: our nodes pipeline"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime");
    let received = runtime.block_on(async {
        let subscriber = connect(c, true).await;
        subscriber.subscribe("mesh/#").await.expect("subscribe");
        let messages = subscriber.take_messages().expect("data socket");
        let publish = |addr: SocketAddr, tag: &'static str| async move {
            let client = connect(addr, false).await;
            for i in 0..COUNT {
                let topic = format!("mesh/{tag}/{}", i % 7);
                client
                    .publish(&topic, format!("{tag}{i}"))
                    .await
                    .expect("publish");
            }
        };
        tokio::join!(publish(a, "a"), publish(b, "b"));
        let mut received = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while received.len() < 2 * COUNT {
            let message = tokio::time::timeout_at(deadline, messages.recv())
                .await
                .expect("every message within the wait")
                .expect("data socket open");
            received.push(String::from_utf8(message.payload.to_vec()).expect("utf-8"));
        }
        // Nothing more comes: no duplicates.
        let extra = tokio::time::timeout(Duration::from_millis(300), messages.recv()).await;
        assert!(extra.is_err(), "an extra message arrived: {extra:?}");
        received
    });
    for tag in ["a", "b"] {
        let seen: Vec<usize> = received
            .iter()
            .filter_map(|p| p.strip_prefix(tag))
            .map(|n| n.parse().expect("number"))
            .collect();
        assert_eq!(seen, (0..COUNT).collect::<Vec<_>>(), "publisher {tag}");
    }
    let a_to_c = node_a.peer(c);
    let a_to_b = node_a.peer(b);
    let b_to_c = node_b.peer(c);
    assert_eq!(a_to_c.sent, COUNT as u64, "{a_to_c:?}");
    assert_eq!(b_to_c.sent, COUNT as u64, "{b_to_c:?}");
    assert!(
        a_to_c.sent_bytes > 0 && a_to_c.rtt_us.is_some(),
        "{a_to_c:?}"
    );
    // Nobody subscribes on B: A's link to B carried offers, not payloads.
    assert_eq!((a_to_b.sent, a_to_b.sent_bytes), (0, 0), "{a_to_b:?}");
    assert!(a_to_b.not_required >= 1, "{a_to_b:?}");
    assert_eq!(
        a_to_b.not_required + a_to_b.suppressed,
        COUNT as u64,
        "{a_to_b:?}"
    );
    // C replicated nothing: nothing was published there.
    assert!(
        node_c.peers().iter().all(|p| p.sent == 0),
        "{:?}",
        node_c.peers()
    );
    drop(runtime);
}

#[test]
fn a_node_list_connects_to_the_first_node_that_answers() {
    let (dead, live) = (free_port(), free_port());
    let _node = start_tokio(spec(live, &[]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime");
    runtime.block_on(async {
        let options = ClientOptions {
            timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        };
        let client = Client::connect(&format!("{dead},{live}"), options.clone())
            .await
            .expect("the second node answers");
        client.subscribe("t").await.expect("subscribe");
        client.publish("t", "x").await.expect("publish");
        let messages = client.take_messages().expect("data socket");
        let message = tokio::time::timeout(WAIT, messages.recv())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!(message.payload, "x");
        let err = Client::connect(&format!("{dead}"), options)
            .await
            .expect_err("nobody answers");
        assert!(err.to_string().contains(&dead.to_string()), "{err}");
    });
}
