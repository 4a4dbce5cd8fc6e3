"""A Redis server that p419 starts (or finds running): the one home for finding its binary, its opt-in password,
its config file, its command line, the line that says it is ready, whether one answers, and its SHUTDOWN.

The OS-dependent parts (where to look, what to install) are pure functions of an explicit platform value.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path, PureWindowsPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from python419.addresses import is_loopback_host
from python419.broker import redis_client, redis_listens, redis_ping
from python419.platforms import Platform
from python419.runfiles import write_private
from python419.settings import Settings

# Redis prints this once its data is loaded (before that it answers -LOADING): Redis 2.8 to 7.x, and the
# Windows ports ("The server is now ready to accept connections on port 6379"). p419 writes Redis's command line
# and config, so the line is always printed (log level notice, to stdout). The port check that follows makes it
# our Redis. It replaced an `INFO server` through redis-py, whose import alone cost the supervisor ~0.1 s of CPU
# while the API and the workers were importing on the same two cores.
REDIS_READY_LINE = "ready to accept connections"


def redis_binary_candidates(platform: Platform, env: dict[str, str]) -> list[str]:
    """Where to look for a Redis-compatible server, best first, after REDIS_SERVER and PATH."""
    if platform != "windows":
        return ["redis-server"]
    names = ["redis-server.exe", "memurai.exe"]
    roots = [
        env.get("ProgramFiles", r"C:\Program Files"),
        env.get("ProgramFiles(x86)", r"C:\Program Files (x86)"),
    ]
    paths = [
        str(PureWindowsPath(root, folder, exe))
        for root in roots
        for folder, exe in (("Memurai", "memurai.exe"), ("Redis", "redis-server.exe"))
    ]
    return names + paths


def find_redis_server(
    platform: Platform,
    env: dict[str, str],
    which: Callable[[str], str | None],
    exists: Callable[[str], bool],
) -> str | None:
    """The Redis server to start: REDIS_SERVER, then PATH, then (Windows) the usual install folders."""
    configured = env.get("REDIS_SERVER")
    if configured:
        return configured if exists(configured) else which(configured)
    for candidate in redis_binary_candidates(platform, env):
        found = which(candidate) if not ("\\" in candidate or "/" in candidate) else candidate
        if found and exists(found):
            return found
    return None


def redis_install_hint(platform: Platform) -> str:
    return {
        "windows": "install Memurai (a Redis for Windows) or run Redis in WSL: wsl sudo apt install redis-server",
        "linux": "sudo apt-get install redis-server (or your distribution's redis package)",
        "macos": "brew install redis",
    }[platform]


def is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def redis_binary(settings: Settings, platform: Platform) -> str | None:
    """The Redis server `p419 up` would start: REDIS_SERVER (from the environment or an env file), then
    PATH, then the usual install folders (Windows). The one lookup `up` and `doctor` share."""
    env = dict(os.environ)
    if settings.redis_server:
        env["REDIS_SERVER"] = settings.redis_server
    return find_redis_server(platform, env, shutil.which, is_executable)


PASSWORD_FILE = "password"  # in the data dir's redis/ folder, owner-only


def generated_password(redis_dir: Path) -> str:
    """The password of a Redis that p419 starts, when asked for (redis_password = true / --redis-password; by
    default the project's URL is used exactly, as by any local Redis): made once and kept owner-only in the
    data dir, so a restarted Redis keeps its AOF's users."""
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


def redis_config(url: str) -> str | None:
    """Config-file lines for the password in REDIS_URL (a file, so the password is not in `ps` output).
    Clients decode a percent-encoded password (`p%40ss` logs in as `p@ss`): the server must get it decoded."""
    parts = urlsplit(url)
    if not parts.password:
        return None
    password = unquote(parts.password)
    if parts.username and parts.username != "default":
        return f"user {unquote(parts.username)} on >{password} ~* &* +@all\nrequirepass {password}\n"
    return f"requirepass {password}\n"


def redis_config_path(redis_dir: Path) -> Path:
    return redis_dir / "p419-redis.conf"


def redis_address(url: str) -> tuple[str, int]:
    """Where a Redis that p419 starts for `url` listens: the URL's loopback address (localhost: 127.0.0.1)."""
    parts = urlsplit(url)
    host = parts.hostname if is_loopback_host(parts.hostname) and parts.hostname != "localhost" else None
    return host or "127.0.0.1", parts.port or 6379


def redis_argv(binary: str, url: str, redis_dir: Path) -> list[str]:
    """Bound to the URL's loopback address and port, AOF on so queued tasks survive a Redis restart."""
    host, port = redis_address(url)
    config = [str(redis_config_path(redis_dir))] if redis_config(url) else []
    return [
        binary,
        *config,
        "--port",
        str(port),
        "--bind",
        str(host),
        "--dir",
        str(redis_dir),
        "--appendonly",
        "yes",
    ]


def write_redis_config(url: str, redis_dir: Path) -> None:
    config = redis_config(url)
    if config is None:
        return
    write_private(redis_config_path(redis_dir), config)  # it holds the password


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
