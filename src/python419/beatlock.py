"""Exactly one celery beat per broker: two beats send every periodic task twice.

On Redis the lock is a key with a short expiry, refreshed while beat lives (so it spans hosts: a second machine
joining with `--only beat` is refused too). On the embedded broker, which is one folder on one machine, it is
an OS file lock in that folder, released by the OS whatever kills the holder.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path

from python419.broker import BrokerTarget

LEASE_MS = 15_000  # a dead beat's key expires within 15 s
REFRESH = 5.0


class BeatLockHeld(Exception):
    """Another beat holds the lock; the message names it."""


def lock_key(target: BrokerTarget, app: str) -> str:
    return "p419:beat:" + hashlib.sha256(app.encode()).hexdigest()[:12]


def holder_label() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def acquire_redis(target: BrokerTarget, app: str) -> threading.Thread:
    import redis

    client = redis.Redis.from_url(target.url, socket_timeout=5, socket_connect_timeout=5)
    key, me = lock_key(target, app), holder_label()
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


def acquire_file(folder: Path) -> int:
    from python419.platforms import detect_platform
    from python419.supervisor.state import _try_lock, lock_method

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "beat.lock", os.O_RDWR | os.O_CREAT, 0o644)
    if not _try_lock(fd, lock_method(detect_platform())):
        os.close(fd)
        raise BeatLockHeld(
            f"another celery beat is alive on the embedded broker in {folder}: exactly one may run; stop it first"
        )
    return fd  # held for the life of this process


def acquire(target: BrokerTarget, app: str) -> None:
    if target.kind == "embedded" and target.folder is not None:
        acquire_file(target.folder)
    else:
        acquire_redis(target, app)
