//! Client failover against real daemons: psrtd nodes in a full mesh on
//! loopback and a library client connected through the node list, on each
//! runtime (tokio, smol, monoio; the scenario is written once over
//! psrt-driver's `Runtime`). The node the client is on is killed by PID;
//! the client moves to the next node, subscribes there again by itself and
//! receives what is published there. Requests made while no node answers
//! fail at once, and the client gives up after its failover budget.

mod daemon_support;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use daemon_support::*;
use nix::sys::signal::Signal;
use psrt_driver::client::{Client, ClientError, ClientOptions, Messages};
use psrt_driver::runtime::{Runtime, until};

/// One psrtd of the cluster: its ports, config, and the process while it
/// runs.
struct Node {
    port: u16,
    stats: u16,
    config: PathBuf,
    daemon: Option<Daemon>,
}

/// Nodes that each list all the others as peers; the daemons are killed
/// (by PID) when dropped.
struct Cluster {
    _dir: TempDir,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `count` nodes and waits until every link is up.
    fn start(name: &str, count: usize) -> Cluster {
        let dir = TempDir::new(name);
        let ports: Vec<(u16, u16)> = (0..count)
            .map(|_| (free_tcp_port(), free_tcp_port()))
            .collect();
        let mut nodes = Vec::new();
        for (index, &(port, stats)) in ports.iter().enumerate() {
            let peers: String = ports
                .iter()
                .filter(|&&(peer, _)| peer != port)
                .map(|&(peer, _)| peer_entry(peer, "secret", ""))
                .collect();
            let config = cluster_node_files(&dir, &index.to_string(), (port, stats), &peers, "");
            let daemon = Some(Daemon::start(&config, port));
            nodes.push(Node {
                port,
                stats,
                config,
                daemon,
            });
        }
        let cluster = Cluster { _dir: dir, nodes };
        for node in &cluster.nodes {
            assert!(
                poll(|| links_up(node.stats, count - 1)),
                "links of {} not up: {:?}\n{}",
                node.port,
                http_get(SocketAddr::from(([127, 0, 0, 1], node.stats)), "/status"),
                node.daemon.as_ref().map(Daemon::log).unwrap_or_default()
            );
        }
        cluster
    }

    /// The client's address list, node 0 first.
    fn list(&self) -> String {
        let nodes: Vec<String> = (0..self.nodes.len()).map(|i| self.addr(i)).collect();
        nodes.join(",")
    }

    fn addr(&self, index: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[index].port)
    }

    /// A raw control connection to node `index`, logged in anonymously.
    fn publisher(&self, index: usize) -> std::net::TcpStream {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.nodes[index].port));
        let (stream, token) = login(addr, "", "");
        assert!(token.is_some(), "anonymous login on node {index}");
        stream
    }

    /// Kills node `index` with SIGKILL (by its PID) and waits for it.
    fn kill(&mut self, index: usize) {
        let mut daemon = self.nodes[index].daemon.take().expect("running");
        daemon.signal(Signal::SIGKILL);
        daemon.wait_exit();
    }

    /// Starts node `index` again on its port.
    fn restart(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.daemon = Some(Daemon::start(&node.config, node.port));
    }
}

/// Whether `/status` on `stats` lists `peers` links, all up.
fn links_up(stats: u16, peers: usize) -> bool {
    let (status, body) = http_get(SocketAddr::from(([127, 0, 0, 1], stats)), "/status");
    if !status.contains("200") {
        return false;
    }
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let links = json["cluster"]["peers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    links.len() == peers && links.iter().all(|link| link["state"] == "up")
}

/// `work`, or `None` after [`WAIT`].
async fn within<R: Runtime, T>(runtime: &R, work: impl Future<Output = T>) -> Option<T> {
    until(runtime.sleep(WAIT), work).await
}

/// The next message's payload, as text.
async fn next<R: Runtime>(runtime: &R, messages: &Messages) -> String {
    let message = within(runtime, messages.recv())
        .await
        .expect("a message in time")
        .expect("the stream goes on");
    String::from_utf8_lossy(&message.payload).into_owned()
}

/// Waits (on the runtime's timer) until `check` holds, for up to [`WAIT`].
async fn wait_for<R: Runtime>(runtime: &R, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        runtime.sleep(Duration::from_millis(20)).await;
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

/// The client on node 0 receives what is published on node 1 (replicated);
/// node 0 is killed; the client is then on node 1, subscribed again, and
/// receives what is published there, its own publishes included.
async fn fails_over_and_resubscribes<R: Runtime + Default>(cluster: &mut Cluster) {
    let runtime = R::default();
    let client = Client::<R>::connect_on(runtime.clone(), &cluster.list(), options())
        .await
        .expect("connect");
    assert_eq!(client.node(), cluster.addr(0));
    assert_eq!(client.failovers(), 0);
    let messages = client.take_messages().expect("messages");
    client
        .subscribe_bulk(&["plant/#", "other"])
        .await
        .expect("subscribe");
    client.unsubscribe("other").await.expect("unsubscribe");
    let mut publisher = cluster.publisher(1);
    assert_eq!(publish(&mut publisher, "plant/1", b"replicated"), OK);
    assert_eq!(next(&runtime, &messages).await, "replicated");

    cluster.kill(0);
    wait_for(&runtime, "the failover", || client.failovers() == 1).await;
    assert_eq!(client.node(), cluster.addr(1));
    assert_eq!(publish(&mut publisher, "other", b"unsubscribed"), OK);
    assert_eq!(publish(&mut publisher, "plant/2", b"after"), OK);
    assert_eq!(next(&runtime, &messages).await, "after");
    client.publish("plant/3", "own").await.expect("publish");
    assert_eq!(next(&runtime, &messages).await, "own");
    client.bye().await.expect("bye");
    assert!(
        within(&runtime, messages.recv())
            .await
            .expect("ends")
            .is_err(),
        "the stream ends after BYE"
    );
}

#[test]
fn a_tokio_client_fails_over_to_the_next_node_of_three() {
    let mut cluster = Cluster::start("failover-tokio", 3);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(fails_over_and_resubscribes::<
            psrt_runtime_tokio::runtime::Tokio,
        >(&mut cluster));
}

#[test]
fn a_smol_client_fails_over_to_the_other_node() {
    let mut cluster = Cluster::start("failover-smol", 2);
    smol::block_on(fails_over_and_resubscribes::<
        psrt_runtime_smol::runtime::Smol,
    >(&mut cluster));
}

#[test]
fn a_monoio_client_fails_over_to_the_other_node() {
    let mut cluster = Cluster::start("failover-monoio", 2);
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime")
        .block_on(fails_over_and_resubscribes::<
            psrt_runtime_monoio::runtime::Monoio,
        >(&mut cluster));
}

/// Both nodes are killed: requests fail at once instead of waiting; node
/// 1 comes back within the failover budget and the client finds it
/// (subscribed again); killed again, the client gives up after the
/// budget, its stream ends and requests name the reason.
#[test]
fn requests_fail_while_no_node_answers_and_the_client_gives_up() {
    let mut cluster = Cluster::start("failover-gap", 2);
    let runtime = psrt_runtime_tokio::runtime::Tokio;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    tokio.block_on(async {
        let budget = Duration::from_secs(3);
        let options = ClientOptions {
            failover: budget,
            ..options()
        };
        let client = Client::connect_on(runtime, &cluster.list(), options)
            .await
            .expect("connect");
        let messages = client.take_messages().expect("messages");
        client.subscribe("plant/#").await.expect("subscribe");

        cluster.kill(0);
        cluster.kill(1);
        runtime.sleep(Duration::from_millis(300)).await;
        let asked = Instant::now();
        let refused = client.publish("plant/1", "lost").await;
        assert!(asked.elapsed() < Duration::from_secs(1), "not held back");
        match refused {
            Err(ClientError::Disconnected(reason)) => {
                assert!(reason.contains("failing over"), "{reason}");
            }
            other => panic!("publish while no node answers: {other:?}"),
        }

        cluster.restart(1);
        wait_for(&runtime, "the failover", || client.failovers() == 1).await;
        assert_eq!(client.node(), cluster.addr(1));
        let mut publisher = cluster.publisher(1);
        assert_eq!(publish(&mut publisher, "plant/2", b"back"), OK);
        assert_eq!(next(&runtime, &messages).await, "back");

        cluster.kill(1);
        let lost = Instant::now();
        let ended = within(&runtime, messages.recv()).await.expect("ends");
        assert!(ended.is_err(), "the stream ends when the client gives up");
        let took = lost.elapsed();
        assert!(took >= budget, "gave up after {took:?}");
        assert!(
            took < budget + Duration::from_secs(4),
            "gave up after {took:?}"
        );
        let err = client.publish("plant/3", "late").await.expect_err("ended");
        assert!(err.to_string().contains("gave up"), "{err}");
    });
}

/// With `shuffle_nodes` clients sharing one list land on every node (the
/// chance that 24 land on the same one of two is 2 in 16 million).
#[test]
fn shuffled_clients_spread_over_the_nodes() {
    let cluster = Cluster::start("failover-shuffle", 2);
    let runtime = psrt_runtime_tokio::runtime::Tokio;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let nodes = tokio.block_on(async {
        let options = ClientOptions {
            shuffle_nodes: true,
            data_socket: false,
            ..options()
        };
        let mut nodes = std::collections::BTreeSet::new();
        for _ in 0..24 {
            let client = Client::connect_on(runtime, &cluster.list(), options.clone())
                .await
                .expect("connect");
            nodes.insert(client.node());
            client.bye().await.expect("bye");
        }
        nodes
    });
    let expected: std::collections::BTreeSet<String> = [cluster.addr(0), cluster.addr(1)].into();
    assert_eq!(nodes, expected);
}

/// BYE while the client is failing over ends it at once: OK, the stream
/// ends, later requests fail.
#[test]
fn bye_while_failing_over_ends_the_client() {
    let mut cluster = Cluster::start("failover-bye", 2);
    let runtime = psrt_runtime_tokio::runtime::Tokio;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    tokio.block_on(async {
        let client = Client::connect_on(runtime, &cluster.list(), options())
            .await
            .expect("connect");
        let messages = client.take_messages().expect("messages");
        cluster.kill(0);
        cluster.kill(1);
        runtime.sleep(Duration::from_millis(300)).await;
        let other = client.clone();
        within(&runtime, client.bye())
            .await
            .expect("answered")
            .expect("bye");
        let ended = within(&runtime, messages.recv()).await.expect("ends");
        assert!(ended.is_err(), "the stream ends");
        let err = other.publish("plant/1", "late").await.expect_err("ended");
        assert!(err.to_string().contains("the session ended"), "{err}");
    });
}
