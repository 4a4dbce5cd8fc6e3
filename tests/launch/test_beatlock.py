"""One beat per broker, and never a beat blocking its own successor: real Redis, real holder processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import redis

from python419.launch.beatlock import BeatLockHeld, acquire_redis, lock_key
from tests.procs import RedisServer, wait_until

HOLDER = """
import os, sys, time
from python419.launch.beatlock import acquire_redis
acquire_redis(sys.argv[1], sys.argv[2], sys.argv[3], wait=5)
print("held", flush=True)
how, seconds = sys.argv[4], float(sys.argv[5])
time.sleep(seconds)
if how == "crash":
    os._exit(1)  # no clean-up at all, as after kill -9
"""


def hold(url: str, app: str, stack: str, how: str = "exit", seconds: float = 0.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, app, stack, how, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    return redis_server.url.rsplit("/", 1)[0] + "/11"


def test_a_beat_that_exits_releases_its_lock(url: str) -> None:
    holder = hold(url, "app-exit", "/stack/a")
    assert holder.wait(10) == 0
    assert redis.Redis.from_url(url).get(lock_key("app-exit")) is None  # not left to expire: deleted
    acquire_redis(url, "app-exit", "/stack/b", wait=0)  # another stack gets it at once


def test_a_holder_on_this_host_that_is_gone_is_taken_over(url: str, capfd) -> None:
    holder = hold(url, "app-crash", "/stack/a", "crash")
    holder.wait(10)
    assert redis.Redis.from_url(url).get(lock_key("app-crash")) is not None  # left behind, as after kill -9
    started = time.monotonic()
    acquire_redis(url, "app-crash", "/stack/b", wait=0)
    assert time.monotonic() - started < 1  # not after the 15 s expiry
    assert "took over the beat lock of a beat that is gone" in capfd.readouterr().out


def test_the_same_stacks_predecessor_is_waited_for(url: str) -> None:
    holder = hold(url, "app-restart", "/stack/a", "exit", 1.0)  # a beat still stopping for 1 s
    got: list[float] = []
    started = time.monotonic()
    thread = threading.Thread(
        target=lambda: (acquire_redis(url, "app-restart", "/stack/a", wait=10), got.append(time.monotonic()))
    )
    thread.start()
    thread.join(15)
    holder.wait(5)
    assert got and 0.8 < got[0] - started < 5


def test_a_live_beat_of_another_stack_is_refused_by_name(url: str) -> None:
    holder = hold(url, "app-other", "/stack/a", "exit", 30.0)
    try:
        with pytest.raises(
            BeatLockHeld,
            match=rf"another celery beat for this broker is alive \(pid {holder.pid} on \S+ for /stack/a\)",
        ):
            acquire_redis(url, "app-other", "/stack/b", wait=10)
    finally:
        holder.kill()
        holder.wait()
    assert wait_until(lambda: holder.poll() is not None, 5)
