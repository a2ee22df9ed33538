"""Compatibility of our psrtd with the PyPI `psrt` Python client.

Starts the psrtd binary (PSRTD_BIN, default target/debug/psrtd) on free
loopback ports with a config in a temp dir, drives it with the unmodified
`psrt` package, and stops only the process it started.
"""

import os
import pathlib
import queue
import socket
import subprocess
import time

import psrt
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PSRTD_BIN = os.environ.get('PSRTD_BIN', str(ROOT / 'target' / 'debug' / 'psrtd'))
WAIT = 5  # seconds any single expectation may take

# bcrypt hashes at cost 4 in the `$2y$` form `htpasswd -B` writes.
PASSWD = """# test users
alice:$2y$04$uPBqv2Mvn9SHJV.4L4OIpe/Awu.qe5hbAr4DjElAPF0kLQAxgVTJC
limited:$2y$04$AgmsHL8ic1NE4gvhfNwRxeJTfVcMuSxKWQgNvuDEHMtm4qbWXEnx2
"""

ACL = """
_: {pub: ['#'], sub: ['#']}
alice: {pub: ['#'], sub: ['#']}
limited: {pub: ['allowed/#'], sub: ['allowed/#']}
"""

KEY_HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'


def free_port(kind):
    """A port the kernel just handed out for `kind` (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_listening(port, proc, deadline):
    """Waits until the TCP port accepts connections, or fails."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f'psrtd exited with {proc.returncode}')
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f'psrtd did not listen on {port}')


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """A running psrtd; yields its TCP and UDP addresses."""
    if not os.access(PSRTD_BIN, os.X_OK):
        pytest.fail(f'psrtd binary not found at {PSRTD_BIN}')
    tmp = tmp_path_factory.mktemp('psrtd')
    tcp_port = free_port(socket.SOCK_STREAM)
    udp_port = free_port(socket.SOCK_DGRAM)
    (tmp / 'psrt-passwd').write_text(PASSWD)
    (tmp / 'acl.yml').write_text(ACL)
    (tmp / 'keys.yml').write_text(f'alice: {KEY_HEX}\n')
    (tmp / 'config.yml').write_text(f"""
server:
  workers: 2
  data_queue: 1024
proto:
  bind: 127.0.0.1:{tcp_port}
  bind_udp: 127.0.0.1:{udp_port}
  timeout: 5
auth:
  allow_anonymous: true
  password_file: psrt-passwd
  key_file: keys.yml
  acl: acl.yml
""")
    log = open(tmp / 'psrtd.log', 'wb')
    proc = subprocess.Popen([PSRTD_BIN, '--config', str(tmp / 'config.yml')],
                            stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_listening(tcp_port, proc, time.monotonic() + 10)
        yield {
            'path': f'127.0.0.1:{tcp_port}',
            'udp': ('127.0.0.1', udp_port),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


class Received:
    """Collects a client's messages from its data thread."""

    def __init__(self):
        self.queue = queue.Queue()

    def __call__(self, client, userdata, message):
        self.queue.put((message.topic, message.payload))

    def get(self):
        return self.queue.get(timeout=WAIT)


@pytest.fixture
def connect(server):
    """Connects clients and says BYE to each at the end of the test."""
    clients = []

    def make(user='', password='', buf_size=psrt.BUF_SIZE):
        client = psrt.Client(path=server['path'],
                             user=user,
                             password=password,
                             timeout=WAIT,
                             buf_size=buf_size)
        received = Received()
        client.on_message = received
        client.connect()
        clients.append(client)
        return client, received

    yield make
    for client in clients:
        client.bye()


def expect_sentinel(client, received, publisher):
    """Proves nothing else was delivered: the sentinel comes next."""
    client.subscribe('zz/sentinel')
    publisher.publish('zz/sentinel', 'end')
    assert received.get() == ('zz/sentinel', b'end')


def test_anonymous_text(connect):
    sub, received = connect()
    sub.subscribe('text/#')
    pub, _ = connect()
    pub.publish('//text//a', 'hello')
    assert received.get() == ('text/a', b'hello')


def test_password_login_and_1mib_binary(connect):
    sub, received = connect('alice', 'alice-pw', buf_size=1024 * 1024)
    sub.subscribe('bin/x')
    payload = os.urandom(1024 * 1024)
    sub.publish('bin/x', payload)
    assert received.get() == ('bin/x', payload)


def test_wrong_password_is_refused(server):
    client = psrt.Client(path=server['path'],
                         user='alice',
                         password='wrong',
                         timeout=WAIT)
    with pytest.raises(psrt.AccessError):
        client.connect()


def test_bulk_subscribe_and_unsubscribe(connect):
    sub, received = connect()
    sub.subscribe_bulk(['bulk/1', 'bulk/2', 'bulk/3'])
    pub, _ = connect()
    for topic in ['bulk/1', 'bulk/2', 'bulk/3']:
        pub.publish(topic, topic)
    assert [received.get() for _ in range(3)] == [
        ('bulk/1', b'bulk/1'),
        ('bulk/2', b'bulk/2'),
        ('bulk/3', b'bulk/3'),
    ]
    sub.unsubscribe('bulk/1')
    sub.unsubscribe_bulk(['bulk/2', 'never/had'])
    for topic in ['bulk/1', 'bulk/2', 'bulk/3']:
        pub.publish(topic, 'again')
    assert received.get() == ('bulk/3', b'again')
    expect_sentinel(sub, received, pub)


def test_publish_access_denied_keeps_connection(connect):
    client, received = connect('limited', 'limited-pw')
    with pytest.raises(psrt.AccessError):
        client.publish('denied/x', 'no')
    assert client.is_connected()
    client.subscribe('allowed/#')
    client.publish('allowed/x', 'yes')
    assert received.get() == ('allowed/x', b'yes')


def test_subscribe_access_denied(connect):
    client, _ = connect('limited', 'limited-pw')
    with pytest.raises(psrt.AccessError):
        client.subscribe('denied/#')
    # This client drops its connection after any failed control command.
    assert not client.is_connected()


def test_udp_publish(server, connect):
    sub, received = connect()
    sub.subscribe('udp/#')
    psrt.pub_udp(server['udp'], 'udp/ack', 'a', user='alice',
                 password='alice-pw')
    assert received.get() == ('udp/ack', b'a')
    psrt.pub_udp(server['udp'], 'udp/anon', 'b')
    assert received.get() == ('udp/anon', b'b')
    psrt.pub_udp(server['udp'], 'udp/noack', 'c', need_ack=False)
    assert received.get() == ('udp/noack', b'c')
    with pytest.raises(psrt.AccessError):
        psrt.pub_udp(server['udp'], 'udp/x', 'd', user='alice',
                     password='wrong')


@pytest.mark.parametrize('auth,key', [
    (psrt.AUTH_KEY_AES_128_GCM, KEY_HEX[:32]),
    (psrt.AUTH_KEY_AES_256_GCM, KEY_HEX),
])
def test_udp_encrypted(server, connect, auth, key):
    pytest.importorskip('Cryptodome')
    sub, received = connect()
    sub.subscribe('enc/#')
    psrt.pub_udp(server['udp'], 'enc/x', 'sealed', user='alice',
                 password=key, auth=auth)
    assert received.get() == ('enc/x', b'sealed')
