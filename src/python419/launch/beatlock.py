"""Exactly one celery beat per broker: two beats send every periodic task twice.

On Redis the lock is a key with a short expiry, refreshed while beat lives (so it spans hosts: a second machine
joining with `--only beat` is refused too). On the embedded broker, one folder on one machine, it is an OS file
lock in that folder, released by the OS whatever ends the holder.

A beat never blocks its own successor: the key is deleted when beat exits (if it is still ours), a holder on this
host whose process is gone is taken over at once (a beat killed -9), and a holder of the same stack that is
still stopping (a restart, a reload) is waited for, up to the stack's grace. Only a live beat of another stack
is refused, and the message names it.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import socket
import threading
import time

from .filelock import lock_method, try_lock
from .watchdog import pid_alive

LEASE_MS = 15_000  # a dead beat's key expires within 15 s, whatever host it ran on
REFRESH = 5.0
POLL = 0.1
HOLDER = re.compile(r"^pid (\d+) on (\S+) for (.*)$")

# Delete / take over the key only while it still holds what we read: never someone else's lock.
DELETE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
SWAP_IF = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return false"
)


class BeatLockHeld(Exception):
    """Another beat holds the lock; the message names it."""


def lock_key(app: str) -> str:
    return "p419:beat:" + hashlib.sha256(app.encode()).hexdigest()[:12]


def holder_label(stack: str) -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} for {stack}"


def gone_here(label: str) -> bool:
    """A holder on this host whose process has ended (or whose label we cannot read: a p419 before this one)."""
    found = HOLDER.match(label)
    if found is None:
        return False
    pid, host = int(found.group(1)), found.group(2)
    return host == socket.gethostname() and not pid_alive(pid)


def same_stack(label: str, stack: str) -> bool:
    found = HOLDER.match(label)
    return found is not None and found.group(2) == socket.gethostname() and found.group(3) == stack


def refused(label: str) -> BeatLockHeld:
    return BeatLockHeld(
        f"another celery beat for this broker is alive ({label}): exactly one may run; stop it first"
    )


def acquire_redis(url: str, app: str, stack: str, wait: float) -> threading.Thread:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    key, me = lock_key(app), holder_label(stack)
    deadline = time.monotonic() + wait
    while not client.set(key, me, nx=True, px=LEASE_MS):
        raw = client.get(key)
        if raw is None:
            continue  # expired or released between the two calls: try again at once
        label = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        if gone_here(label):
            if client.eval(SWAP_IF, 1, key, label, me, LEASE_MS):
                print(f"p419: took over the beat lock of a beat that is gone ({label})", flush=True)
                break
            continue
        if not same_stack(label, stack):
            raise refused(label)
        if time.monotonic() > deadline:
            raise BeatLockHeld(f"this stack's previous beat ({label}) still holds the lock after {wait:g} s")
        time.sleep(POLL)  # our own predecessor, still stopping
    stopped = threading.Event()

    def release() -> None:
        stopped.set()
        with contextlib.suppress(redis.RedisError):  # the key expires within LEASE_MS anyway
            client.eval(DELETE_IF, 1, key, me)

    atexit.register(release)

    def refresh() -> None:
        while not stopped.wait(REFRESH):
            try:
                if client.get(key) in (me.encode(), None):
                    client.set(key, me, px=LEASE_MS)
            except redis.RedisError:
                continue  # Redis restarting: the next refresh retakes it

    thread = threading.Thread(target=refresh, name="p419-beat-lock", daemon=True)
    thread.start()
    return thread


def acquire_file(folder: str, wait: float) -> int:
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, "beat.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while not try_lock(fd, lock_method(os.name == "nt")):
        if time.monotonic() > deadline:  # the OS lock: only a live process holds it
            os.close(fd)
            raise BeatLockHeld(
                f"another celery beat is alive on the embedded broker in {folder}: exactly one may run; "
                "stop it first"
            )
        time.sleep(POLL)
    return fd  # held for the life of this process


def acquire(broker: str, url: str, folder: str, app: str, wait: float = 10.0) -> None:
    """broker: embedded | redis (the supervisor's choice); folder: beat's own, in the stack's data dir (the
    stack's identity here); wait: how long a predecessor of this stack may take to let go."""
    if broker == "embedded":
        acquire_file(folder, wait)
    else:
        acquire_redis(url, app, folder, wait)
