"""The broker: which one a process talks to (one rule for every verb and every child), is it there, and
which workers answer."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from python419.addresses import safe_url
from python419.launch import contract
from python419.platforms import Platform, find_redis_server
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


# --- the password of a Redis that `p419 up` starts ---------------------------------------------------------

PASSWORD_FILE = "password"  # in the data dir's redis/ folder, owner-only


def generated_password(redis_dir: Path) -> str:
    """A Redis that p419 starts is never open to every local process (one could queue our task directly): it
    gets a password, made once and kept owner-only in the data dir, so a restarted Redis keeps its AOF's users."""
    import secrets

    path = redis_dir / PASSWORD_FILE
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except OSError:
        existing = ""
    if existing:
        return existing
    redis_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    write_private(path, password)
    return password


def write_private(path: Path, text: str) -> None:
    """Written readable by the owner only (chmod 600; on Windows the folder's ACL applies)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def redis_binary(settings: Settings, platform: Platform) -> str | None:
    """The Redis server `p419 up` would start: REDIS_SERVER (from the environment or an env file), then
    PATH, then the usual install folders (Windows). The one lookup `up` and `doctor` share."""
    env = dict(os.environ)
    if settings.redis_server:
        env["REDIS_SERVER"] = settings.redis_server
    return find_redis_server(platform, env, shutil.which, is_executable)


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


def redis_shutdown(url: str, timeout: float = 1.0) -> bool:
    """Ask the Redis at `url` to SHUTDOWN (it fsyncs its AOF and saves, as on SIGTERM). True once it has closed
    the connection on us: it is exiting. Redis acts on SIGTERM only on its next cron tick (hz 10: measured
    0.09-0.10 s from the signal to exit, 6 runs), on the command at once (0.003 s)."""
    import redis

    try:
        with redis_client(url, timeout, retry=False) as client:
            client.ping()  # refused here, not below: redis-py counts a failed AUTH as a ConnectionError,
            client.shutdown()  # and shutdown() takes any ConnectionError for the server closing on us
    except (redis.RedisError, OSError):
        return False  # refused (a password we lack, SHUTDOWN renamed away) or not there: use the signal
    return True


def redis_status(url: str, timeout: float = 0.3) -> Literal["answers", "wants-password", "down"]:
    """One PING: Redis answers, answers but refuses us without (the right) password, or nothing answers.
    A TCP port that refuses is "down" without importing redis-py (most `p419 up` runs start their own Redis)."""
    if not redis_listens(url):
        return "down"
    import redis

    try:
        redis_ping(url, timeout)
    except redis.AuthenticationError:
        return "wants-password"
    except redis.ResponseError as exc:
        return "wants-password" if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) else "down"
    except (redis.RedisError, OSError):
        return "down"
    return "answers"
