"""What `p419 up` will run: a pure function of the settings, the options and what was found on the machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from python419.platforms import (
    Platform,
    Pool,
    choose_pool,
    creation_flags,
    orphan_guard,
    redis_install_hint,
    stop_method,
)
from python419.settings import Settings

BrokerMode = Literal["auto", "redis", "embedded"]
Kind = Literal["redis", "api", "worker"]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# Stop order: workers finish their task first, then the API stops taking products, then the broker goes.
STOP_ORDER: tuple[Kind, ...] = ("worker", "api", "redis")


@dataclass(frozen=True)
class UpOptions:
    workers: int = 1
    pool: Pool | None = None
    concurrency: int | None = None
    loglevel: str = "info"
    reload: bool = False
    broker: BrokerMode = "auto"


@dataclass(frozen=True)
class BrokerDecision:
    kind: Literal["reuse-redis", "start-redis", "remote-redis", "embedded"]
    message: str
    loud: bool = False  # the user should notice: say it in colour


class PlanError(Exception):
    """The requested stack cannot run here; the message says what to do."""


@dataclass(frozen=True)
class ChildSpec:
    name: str
    kind: Kind
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # changes on top of the supervisor's environment
    ready_file: Path | None = None


@dataclass(frozen=True)
class Plan:
    platform: Platform
    broker: BrokerDecision
    children: list[ChildSpec]
    env: dict[str, str]  # what every child gets
    pool: Pool
    pool_reason: str
    pool_warning: str | None
    reload_warning: str | None
    creation_flags: int
    stop: str
    orphan_guard: str
    api_url: str
    data_dir: Path

    def by_kind(self, kind: Kind) -> list[ChildSpec]:
        return [c for c in self.children if c.kind == kind]


def http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def is_local_redis(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def choose_broker(
    mode: BrokerMode, *, url: str, answers: bool, redis_binary: str | None, platform: Platform
) -> BrokerDecision:
    if mode == "embedded":
        return BrokerDecision("embedded", "embedded broker (--broker embedded): no Redis server needed")
    if answers:
        return BrokerDecision(
            "reuse-redis", f"Redis already answers at {url}: reusing it (it will be left running)"
        )
    if not is_local_redis(url):
        return BrokerDecision("remote-redis", f"using the remote Redis at {url} (not started by p419)")
    if redis_binary:
        return BrokerDecision("start-redis", f"starting {redis_binary} for {url}")
    if mode == "redis":
        raise PlanError(f"no Redis server found to start for {url}: {redis_install_hint(platform)}")
    return BrokerDecision(
        "embedded",
        "NO REDIS SERVER FOUND: running on the embedded broker (files under the data dir), which is fine for "
        f"development. For a real broker: {redis_install_hint(platform)}",
        loud=True,
    )


def redis_config(url: str) -> str | None:
    """Config-file lines for the password in REDIS_URL (a file, so the password is not in `ps` output)."""
    parts = urlsplit(url)
    if not parts.password:
        return None
    if parts.username and parts.username != "default":
        return f"user {parts.username} on >{parts.password} ~* &* +@all\nrequirepass {parts.password}\n"
    return f"requirepass {parts.password}\n"


def redis_config_path(data_dir: Path) -> Path:
    return data_dir / "redis" / "p419-redis.conf"


def redis_argv(binary: str, url: str, data_dir: Path) -> list[str]:
    """Bound to loopback on the URL's port, AOF on so queued tasks survive a Redis restart."""
    port = urlsplit(url).port or 6379
    config = [str(redis_config_path(data_dir))] if redis_config(url) else []
    return [
        binary,
        *config,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir / "redis"),
        "--appendonly",
        "yes",
    ]


def reload_supported(platform: Platform, options: UpOptions) -> bool:
    """uvicorn's reloader restarts its server with CTRL_C_EVENT, which on Windows cannot be aimed at one
    process group: it would stop the whole stack. So no --reload under `up` on Windows."""
    return options.reload and platform != "windows"


def build_plan(
    settings: Settings,
    options: UpOptions,
    *,
    python: str,
    broker: BrokerDecision,
    redis_binary: str | None,
    supervisor_pid: int,
) -> Plan:
    platform = settings.platform
    data_dir = settings.data_dir.resolve()
    choice = choose_pool(platform, options.pool)
    run_dir = data_dir / "run"
    env = {
        # Children write to a pipe; without this Windows encodes it in the ANSI code page.
        "PYTHONIOENCODING": "utf-8",
        "P419_DATA_DIR": str(data_dir),
        "P419_BROKER": "embedded" if broker.kind == "embedded" else "redis",
        "P419_PLATFORM": platform,
        "P419_SUPERVISOR_PID": str(supervisor_pid),
        "PYTHONUNBUFFERED": "1",  # lines reach the printer as they are written
    }
    if broker.kind != "embedded":
        env["REDIS_URL"] = str(settings.redis_url)
    children: list[ChildSpec] = []
    if broker.kind == "start-redis" and redis_binary:
        argv = redis_argv(redis_binary, str(settings.redis_url), data_dir)
        if orphan_guard(platform) == "watchdog":
            # No parent-death signal on macOS, and redis-server runs no watchdog of ours: wrap it in one.
            argv = [python, "-m", "python419.supervisor.guard", *argv]
        children.append(ChildSpec("redis", "redis", argv))
    api_argv = [python, "-m", "python419", "api"] + (
        ["--reload"] if reload_supported(platform, options) else []
    )
    children.append(ChildSpec("api", "api", api_argv))
    for n in range(1, options.workers + 1):
        name = f"worker{n}"
        argv = [python, "-m", "python419", "worker", f"--pool={choice.pool}", f"--hostname={name}@%h"]
        argv.append(f"--loglevel={options.loglevel}")
        if options.concurrency is not None and choice.pool != "solo":
            argv.append(f"--concurrency={options.concurrency}")
        ready = run_dir / f"{name}.ready"
        children.append(ChildSpec(name, "worker", argv, {"P419_READY_FILE": str(ready)}, ready))
    return Plan(
        platform=platform,
        broker=broker,
        children=children,
        env=env,
        pool=choice.pool,
        pool_reason=choice.reason,
        pool_warning=choice.warning,
        reload_warning=(
            "--reload is not available under p419 up on Windows (uvicorn reloads with CTRL_C_EVENT, which "
            "reaches the whole console); run `p419 api --reload` in its own terminal instead"
            if options.reload and not reload_supported(platform, options)
            else None
        ),
        creation_flags=creation_flags(platform),
        stop=stop_method(platform).kind,
        orphan_guard=orphan_guard(platform),
        api_url=http_url(settings.api_host, settings.api_port),
        data_dir=data_dir,
    )
