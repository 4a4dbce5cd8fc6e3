"""Plans built without looking at the machine: a project, settings and a broker decision given explicitly."""

from __future__ import annotations

from pathlib import Path

from python419.project import ConfigSource, Flags, Project, ProjectConfig, resolve_project
from python419.settings import Settings
from python419.supervisor.plan import Plan, UpOptions, build_plan, choose_broker


def settings(platform: str, tmp_path: Path, **extra: str) -> Settings:
    return Settings(P419_PLATFORM=platform, P419_DATA_DIR=str(tmp_path), **extra)  # type: ignore[arg-type]


def project_for(tmp_path: Path, flags: Flags = Flags(), config: dict | None = None) -> Project:
    source = None
    if config is not None:
        source = ConfigSource(tmp_path / "p419.toml", "p419.toml", ProjectConfig.from_mapping(config))
    return resolve_project(tmp_path, {}, flags, source)


def plan_for(
    platform: str,
    tmp_path: Path,
    flags: Flags = Flags(),
    *,
    config: dict | None = None,
    mode: str = "auto",
    redis_binary: str | None = "redis-server",
    python: str = "py",
    supervisor_pid: int = 1,
    options: UpOptions = UpOptions(),
    redis_url: str = "redis://127.0.0.1:6379/0",
) -> Plan:
    """The plan for a local Redis that is not running yet (started when a binary is given)."""
    remote = mode == "redis-remote"  # a Redis on another host
    broker = choose_broker(
        "redis" if remote else mode,  # type: ignore[arg-type]
        url="redis://cache.internal:6379/0" if remote else redis_url,
        answers=False,
        redis_binary=redis_binary,
        platform=platform,  # type: ignore[arg-type]
    )
    return build_plan(
        project_for(tmp_path, flags, config),
        settings(platform, tmp_path, REDIS_URL=redis_url),
        options,
        platform=platform,  # type: ignore[arg-type]
        python=python,
        own_python="p419-python",
        broker=broker,
        redis_binary=redis_binary,
        supervisor_pid=supervisor_pid,
    )
