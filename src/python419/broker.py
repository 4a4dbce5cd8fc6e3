"""Talking to the broker directly: is it there, and which workers answer."""

from __future__ import annotations

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
    client = redis.Redis.from_url(
        str(settings.redis_url), socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()
    return {"kind": "redis"}


def live_workers(celery_app: Any, timeout: float = WORKER_PING_TIMEOUT) -> list[str]:
    replies = celery_app.control.ping(timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)
