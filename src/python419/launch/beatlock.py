"""Exactly one celery beat per broker: two beats send every periodic task twice.

On Redis the lock is a key with a short expiry, refreshed while beat lives (so it spans hosts: a second machine
joining with `--only beat` is refused too). On the embedded broker, one folder on one machine, it is an OS file
lock in that folder, released by the OS whatever ends the holder.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading

from .filelock import lock_method, try_lock

LEASE_MS = 15_000  # a dead beat's key expires within 15 s
REFRESH = 5.0


class BeatLockHeld(Exception):
    """Another beat holds the lock; the message names it."""


def lock_key(app: str) -> str:
    return "p419:beat:" + hashlib.sha256(app.encode()).hexdigest()[:12]


def holder_label() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def acquire_redis(url: str, app: str) -> threading.Thread:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    key, me = lock_key(app), holder_label()
    if not client.set(key, me, nx=True, px=LEASE_MS):
        holder = client.get(key)
        label = holder.decode(errors="replace") if isinstance(holder, bytes) else str(holder)
        raise BeatLockHeld(
            f"another celery beat for this broker is alive ({label}): exactly one may run; stop it first"
        )

    def refresh() -> None:
        while True:
            threading.Event().wait(REFRESH)
            try:
                if client.get(key) in (me.encode(), None):
                    client.set(key, me, px=LEASE_MS)
            except redis.RedisError:
                continue  # Redis restarting: the next refresh retakes it

    thread = threading.Thread(target=refresh, name="p419-beat-lock", daemon=True)
    thread.start()
    return thread


def acquire_file(folder: str) -> int:
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, "beat.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    if not try_lock(fd, lock_method(os.name == "nt")):
        os.close(fd)
        raise BeatLockHeld(
            f"another celery beat is alive on the embedded broker in {folder}: exactly one may run; stop it first"
        )
    return fd  # held for the life of this process


def acquire(broker: str, url: str, folder: str, app: str) -> None:
    """broker: embedded | redis (the supervisor's choice); folder: the embedded broker's, or beat's own."""
    if broker == "embedded":
        acquire_file(folder)
    else:
        acquire_redis(url, app)
