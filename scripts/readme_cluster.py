"""The README's Clustering example as three nodes on loopback (called by
scripts/readme-examples.py, which runs the TLS recipe first).

Each node gets its own folder with the blocks as printed:

* `cluster-config`: `config.yml`; node3's adds the `tls_cert` and
  `tls_key` lines of the sample configuration (block `config`), as the
  README says, for the certificate the TLS recipe made;
* `cluster-acl`: `acl.yml`, and a `psrt-passwd` with `repl` and `alice`
  (password `secret`, as in `cluster.yml` and the rest of the README);
* `cluster-peers`: `cluster.yml`. node1's is the block; node2's and
  node3's list the other two nodes, each entry being the block's entry
  for that node (node3's with `tls` and `tls_ca`), or the block's node2
  entry renamed for node1;
* `cluster-cli`: the subscribers, run once `psrtd --test-config` passed
  on every node (listing its two peers), the three daemons serve and
  every node's `/status` shows both its peers up. One message published
  as alice on each node must reach every subscriber exactly once, so
  each subscriber got at least two messages from nodes it is not
  connected to. Then node1 stops: the subscriber without `--shuffle`
  (on node1, the first node that answers) must say once that it failed
  over, and every subscriber must receive what is published on node2.

Only addresses change: `nodeN:2873` becomes 127.0.0.1 and node N's free
port, which is also what `0.0.0.0:2873` becomes in node N's
configuration, and `127.0.0.1:8880` node N's free stats port; the TLS
recipe's certificate names 127.0.0.1. Every wait is bounded; each
daemon is stopped by its PID with SIGTERM.
"""

import base64
import json
import re
import shlex
import shutil
import subprocess
import urllib.error
import urllib.request

from readme_support import (
    SECRET_HASH, WAIT, Subscriber, fail, free_port, joined, run, stop, wait_for)

BLOCKS = ('cluster-config', 'cluster-acl', 'cluster-peers', 'cluster-cli')
NODES = ('node1', 'node2', 'node3')
TLS_NODE = 'node3'  # the node the README's peers reach over TLS


class Addresses:
    """Node names and the README's ports -> free loopback ports."""

    def __init__(self):
        self.port = {node: free_port() for node in NODES}
        self.stats = {node: free_port() for node in NODES}

    def text(self, text, node=None):
        """`text` with node names resolved; with `node`, also the listen
        addresses of that node's configuration."""
        text = re.sub(r'\b(node[123]):2873\b',
                      lambda m: f'127.0.0.1:{self.port[m.group(1)]}', text)
        if node:
            text = re.sub(r'\b0\.0\.0\.0:2873\b', f'127.0.0.1:{self.port[node]}', text)
            text = re.sub(r'\b127\.0\.0\.1:8880\b', f'127.0.0.1:{self.stats[node]}', text)
        return text


def peer_entries(lines):
    """The cluster block's entries: peer node name -> its lines."""
    entries, current = {}, None
    for line in lines:
        start = re.match(r'- path: (node[123]):2873\b', line)
        if start:
            current = start.group(1)
            entries[current] = [line]
        elif current and line.strip():
            entries[current].append(line)
    if set(entries) != {'node2', 'node3'}:
        fail(f'the cluster-peers block should list node2 and node3, not {sorted(entries)}')
    return entries


def peers_file(entries, node):
    """`node`'s cluster.yml: an entry for each other node."""
    out = []
    for peer in NODES:
        if peer == node:
            continue
        renamed = [line.replace('node2:', f'{peer}:') for line in entries['node2']]
        out += entries.get(peer, renamed)
    return '\n'.join(out) + '\n'


def config_file(found, node):
    """`node`'s config.yml: the cluster block, with the sample
    configuration's TLS lines under `proto:` on the TLS node."""
    lines = list(found['cluster-config'])
    if node == TLS_NODE:
        tls = [line for line in found['config'] if re.match(r'\s+tls_(cert|key):', line)]
        if len(tls) != 2:
            fail(f'the sample configuration should have tls_cert and tls_key lines, not {tls}')
        at = lines.index('proto:') + 1
        lines[at:at] = tls
    return '\n'.join(lines) + '\n'


def peer_states(stats_port):
    """The `cluster.peers` of a node's /status (as alice, an admin), or
    None while it does not answer."""
    request = urllib.request.Request(f'http://127.0.0.1:{stats_port}/status')
    token = base64.b64encode(b'alice:secret').decode()
    request.add_header('Authorization', f'Basic {token}')
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            status = json.load(response)
    except (urllib.error.URLError, ConnectionError):
        return None
    return (status.get('cluster') or {}).get('peers', [])


def fail_over(subscribers, node1, node1_port, publish):
    """Stops node1, where the subscriber without `--shuffle` is (the first
    node that answers): every subscriber must go on receiving what is
    published on node2, and that one must say once that it failed over."""
    first = next(sub for sub in subscribers if '--shuffle' not in sub.argv)
    if not stop(node1):
        fail('node1 did not stop on SIGTERM')

    def delivered_again():
        for sub in subscribers:
            sub.check_running()
        publish()
        return all(sub.printed('plant/after', None) for sub in subscribers)

    wait_for(delivered_again, 'the subscribers to fail over from node1', WAIT * 2)
    said = re.findall(r'failed over to (\S+)', first.output())
    if len(said) != 1 or said[0].endswith(f':{node1_port}'):
        fail(f'{shlex.join(first.argv)} should say once that it left node1:\n{first.output()}')


def run_cluster(found, tmp, certs, bin_dir):
    """Runs the example; a summary line."""
    addresses = Addresses()
    entries = peer_entries(found['cluster-peers'])
    configs = {}
    for node in NODES:
        folder = tmp / node
        folder.mkdir(parents=True)
        shutil.copytree(certs, folder / 'certs')
        configs[node] = folder / 'config.yml'
        configs[node].write_text(addresses.text(config_file(found, node), node))
        (folder / 'acl.yml').write_text('\n'.join(found['cluster-acl']) + '\n')
        (folder / 'psrt-passwd').write_text(f'repl:{SECRET_HASH}\nalice:{SECRET_HASH}\n')
        (folder / 'cluster.yml').write_text(addresses.text(peers_file(entries, node)))
        summary = run([str(bin_dir / 'psrtd'), '--config', str(configs[node]), '--test-config'],
                      folder, f'psrtd --test-config on {node}')
        for peer in NODES:
            tls = ' (TLS)' if peer == TLS_NODE else ''
            listed = f'127.0.0.1:{addresses.port[peer]} as "repl"{tls}'
            if (peer == node) == (listed in summary):
                fail(f'--test-config on {node} should list the two other nodes:\n{summary}')

    daemons, subscribers = {}, []
    try:
        for node in NODES:
            with open(tmp / node / 'psrtd.log', 'w') as log:
                daemons[node] = subprocess.Popen(
                    [str(bin_dir / 'psrtd'), '--config', str(configs[node])],
                    cwd=tmp / node, stdout=log, stderr=subprocess.STDOUT)

        def meshed():
            for node, daemon in daemons.items():
                if daemon.poll() is not None:
                    fail(f'{node} exited:\n{(tmp / node / "psrtd.log").read_text()}')
            states = [peer_states(addresses.stats[node]) for node in NODES]
            return all(peers and len(peers) == 2 and all(p['state'] == 'up' for p in peers)
                       for peers in states)

        wait_for(meshed, "every node's two peers up in /status", WAIT * 2)

        for line in joined(found['cluster-cli']):
            argv = shlex.split(addresses.text(line), comments=True)
            if argv[0] != 'psrt-cli' or {'-m', '-f', '-s'} & set(argv):
                fail(f'the cluster-cli block should hold subscribers only: {line}')
            subscribers.append(Subscriber([str(bin_dir / 'psrt-cli')] + argv[1:], tmp))
        if not any('--shuffle' in sub.argv for sub in subscribers):
            fail('the cluster-cli block has no --shuffle example')

        def publish(node, topic, payload):
            run([str(bin_dir / 'psrt-cli'), f'127.0.0.1:{addresses.port[node]}',
                 '-u', 'alice', '-p', 'secret', '-t', topic, '-m', payload],
                tmp, f'a publish on {node}')

        def all_subscribed():
            for sub in subscribers:
                sub.check_running()
            publish('node1', 'plant/probe', 'ready')
            return all(sub.printed('plant/probe', None) for sub in subscribers)

        wait_for(all_subscribed, 'every cluster subscriber to receive the probe')
        messages = [(f'plant/from/{node}', f'hello from {node}') for node in NODES]
        for node, (topic, payload) in zip(NODES, messages):
            publish(node, topic, payload)
        wait_for(lambda: all(sub.printed(*m) >= 1 for sub in subscribers for m in messages),
                 'the message of every node at every cluster subscriber')
        for sub in subscribers:
            for topic, payload in messages:
                if sub.printed(topic, payload) != 1:
                    fail(f'{shlex.join(sub.argv)} got {topic} more than once:\n{sub.output()}')
        fail_over(subscribers, daemons['node1'], addresses.port['node1'],
                  lambda: publish('node2', 'plant/after', 'failover'))
    finally:
        for sub in subscribers:
            sub.stop()
        killed = [node for node, daemon in daemons.items() if not stop(daemon)]
    if killed:
        fail(f'{killed} did not stop on SIGTERM')
    return (f'{len(NODES)} nodes meshed; a message published on each reached '
            f'{len(subscribers)} subscribers exactly once; they failed over from node1')
