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
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAIT = 10  # seconds any single expectation may take
# `htpasswd -B` of "secret" at cost 4 (the cheapest; same format).
ALICE_HASH = '$2b$04$yoa4/Dxk2jVodGqqt07mVOpEs8e/JzbWUMROopGsFfyx96fXGWr7O'
READING = '21.7'  # what `reading.bin` holds for `-f reading.bin`


def fail(message):
    sys.exit(f'readme-examples: {message}')


def blocks(readme):
    """NAME -> the lines of the fenced block after its marker."""
    found = {}
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        marker = re.fullmatch(r'<!-- readme-test: ([\w-]+) -->', line.strip())
        if not marker:
            continue
        start = i + 1
        if start >= len(lines) or not lines[start].startswith('```'):
            fail(f'marker {marker.group(1)!r} is not followed by a fenced block')
        end = next(j for j in range(start + 1, len(lines)) if lines[j].startswith('```'))
        found[marker.group(1)] = lines[start + 1:end]
    for name in ('psrtd', 'config', 'acl', 'keys', 'tls', 'cli'):
        if name not in found:
            fail(f'README.md has no block marked {name!r}')
    return found


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 a moment ago."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(('127.0.0.1', 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(('127.0.0.1', port))
                except OSError:
                    continue
            return port
    fail('no free port')


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


def joined(lines):
    """Shell lines with backslash continuations joined."""
    out, pending = [], ''
    for line in lines:
        if line.endswith('\\'):
            pending += line[:-1] + ' '
        else:
            out.append(pending + line)
            pending = ''
    return [line for line in out if line.strip()]


def run(argv, cwd, what):
    """Runs argv to completion; its stdout. Fails on a non-zero exit."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=WAIT * 3)
    except subprocess.TimeoutExpired:
        fail(f'{what} did not finish: {shlex.join(argv)}')
    if done.returncode != 0:
        fail(f'{what} failed ({done.returncode}): {shlex.join(argv)}\n{done.stdout}{done.stderr}')
    return done.stdout


def wait_for(check, what):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    fail(f'timed out waiting for {what}')


def published(argv, workdir):
    """(topic, what a -v subscriber prints after the topic) of a publish."""
    topic = argv[argv.index('-t') + 1]
    if '-m' in argv:
        payload = argv[argv.index('-m') + 1]
        return topic, None if payload.startswith('==') else payload
    if '-f' in argv:
        return topic, (workdir / argv[argv.index('-f') + 1]).read_text()
    fail(f'cannot tell what {shlex.join(argv)} publishes')


def main():
    bin_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / 'target' / 'debug').resolve()
    for binary in ('psrtd', 'psrt-cli'):
        if not (bin_dir / binary).is_file():
            fail(f'{bin_dir / binary} is missing: build psrtd and psrt-cli first')
    found = blocks((ROOT / 'README.md').read_text())
    with tempfile.TemporaryDirectory(prefix='psrt-readme-') as tmp_name:
        tmp = Path(tmp_name)
        rewrite = Rewrite(tmp, bin_dir)
        (tmp / 'run').mkdir()
        certs = tmp / 'certs'
        certs.mkdir()
        config = tmp / 'my.yml'
        config.write_text(rewrite.text('\n'.join(found['config']) + '\n'))
        (tmp / 'acl.yml').write_text('\n'.join(found['acl']) + '\n')
        (tmp / 'keys.yml').write_text('\n'.join(found['keys']) + '\n')
        (tmp / 'psrt-passwd').write_text(f'alice:{ALICE_HASH}\n')
        (certs / 'reading.bin').write_text(READING)

        tls_lines = joined(found['tls'])
        setup = [line for line in tls_lines if not line.startswith('psrt-cli ')]
        run(['bash', '-euc', '\n'.join(setup)], certs, 'the TLS recipe')
        publishes = [rewrite.command(line) for line in tls_lines if line.startswith('psrt-cli ')]

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
            cli = [rewrite.command(line) for line in joined(found['cli'])]
            for argv in cli:
                if not {'-m', '-f', '-s'} & set(argv):
                    out = tempfile.TemporaryFile(mode='w+')
                    proc = subprocess.Popen(argv, cwd=certs, stdout=out,
                                            stderr=subprocess.STDOUT, text=True)
                    subscribers.append((argv, proc, out))
                else:
                    publishes.append(argv)
            if len(subscribers) < 2:
                fail(f'expected several subscribe examples, found {len(subscribers)}')

            def output(sub):
                sub[2].seek(0)
                return sub[2].read()

            probe = [str(bin_dir / 'psrt-cli'), f'127.0.0.1:{rewrite.port}', '-u', 'alice',
                     '-p', 'secret', '-t', 'plant/probe', '-m', 'ready']

            def all_subscribed():
                for argv, proc, _ in subscribers:
                    if proc.poll() is not None:
                        fail(f'subscriber exited: {shlex.join(argv)}\n{output((argv, proc, _))}')
                run(probe, certs, 'the probe publish')
                return all('plant/probe' in output(sub) for sub in subscribers)

            wait_for(all_subscribed, 'every subscriber to receive the probe')
            for argv in publishes:
                run(argv, certs, 'a publish example')
            expected = [published(argv, certs) for argv in publishes]

            def delivered(sub):
                text = output(sub)
                verbose = '-v' in sub[0]
                for topic, payload in expected:
                    if payload is None:
                        want = f'{topic} ' if verbose else f'{topic}\n'
                    else:
                        want = f'{topic} {payload}\n' if verbose else f'{topic}\n{payload}\n'
                    if text.count(want) < sum(1 for t, p in expected if (t, p) == (topic, payload)):
                        return False
                return True

            wait_for(lambda: all(delivered(sub) for sub in subscribers),
                     'every message at every subscriber')
        finally:
            for _, proc, _ in subscribers:
                proc.terminate()
                try:
                    proc.wait(timeout=WAIT)
                except subprocess.TimeoutExpired:
                    proc.kill()
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not pid_file.exists(), 'the daemon to stop')
    print(f'readme-examples: {len(publishes)} publishes reached {len(subscribers)} subscribers')


if __name__ == '__main__':
    main()
