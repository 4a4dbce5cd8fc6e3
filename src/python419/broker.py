"""The broker: which one a process talks to (one rule for every verb and every child), is it there, and
which workers answer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from python419.addresses import safe_url
from python419.launch import contract
from python419.ports import accepts
from python419.runfiles import stack_redis_url
from python419.settings import Settings

if TYPE_CHECKING:
    import redis

BrokerKind = Literal["redis", "embedded"]
# With a host named: kombu warns "No hostname was supplied. Reverting to default 'localhost'" each time it
# describes or clones a connection whose URL has none (the banner, "Connected to", every publish).
EMBEDDED_URL = "filesystem://localhost/"


@dataclass(frozen=True)
class BrokerTarget:
    """Where tasks go: a Redis URL, or kombu's filesystem transport in a folder (the embedded broker)."""

    kind: BrokerKind
    url: str
    result_backend: str
    transport_options: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None  # the embedded broker's root

    @property
    def safe(self) -> str:
        return f"embedded broker in {self.folder}" if self.kind == "embedded" else safe_url(self.url)

    def child_env(self) -> dict[str, str]:
        """What every child of `p419 up` gets, so any Celery app uses this broker."""
        env = {
            contract.BROKER: self.kind,
            contract.CELERY_BROKER_URL: self.url,
            contract.CELERY_RESULT_BACKEND: self.result_backend,
        }
        if self.transport_options:
            env[contract.TRANSPORT_OPTIONS] = contract.encode_transport_options(self.transport_options)
        return env


def file_url(path: Path) -> str:
    """A file:// URL as Celery's file result backend parses it (no percent-encoding)."""
    posix = path.resolve().as_posix()
    return "file://" + posix if posix.startswith("/") else "file:///" + posix


def embedded_target(root: Path) -> BrokerTarget:
    options = {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "control_folder": str(root / "control"),
        # kombu moves each consumed message here; by default it goes to the temp folder, which may sit
        # on another drive (then the move is a copy: not atomic, two workers could both take one).
        "store_processed": True,
        "processed_folder": str(root / "processed"),
        # The default 1 s poll made every task wait a second; 50 ms measured at ~0.5 % idle CPU.
        "polling_interval": 0.05,
    }
    return BrokerTarget("embedded", EMBEDDED_URL, file_url(root / "results"), options, root)


def make_embedded_folders(target: BrokerTarget) -> None:
    if target.folder is not None:
        for sub in ("queue", "control", "results", "processed"):
            (target.folder / sub).mkdir(parents=True, exist_ok=True)


def redis_target(url: str) -> BrokerTarget:
    return BrokerTarget("redis", url, url)


def runtime_target(
    settings: Settings, environ: Mapping[str, str], running_broker: str | None = None
) -> BrokerTarget:
    """The broker this process talks to, by one rule:
    a child of `p419 up` uses what the supervisor chose (P419_STACK_BROKER + Celery's variables); a verb in
    another terminal follows the running stack (`running_broker`, from its state file); otherwise the
    user's setting (P419_BROKER=embedded, else Redis)."""
    kind = environ.get(contract.BROKER) or running_broker
    if kind is None:
        kind = "embedded" if settings.broker_mode == "embedded" else "redis"
    if kind == "embedded":
        return embedded_target(settings.embedded_dir)
    url = environ.get(contract.CELERY_BROKER_URL)
    if url is None and running_broker == "redis":
        url = stack_redis_url(
            settings.run_dir
        )  # the Redis the running stack started, with its generated password
    return redis_target(url or settings.broker_redis_url)


def broker_ping(target: BrokerTarget, timeout: float = 1.0) -> dict[str, Any]:
    """Raises when the broker cannot be reached within `timeout`."""
    if target.kind == "embedded":
        if target.folder is None or not target.folder.is_dir():
            raise FileNotFoundError(f"embedded broker folder {target.folder} is missing")
        return {"kind": "embedded"}
    redis_ping(target.url, timeout)
    return {"kind": "redis"}


@contextmanager
def redis_client(url: str, timeout: float, *, retry: bool = True) -> Iterator[redis.Redis]:
    """A short-lived client, closed on the way out: connect and socket timeouts of `timeout`. `retry=False`:
    one try (redis-py otherwise retries a command that lost its connection, with backoff)."""
    import redis

    options: dict[str, Any] = {}
    if not retry:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options["retry"] = Retry(NoBackoff(), 0)
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, **options)
    try:
        yield client
    finally:
        client.close()


def redis_listens(url: str) -> bool:
    """Does anything accept TCP connections at a redis:// URL's host and port? (Other URLs, a unix socket:
    True, ask Redis.) A refusal is an answer without importing redis-py."""
    parts = urlsplit(url)
    return parts.scheme not in ("redis", "rediss") or accepts(
        parts.hostname or "localhost", parts.port or 6379
    )


def redis_ping(url: str, timeout: float) -> None:
    """PING on a short-lived connection. Raises redis.RedisError or OSError when nothing answers."""
    with redis_client(url, timeout) as client:
        client.ping()
