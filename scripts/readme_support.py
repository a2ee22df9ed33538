"""What scripts/readme-examples.py and scripts/readme_cluster.py share:
the README's marked blocks, free ports, bounded runs and waits, and
psrt-cli subscribers whose output is read as it comes."""

import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAIT = 10  # seconds any single expectation may take
# `htpasswd -B` of "secret" at cost 4 (the cheapest; same format).
SECRET_HASH = '$2b$04$yoa4/Dxk2jVodGqqt07mVOpEs8e/JzbWUMROopGsFfyx96fXGWr7O'


def fail(message):
    sys.exit(f'readme-examples: {message}')


def blocks(readme, required):
    """NAME -> the lines of the fenced block after its marker; every name
    in `required` must be there."""
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
    for name in required:
        if name not in found:
            fail(f'README.md has no block marked {name!r}')
    return found


_taken = set()


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 a moment ago, and
    not handed out before by this process."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(('127.0.0.1', 0))
            port = tcp.getsockname()[1]
            if port in _taken:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(('127.0.0.1', port))
                except OSError:
                    continue
            _taken.add(port)
            return port
    fail('no free port')


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


def wait_for(check, what, seconds=WAIT):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    fail(f'timed out waiting for {what}')


def stop(proc):
    """SIGTERM to a process this script started (by its PID), a bounded
    wait, then SIGKILL; False when it took SIGKILL."""
    if proc.poll() is not None:
        return True
    proc.terminate()
    try:
        proc.wait(timeout=WAIT)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=WAIT)
        return False


class Subscriber:
    """A psrt-cli subscribe example running in the background."""

    def __init__(self, argv, cwd):
        self.argv = argv
        self.verbose = '-v' in argv
        self._out = tempfile.TemporaryFile(mode='w+')
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=self._out,
                                     stderr=subprocess.STDOUT, text=True)

    def output(self):
        self._out.seek(0)
        return self._out.read()

    def check_running(self):
        """Fails when the subscriber has exited."""
        if self.proc.poll() is not None:
            fail(f'subscriber exited: {shlex.join(self.argv)}\n{self.output()}')

    def printed(self, topic, payload):
        """How often it printed a message (`payload` None: any payload)."""
        text = self.output()
        if payload is None:
            return text.count(f'{topic} ' if self.verbose else f'{topic}\n')
        return text.count(f'{topic} {payload}\n' if self.verbose else f'{topic}\n{payload}\n')

    def stop(self):
        stop(self.proc)
