"""One short connection to the broker that gathers everything the broker, queue, workers and exposure checks
need: reachable or why not, version, round-trip time, how Redis is bound, messages waiting."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from python419.addresses import safe_url
from python419.broker import BrokerTarget

ErrorKind = Literal["refused", "timeout", "auth", "missing", "other"]
BROKER_TIMEOUT = 1.0
QUEUE = "celery"
# kombu's Redis transport keeps one list per priority step: "celery", then "celery\x06\x163" and so on.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
LOOPBACK_NAMES = ("localhost", "::1", "0:0:0:0:0:0:0:1")


def is_loopback(host: str | None) -> bool:
    if not host:
        return True  # unix sockets
    host = host.strip("[]").lower()
    return host in LOOPBACK_NAMES or host.startswith("127.")


@dataclass(frozen=True)
class BrokerProbe:
    kind: Literal["redis", "embedded"]
    url: str  # safe for output: no password
    host: str | None = None
    port: int | None = None
    has_password: bool = False
    error_kind: ErrorKind | None = None
    error: str | None = None
    version: str | None = None
    rtt_ms: float | None = None
    bind: str | None = None  # CONFIG GET bind; None when CONFIG is disabled
    protected_mode: str | None = None
    waiting: int | None = None  # messages in the default queue

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def local(self) -> bool:
        return is_loopback(self.host)


def classify_redis_error(exc: BaseException) -> ErrorKind:
    """Refused (nothing listens), timeout (something listens but does not answer, or packets are dropped),
    auth (Redis wants a password, or another one), other (DNS, TLS, ...)."""
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return "auth"
    if "HELLO must be called with the client already authenticated" in text:
        return "auth"
    if isinstance(exc, redis.TimeoutError | TimeoutError):
        return "timeout"
    refused = ("refused", f"Error {errno.ECONNREFUSED} ", "10061")
    if isinstance(exc, ConnectionRefusedError) or any(marker in text for marker in refused):
        return "refused"
    return "other"


def probe_redis(url: str, timeout: float = BROKER_TIMEOUT, queues: tuple[str, ...] = (QUEUE,)) -> BrokerProbe:
    parts = urlsplit(url)
    port = (parts.port or 6379) if parts.hostname else None  # unix:// sockets have neither
    base = BrokerProbe("redis", safe_url(url), parts.hostname, port, has_password=bool(parts.password))
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()  # connects
        started = time.perf_counter()
        client.ping()
        rtt_ms = (time.perf_counter() - started) * 1000
        version = str(client.info("server").get("redis_version", "?"))
        waiting = sum(int(client.llen(q + suffix)) for q in queues for suffix in PRIORITY_SUFFIXES)
        bind, protected = _config(client)
    except Exception as exc:
        return replace(base, error_kind=classify_redis_error(exc), error=f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return replace(base, version=version, rtt_ms=rtt_ms, waiting=waiting, bind=bind, protected_mode=protected)


def _config(client: redis.Redis) -> tuple[str | None, str | None]:
    """How Redis is bound; managed Redis often disables CONFIG, which is fine: we just don't know."""
    try:
        bind = client.config_get("bind").get("bind")
        protected = client.config_get("protected-mode").get("protected-mode")
    except redis.ResponseError:
        return None, None
    return (str(bind) if bind is not None else None), (str(protected) if protected is not None else None)


def probe_embedded(folder: Path, queues: tuple[str, ...] = (QUEUE,)) -> BrokerProbe:
    url = f"filesystem://{folder}"
    if not folder.is_dir():
        return BrokerProbe("embedded", url, error_kind="missing", error=f"folder {folder} does not exist")
    queue = folder / "queue"
    waiting = sum(1 for q in queues for _ in queue.glob(f"*.{q}.msg")) if queue.is_dir() else 0
    return BrokerProbe("embedded", url, waiting=waiting)


def probe_broker(target: BrokerTarget, queues: tuple[str, ...] = (QUEUE,)) -> BrokerProbe:
    """`queues`: whose waiting messages to count (the stack's own queue and Celery's default)."""
    if target.kind == "embedded" and target.folder is not None:
        return probe_embedded(target.folder, queues)
    return probe_redis(target.url, queues=queues)
