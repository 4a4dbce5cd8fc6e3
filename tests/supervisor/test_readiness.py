"""Readiness must be answered by our own child: another server on the same port does not count (two `up`
started at once both printed "ready" although one's Redis and the other's API could not bind)."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from python419.supervisor.readiness import http_ready, tcp_ready
from tests.plans import plan_for
from tests.procs import RedisServer, free_port, wait_until


@pytest.fixture
def stranger() -> Iterator[int]:
    """The pid of an unrelated child (not the server's parent: a tree includes its descendants)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_redis_is_ready_once_it_says_so_and_only_when_it_is_our_child(tmp_path: Path, stranger: int) -> None:
    """The plan's Redis command line, run for real: it prints the line the manager waits for, then the port
    check tells our Redis from anyone else's."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    spec = next(c for c in plan_for("linux", tmp_path, redis_url=url).children if c.kind == "redis")
    assert spec.ready is not None and spec.ready.line and spec.ready.target == f"127.0.0.1:{port}"
    argv = ["redis-server", *spec.argv[1:]]
    Path(argv[argv.index("--dir") + 1]).mkdir(parents=True)  # as `p419 up` makes it
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    try:
        printed = [lines.get(timeout=15)]
        while not spec.ready.said_by(printed[-1]):
            printed.append(lines.get(timeout=15))  # queue.Empty: Redis never said it
        assert tcp_ready(spec.ready.target, proc.pid)
        assert redis.Redis.from_url(url).ping()  # ready means it answers commands
        assert not tcp_ready(spec.ready.target, stranger)  # answers, but it is not ours
    finally:
        proc.kill()
        proc.wait()


def test_http_is_ready_only_from_a_port_our_child_listens_on(tmp_path: Path, stranger: int) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        assert wait_until(lambda: http_ready(url, proc.pid), 15)
        assert not http_ready(url, stranger)  # the same answer, from someone else's server
    finally:
        proc.kill()
        proc.wait()


SERVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = {"/health?workers=false": 200, "/down": 503}.get(self.path, 404)
        self.send_response(code)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_http_ready_means_an_answer_on_the_ready_path_a_5xx_with_a_warning(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    assert not http_ready(f"{base}/health?workers=false", 1)  # nothing listens yet: no answer
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        assert wait_until(lambda: http_ready(f"{base}/health?workers=false", proc.pid), 15)  # path and query
        assert http_ready(f"{base}/missing", proc.pid)  # a 404 is an answer: the server is up
        # a 5xx is an answer too: the server runs and the app has a bug there; ready, saying so
        assert (
            http_ready(f"{base}/down", proc.pid)
            == "it answers 503 on /down (its server runs; the app fails there)"
        )
    finally:
        proc.kill()
        proc.wait()


def test_redis_shutdown_stops_a_redis_we_may_ask_and_leaves_others(tmp_path: Path) -> None:
    from python419.redis_server import redis_shutdown

    server = RedisServer(free_port(), tmp_path).start()
    try:
        assert server.proc is not None
        wrong = server.url.replace("redis://", "redis://:not-the-password@")
        server_client = redis.Redis.from_url(server.url)
        server_client.config_set("requirepass", "sesame")
        assert not redis_shutdown(wrong)  # refused: the caller falls back to the signal
        assert server.proc.popen.poll() is None
        assert redis_shutdown(server.url.replace("redis://", "redis://:sesame@"))
        assert server.proc.popen.wait(timeout=10) == 0
        assert not redis_shutdown(server.url)  # nothing there any more
    finally:
        server.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sock_diag is Linux's (elsewhere: psutil)")
def test_the_kernels_list_of_listening_sockets_names_ours_and_no_other() -> None:
    """Linux: the listening sockets come from sock_diag, not /proc/net/tcp (10-12 ms per check there)."""
    from python419.supervisor.readiness import fds_hold, listening_inodes

    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.1", 0))
        v4.listen()
        port = v4.getsockname()[1]
        v6.bind(("::1", port))
        v6.listen()
        inodes = listening_inodes(port)
        assert inodes == {os.fstat(v4.fileno()).st_ino, os.fstat(v6.fileno()).st_ino}
        assert fds_hold({os.getpid()}, inodes) is True
        child = subprocess.Popen(["sleep", "30"])
        try:
            assert fds_hold({child.pid}, inodes) is False  # listening, but not in that process
        finally:
            child.kill()
            child.wait()
    assert listening_inodes(port) == set()  # closed: nobody listens there any more
