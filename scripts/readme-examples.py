#!/usr/bin/env python3
"""Runs the README's examples as printed (scripts/test.sh calls it).

Takes the fenced block after each `<!-- readme-test: NAME -->` marker of
README.md:

* `config`, `acl`, `keys`: the sample configuration and the ACL and key
  files it names, written beside it (`acl.yml`, `keys.yml`), with a
  password file for alice (password `secret`, as the README says; the
  interactive `htpasswd` line cannot run here);
* `tls`: the certificate recipe, run with bash in `certs/` (where the
  sample configuration looks for `server.crt` and `server.key`); its
  `psrt-cli` line runs later, as a publish;
* `psrtd`: `psrtd --config my.yml --test-config` (must succeed and list
  the listeners), then `psrtd -d --config my.yml` (must return once the
  daemon serves), `my.yml` being the sample configuration;
* `cli`: the psrt-cli examples. Subscribers (no `-m`, `-f` or `-s`) start
  first; once each has received a probe message, every publish runs (exit
  status 0) and each subscriber must print each message.

Only addresses and paths change: `0.0.0.0` and `127.0.0.1` become
`127.0.0.1`, port 2873 (TCP and UDP) and 8880 become free ports,
`/run/psrtd/` and `/var/run/psrtd/` a temporary folder, and a leading
`psrtd` or `psrt-cli` the binary in BIN_DIR (default target/debug).
Every wait is bounded; the daemon is stopped with SIGTERM at the end.

Then the Clustering section's blocks (`cluster-config`, `cluster-acl`,
`cluster-peers`, `cluster-cli`) run as three nodes on loopback: see
scripts/readme_cluster.py.
"""

import os
import re
import shlex
import signal
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
import readme_cluster  # noqa: E402
from readme_support import (  # noqa: E402
    ROOT, SECRET_HASH, Subscriber, blocks, fail, free_port, joined, run, wait_for)

READING = '21.7'  # what `reading.bin` holds for `-f reading.bin`


class Rewrite:
    """The documented rewrite of addresses, paths and binaries."""

    def __init__(self, tmp, bin_dir):
        self.tmp = tmp
        self.bin_dir = bin_dir
        self.port = free_port()
        self.stats = free_port()

    def text(self, text):
        text = re.sub(r'\b(?:0\.0\.0\.0|127\.0\.0\.1):2873\b', f'127.0.0.1:{self.port}', text)
        text = re.sub(r'\blocalhost:2873\b', f'localhost:{self.port}', text)
        text = re.sub(r'\b127\.0\.0\.1:8880\b', f'127.0.0.1:{self.stats}', text)
        return re.sub(r'(?<![\w/])(?:/var)?/run/psrtd/', f'{self.tmp}/run/', text)

    def command(self, line):
        """A shell line as argv: comment dropped, rewritten."""
        words = shlex.split(self.text(line), comments=True)
        if words and words[0] in ('psrtd', 'psrt-cli'):
            words[0] = str(self.bin_dir / words[0])
        return words


def published(argv, workdir):
    """(topic, what a -v subscriber prints after the topic) of a publish."""
    topic = argv[argv.index('-t') + 1]
    if '-m' in argv:
        payload = argv[argv.index('-m') + 1]
        return topic, None if payload.startswith('==') else payload
    if '-f' in argv:
        return topic, (workdir / argv[argv.index('-f') + 1]).read_text()
    fail(f'cannot tell what {shlex.join(argv)} publishes')


def single_node(found, tmp, certs, bin_dir):
    """The sample configuration's daemon and the psrt-cli examples; a
    summary line."""
    rewrite = Rewrite(tmp, bin_dir)
    (tmp / 'run').mkdir()
    config = tmp / 'my.yml'
    config.write_text(rewrite.text('\n'.join(found['config']) + '\n'))
    (tmp / 'acl.yml').write_text('\n'.join(found['acl']) + '\n')
    (tmp / 'keys.yml').write_text('\n'.join(found['keys']) + '\n')
    (tmp / 'psrt-passwd').write_text(f'alice:{SECRET_HASH}\n')
    (certs / 'reading.bin').write_text(READING)
    publishes = [rewrite.command(line) for line in joined(found['tls'])
                 if line.startswith('psrt-cli ')]

    daemon_lines = [rewrite.command(line.replace('my.yml', str(config)))
                    for line in joined(found['psrtd'])]
    test_config = next(argv for argv in daemon_lines if '--test-config' in argv)
    summary = run(test_config, tmp, 'psrtd --test-config')
    if f'tcp: 127.0.0.1:{rewrite.port}' not in summary:
        fail(f'--test-config does not list the TCP listener:\n{summary}')
    start = next(argv for argv in daemon_lines if '-d' in argv)
    run(start, tmp, 'psrtd -d')
    pid_file = tmp / 'run' / 'psrtd.pid'
    wait_for(pid_file.exists, 'the pid file')
    pid = int(pid_file.read_text().split()[0])
    subscribers = []
    try:
        for argv in (rewrite.command(line) for line in joined(found['cli'])):
            if {'-m', '-f', '-s'} & set(argv):
                publishes.append(argv)
            else:
                subscribers.append(Subscriber(argv, certs))
        if len(subscribers) < 2:
            fail(f'expected several subscribe examples, found {len(subscribers)}')

        probe = [str(bin_dir / 'psrt-cli'), f'127.0.0.1:{rewrite.port}', '-u', 'alice',
                 '-p', 'secret', '-t', 'plant/probe', '-m', 'ready']

        def all_subscribed():
            for sub in subscribers:
                sub.check_running()
            run(probe, certs, 'the probe publish')
            return all(sub.printed('plant/probe', None) for sub in subscribers)

        wait_for(all_subscribed, 'every subscriber to receive the probe')
        for argv in publishes:
            run(argv, certs, 'a publish example')
        expected = [published(argv, certs) for argv in publishes]

        def delivered(sub):
            return all(sub.printed(*message) >= expected.count(message) for message in expected)

        wait_for(lambda: all(delivered(sub) for sub in subscribers),
                 'every message at every subscriber')
    finally:
        for sub in subscribers:
            sub.stop()
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_file.exists(), 'the daemon to stop')
    return f'{len(publishes)} publishes reached {len(subscribers)} subscribers'


def main():
    bin_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / 'target' / 'debug').resolve()
    for binary in ('psrtd', 'psrt-cli'):
        if not (bin_dir / binary).is_file():
            fail(f'{bin_dir / binary} is missing: build psrtd and psrt-cli first')
    found = blocks((ROOT / 'README.md').read_text(),
                   ('psrtd', 'config', 'acl', 'keys', 'tls', 'cli') + readme_cluster.BLOCKS)
    with tempfile.TemporaryDirectory(prefix='psrt-readme-') as tmp_name:
        tmp = Path(tmp_name)
        certs = tmp / 'certs'
        certs.mkdir()
        setup = [line for line in joined(found['tls']) if not line.startswith('psrt-cli ')]
        run(['bash', '-euc', '\n'.join(setup)], certs, 'the TLS recipe')
        print(f'readme-examples: {single_node(found, tmp, certs, bin_dir)}')
        cluster = readme_cluster.run_cluster(found, tmp / 'cluster', certs, bin_dir)
        print(f'readme-examples: cluster: {cluster}')


if __name__ == '__main__':
    main()
