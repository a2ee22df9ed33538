"""The PyPI `psrt` client's cluster connect against a cluster of our psrtd.

Two psrtd nodes (PSRTD_BIN) on free loopback ports, each listing the other
in its cluster.yml. `Client.connect_cluster(paths, randomize)` tries the
nodes and keeps the first that answers; it does not fail over by itself:
when its node dies the client disconnects, and the application connects
a new client with `connect_cluster` (and subscribes again). Both are
tested. Only the
processes started here are stopped, by their PID.
"""

import json
import os
import socket
import subprocess
import time
import urllib.request

import psrt
import pytest

from test_psrt_py import PASSWD, PSRTD_BIN, WAIT, Received, free_port, \
    wait_listening

# alice (password alice-pw in PASSWD) is the replication user between the
# nodes; anonymous clients may do everything, /status included.
ACL = """
alice: {replicator: true}
_: {pub: ['#'], sub: ['#'], admin: true}
"""


class Node:
    """One psrtd of the cluster, started from its config file."""

    def __init__(self, tmp, name, port, stats, peer):
        self.port = port
        self.stats = stats
        self.path = f'127.0.0.1:{port}'
        (tmp / f'{name}.cluster.yml').write_text(
            f'- path: 127.0.0.1:{peer}\n  user: alice\n'
            f'  password: alice-pw\n  timeout: 2\n')
        self.config = tmp / f'{name}.yml'
        self.config.write_text(f"""
server:
  bind_stats: 127.0.0.1:{stats}
proto:
  bind: 127.0.0.1:{port}
  timeout: 5
auth:
  allow_anonymous: true
  password_file: psrt-passwd
  acl: acl.yml
cluster:
  config: {name}.cluster.yml
""")
        self.log = open(tmp / f'{name}.log', 'wb')
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([PSRTD_BIN, '--config', str(self.config)],
                                     stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_listening(self.port, self.proc, time.monotonic() + 10)

    def kill(self):
        """SIGKILL to this node's PID, then reaps it."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def link_up(self):
        """Whether /status shows the link to the other node up."""
        try:
            with urllib.request.urlopen(
                    f'http://127.0.0.1:{self.stats}/status',
                    timeout=2) as reply:
                status = json.load(reply)
        except OSError:
            return False
        peers = status.get('cluster', {}).get('peers', [])
        return len(peers) == 1 and peers[0].get('state') == 'up'

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def wait_for(check, what):
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.05)


@pytest.fixture
def cluster(tmp_path):
    """Two linked nodes; yields them, stops them at the end."""
    if not os.access(PSRTD_BIN, os.X_OK):
        pytest.fail(f'psrtd binary not found at {PSRTD_BIN}')
    (tmp_path / 'psrt-passwd').write_text(PASSWD)
    (tmp_path / 'acl.yml').write_text(ACL)
    ports = [free_port(socket.SOCK_STREAM) for _ in range(4)]
    nodes = [
        Node(tmp_path, 'a', ports[0], ports[1], ports[2]),
        Node(tmp_path, 'b', ports[2], ports[3], ports[0]),
    ]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            wait_for(node.link_up, f'the link of {node.path}')
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def cluster_client():
    client = psrt.Client(timeout=WAIT)
    received = Received()
    client.on_message = received
    return client, received


def test_connect_cluster_skips_a_dead_node_and_messages_cross_nodes(cluster):
    a, b = cluster
    dead = f'127.0.0.1:{free_port(socket.SOCK_STREAM)}'
    sub, received = cluster_client()
    assert sub.connect_cluster([dead, b.path], randomize=False) == b.path
    sub.subscribe('plant/#')
    pub, _ = cluster_client()
    assert pub.connect_cluster(f'{a.path},{b.path}', randomize=False) == a.path
    pub.publish('plant/1', 'from a')
    assert received.get() == ('plant/1', b'from a')
    # The default picks a random node of the list; either works.
    other, _ = cluster_client()
    assert other.connect_cluster([a.path, b.path]) in (a.path, b.path)
    other.publish('plant/2', 'from any')
    assert received.get() == ('plant/2', b'from any')
    for client in (sub, pub, other):
        client.bye()


def test_connect_cluster_again_after_the_node_dies(cluster):
    a, b = cluster
    lost, _ = cluster_client()
    assert lost.connect_cluster([a.path, b.path], randomize=False) == a.path
    lost.subscribe('plant/#')
    a.kill()
    wait_for(lambda: not lost.is_connected(), 'the client to notice')
    # The package does not reconnect a client object: the application
    # makes a new one, connects it to the cluster and subscribes again.
    sub, received = cluster_client()
    assert sub.connect_cluster([a.path, b.path], randomize=False) == b.path
    sub.subscribe('plant/#')
    pub, _ = cluster_client()
    assert pub.connect_cluster([a.path, b.path], randomize=False) == b.path
    pub.publish('plant/3', 'after')
    assert received.get() == ('plant/3', b'after')
    sub.bye()
    pub.bye()
    with pytest.raises(RuntimeError):
        psrt.Client(timeout=1).connect_cluster([a.path], randomize=False)
