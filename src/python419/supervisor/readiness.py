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
import os
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


# Linux's sock_diag over netlink (linux/sock_diag.h, linux/inet_diag.h): the kernel lists the listening TCP
# sockets only. /proc/net/tcp, which psutil reads, walks every socket of the machine and prints it: 10-12 ms of
# the supervisor's CPU per readiness check on a busy test machine (twice before a stack is ready), this 0.04 ms.
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST_DUMP = 4, 20, 0x301
NLMSG_ERROR, NLMSG_DONE, TCP_LISTEN = 2, 3, 10


def listening_inodes(port: int) -> set[int] | None:
    """The inodes of the sockets listening on TCP `port` (IPv4 and IPv6); None without sock_diag (not Linux)."""
    import socket
    import struct

    family_netlink = getattr(socket, "AF_NETLINK", None)
    if family_netlink is None:
        return None
    found: set[int] = set()
    try:
        with socket.socket(family_netlink, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as diag:
            for family in (socket.AF_INET, socket.AF_INET6):
                # inet_diag_req_v2 (family, protocol, ext, pad, states) + inet_diag_sockid (ports, addresses,
                # interface, cookie): every listening socket of the family; the port is checked below.
                request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN) + bytes(48)
                header = struct.pack(
                    "=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST_DUMP, 1, 0
                )
                diag.send(header + request)
                while not _take_answers(diag.recv(65536), port, found):
                    pass
    except (OSError, struct.error):
        return None
    return found


def _take_answers(data: bytes, port: int, found: set[int]) -> bool:
    """Adds the inodes on `port` of one netlink read (inet_diag_msg); True when the dump is complete."""
    import struct

    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if kind == NLMSG_DONE:
            return True
        if kind == NLMSG_ERROR or length < 16:
            raise OSError("sock_diag refused the request")
        body = offset + 16  # family, state, timer, retrans; the socket's id: sport (network order) first
        if struct.unpack_from("!H", data, body + 4)[0] == port:
            found.add(struct.unpack_from("=I", data, body + 4 + 48 + 16)[0])  # after expires, queues, uid
        offset += (length + 3) & ~3
    return False


def fds_hold(pids: set[int], inodes: set[int]) -> bool | None:
    """Does one of `pids` have one of these sockets open? None when a process's fds cannot be read."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue  # gone since
        except OSError:
            return None
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return True
    return False


def owns_port(pid: int, port: int) -> bool:
    """Does the child's process tree listen on `port`? On Linux from the kernel's list of listening sockets;
    elsewhere asked of each process (works unprivileged for our own children), then of the whole table."""
    import psutil

    pids = tree_pids(pid)
    inodes = listening_inodes(port)
    if inodes is not None:
        held = fds_hold(pids, inodes) if inodes else True  # nobody listed: the HTTP answer alone decides
        if held is not None:
            return held
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
