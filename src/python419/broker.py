"""Talking to the broker directly: is it there, and which workers answer."""

from __future__ import annotations

import threading
from typing import Any

import redis

from python419.settings import Settings

WORKER_PING_TIMEOUT = 0.5


def broker_ping(settings: Settings, timeout: float = 1.0) -> dict[str, Any]:
    """Raises when the broker cannot be reached within `timeout`."""
    if settings.broker == "embedded":
        if not settings.embedded_dir.is_dir():
            raise FileNotFoundError(f"embedded broker folder {settings.embedded_dir} is missing")
        return {"kind": "embedded"}
    redis_ping(str(settings.redis_url), timeout)
    return {"kind": "redis"}


def redis_ping(url: str, timeout: float) -> None:
    """PING on a short-lived connection. Raises redis.RedisError or OSError when nothing answers."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def redis_answers(url: str, timeout: float) -> bool:
    try:
        redis_ping(url, timeout)
    except (redis.RedisError, OSError):
        return False
    return True


def live_workers(celery_app: Any, timeout: float = WORKER_PING_TIMEOUT) -> list[str]:
    # A fresh connection per ping: on a reused one, the previous ping's timed-out BRPOP can swallow the
    # next reply (measured here: 1 call in 4 came back empty with Redis).
    connection = celery_app.connection_for_write()
    try:
        replies = celery_app.control.ping(timeout=timeout, connection=connection) or []
    finally:
        # Closing waits out that pending BRPOP (~0.5 s): do it off the caller's path.
        threading.Thread(target=connection.close, name="p419-ping-close", daemon=True).start()
    return sorted(name for reply in replies for name in reply)
