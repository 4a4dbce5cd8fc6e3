"""Is a port free, and who holds it: asked by `p419 up` before it starts anything, and by the doctor."""

from __future__ import annotations

import os
import socket


def accepts(host: str, port: int, timeout: float = 0.25) -> bool:
    """Does anything accept TCP connections there? A refusal costs microseconds, so cheap checks start with it
    (readiness every 50 ms while a stack starts; is a Redis up before importing a Redis client to ask it)."""
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            return True
    except OSError:
        return False


def try_bind(host: str, port: int) -> OSError | None:
    """None when the port is free. SO_REUSEADDR as uvicorn sets it, so a TIME_WAIT leftover is not 'taken'."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let us bind over a live listener
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def port_owner(port: int) -> str | None:
    """`name (pid N)` of the process listening on the port, when this user may see it."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
    except (psutil.Error, OSError):
        pass
    return None


def held_port_message(what: str, host: str, port: int, setting: str) -> str | None:
    """None when `host:port` is free; else one line naming the holder and the way out."""
    error = try_bind(host, port)
    if error is None:
        return None
    holder = port_owner(port)
    who = f"held by {holder}" if holder else f"not free ({error.strerror or error})"
    return f"{what} port {host}:{port} is {who}: stop it, or set {setting} to another port"
