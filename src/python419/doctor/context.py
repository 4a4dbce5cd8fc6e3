"""Everything the checks read, gathered once: settings (or why they are invalid), the .env file, and the
lazily computed facts that several checks share (one broker probe, one app import)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from dotenv import dotenv_values

from python419.doctor.app_spec import AppSpec
from python419.doctor.lazy import Lazy
from python419.doctor.probes.app_probe import AppProbe, probe_app
from python419.doctor.probes.broker_probe import BrokerProbe, probe_broker
from python419.doctor.redact import Redactor, ours, secrets_in
from python419.platforms import Platform, detect_platform
from python419.settings import Settings, SettingsError, load_settings


@dataclass(frozen=True)
class EnvFile:
    path: Path  # where p419 reads it: .env in the current directory
    found: bool
    values: dict[str, str | None] = field(default_factory=dict)
    elsewhere: Path | None = None  # a .env in a parent folder, which p419 does NOT read


@dataclass
class Context:
    cwd: Path
    environ: dict[str, str]
    env_file: EnvFile
    settings: Settings | None
    settings_error: str | None
    platform: Platform
    app: AppSpec
    broker: Lazy[BrokerProbe]
    app_probe: Lazy[AppProbe]
    redact: Redactor

    def path(self, path: Path) -> Path:
        """A settings path as the stack sees it (relative ones are relative to where p419 runs)."""
        return path if path.is_absolute() else self.cwd / path

    @property
    def config(self) -> Settings:
        """The settings, for checks declared with needs_settings (the runner skips them otherwise)."""
        assert self.settings is not None
        return self.settings


def read_env_file(cwd: Path) -> EnvFile:
    path = cwd / ".env"
    if path.is_file():
        return EnvFile(path, True, dict(dotenv_values(path)))
    elsewhere = next((p / ".env" for p in cwd.parents if (p / ".env").is_file()), None)
    return EnvFile(path, False, elsewhere=elsewhere)


def effective_platform(settings: Settings | None, environ: dict[str, str]) -> Platform:
    if settings is not None:
        return settings.platform
    raw = environ.get("P419_PLATFORM", "").strip().lower()
    return raw if raw in get_args(Platform) else detect_platform()  # type: ignore[return-value]


def build_context(app: AppSpec, cwd: Path | None = None) -> Context:
    cwd = cwd or Path.cwd()
    environ = dict(os.environ)
    env_file = read_env_file(cwd)
    settings: Settings | None
    try:
        settings, error = load_settings(_env_file=env_file.path), None
    except SettingsError as exc:
        settings, error = None, str(exc)

    def broker() -> BrokerProbe:
        assert settings is not None
        return probe_broker(settings, cwd)

    return Context(
        cwd=cwd,
        environ=environ,
        env_file=env_file,
        settings=settings,
        settings_error=error,
        platform=effective_platform(settings, environ),
        app=app,
        broker=Lazy(broker),
        app_probe=Lazy(lambda: probe_app(app, cwd, environ)),
        redact=Redactor(secrets_in({**ours(environ), **env_file.values})),
    )
