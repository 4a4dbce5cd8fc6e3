"""Is a child ready, and is the server that answers really that child? Short, cheap probes.

- Redis (tcp, after its "Ready to accept connections" line: see redis_server.REDIS_READY_LINE): the port accepts and
  the child's tree listens on it; otherwise another stack's Redis on the same port would answer for a child that
  could not bind.
- http: any HTTP answer on the ready path, from a port that the child's process tree listens on. A 5xx means
  the server runs and the app has a bug there: ready, with a warning (tearing the stack down for it hid a
  project's working endpoints behind its broken home page). Not ready is no answer at all.
- tcp: the port accepts, and the child's tree listens on it (`api_command` servers).
- file: the worker wrote its pid there on Celery's worker_ready (no 1-second `inspect ping`).

Each network probe starts with a TCP connect, which a port nobody listens on refuses in microseconds. Measured
with py-spy on `p419 up`: an `httpx.get` per 50 ms API probe (each a new client and a new SSL context, ~20 ms
of CPU) took 40 % of a core from the children while they were starting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from python419.ports import accepts
from python419.supervisor.plan import ChildSpec, Readiness

PROBE_TIMEOUT = 0.25
PidOf = Callable[[str], int | None]


def tree_pids(pid: int) -> set[int]:
    import psutil  # here and below: imported at the first probe, after the children are spawned

    try:
        root = psutil.Process(pid)
        return {pid, *(p.pid for p in root.children(recursive=True))}
    except psutil.Error:
        return set()


def listening_pids(port: int) -> set[int] | None:
    """Pids with a listening TCP socket on `port`; None or empty when the OS will not tell (we do not judge)."""
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    return {
        c.pid
        for c in connections
        # pid 0 is no owner (Windows' idle process): Wine 8 lists every listening socket with pid 0.
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }


def owns_port(pid: int, port: int) -> bool:
    """Does the child's process tree listen on `port`? Asked of each process (works unprivileged for our own
    children), then of the whole table as a fallback."""
    import psutil

    pids = tree_pids(pid)
    for member in pids:
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(member).net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return True
    holders = listening_pids(port)
    # Only a known other holder is a "no": where the OS names no listener (Wine 8 lists every listening socket
    # with pid 0, and none per process), the HTTP answer alone decides.
    return not holders or bool(holders & pids)


def http_ready(url: str, pid: int) -> bool | str:
    """Any answer on the ready path; a 5xx is ready with a warning (the standard library's client: no client
    object, no SSL context for a plain-HTTP probe of a loopback port)."""
    import http.client

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    if not accepts(host, port):
        return False
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(host, port, timeout=PROBE_TIMEOUT)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", path)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    if not owns_port(pid, port):
        return False
    return f"it answers {status} on {path} (its server runs; the app fails there)" if status >= 500 else True


def tcp_ready(target: str, pid: int) -> bool:
    host, _, port = target.rpartition(":")
    return accepts(host, int(port)) and owns_port(pid, int(port))


def file_ready(path: str, pid: int) -> bool:
    try:
        written = Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return not written.isdigit() or int(written) in tree_pids(pid)


CHECKS: dict[str, Callable[[str, int], bool | str]] = {
    "http": http_ready,
    "tcp": tcp_ready,
    "file": file_ready,
}


class Probe:
    """`probe(spec)` for the manager; `pid_of(name)` gives the pid of the child now running under that name."""

    def __init__(self, pid_of: PidOf) -> None:
        self.pid_of = pid_of

    def __call__(self, spec: ChildSpec) -> bool | str:
        ready: Readiness | None = spec.ready
        pid = self.pid_of(spec.name)
        if ready is None:
            return True
        if pid is None:
            return False
        return CHECKS[ready.kind](ready.target, pid)
