"""Everything the checks read, gathered once: settings (or why they are invalid), the .env file, and the
lazily computed facts that several checks share (one broker probe, one app import)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from dotenv import dotenv_values

from python419.broker import BrokerTarget, redis_target, runtime_target
from python419.doctor.app_spec import DEFAULT_APP, AppSpec, parse_app_spec
from python419.doctor.lazy import Lazy
from python419.doctor.probes.app_probe import AppProbe, probe_app
from python419.doctor.probes.broker_probe import BrokerProbe, probe_broker
from python419.doctor.redact import Redactor, ours, secrets_in
from python419.platforms import Platform, detect_platform
from python419.project import Project, ProjectError, load_project, project_settings
from python419.runfiles import running_broker
from python419.settings import Settings, SettingsError


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
    settings_error_names: tuple[str, ...]
    project: Project | None
    explicit_app: bool  # --app given: checked as the bundled app's replacement (our task expected)
    platform: Platform
    app: AppSpec
    target: BrokerTarget  # the broker the stack uses: a running `up`'s choice, else the settings'
    queues: tuple[str, ...]  # where the stack's messages wait
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


def read_env_file(cwd: Path, path: Path | None = None) -> EnvFile:
    path = path or cwd / ".env"
    if path.is_file():
        return EnvFile(path, True, dict(dotenv_values(path)))
    elsewhere = next((p / ".env" for p in cwd.parents if (p / ".env").is_file()), None)
    return EnvFile(path, False, elsewhere=elsewhere)


def effective_platform(settings: Settings | None, environ: dict[str, str]) -> Platform:
    if settings is not None:
        return settings.platform
    raw = environ.get("P419_PLATFORM", "").strip().lower()
    return raw if raw in get_args(Platform) else detect_platform()  # type: ignore[return-value]


def stack_queues(project: Project | None, settings: Settings | None) -> tuple[str, ...]:
    """The bundled app: its stack's own queue and Celery's default; a project: its groups' queues."""
    if project is None or project.bundled:
        from python419.tasks.queues import LEGACY_QUEUE, queue_name

        return (queue_name(settings), LEGACY_QUEUE) if settings is not None else (LEGACY_QUEUE,)
    named = tuple(dict.fromkeys(q for group in project.workers for q in group.queues))
    return named or ("celery",)


def build_context(app: AppSpec | None, cwd: Path | None = None, project: Project | None = None) -> Context:
    """`app` None: the project's Celery app (or the bundled one). A broken project config or invalid settings
    are reported by the checks, not raised."""
    cwd = cwd or Path.cwd()
    environ = dict(os.environ)
    settings: Settings | None = None
    names: tuple[str, ...] = ()
    error: str | None = None
    try:
        project = project or load_project(cwd=cwd)
        settings = project_settings(project)
    except ProjectError as exc:
        error = str(exc)
    except SettingsError as exc:
        error, names = str(exc), exc.names
    first_env = project.env_files[0] if project and project.env_files else None
    env_file = read_env_file(cwd, first_env)
    spec = app or parse_app_spec(project.celery if project else DEFAULT_APP)
    app_dir = project.app_dir if project else cwd
    if settings is not None:
        target = runtime_target(settings, {}, running_broker(settings.run_dir))
    else:
        target = redis_target("redis://127.0.0.1:6379/0")

    queues = stack_queues(project, settings)

    def broker() -> BrokerProbe:
        return probe_broker(target, queues)

    # The probe imports the app as a worker of the stack would: in its folder, on the stack's broker.
    paths = [str(app_dir), *([environ["PYTHONPATH"]] if environ.get("PYTHONPATH") else [])]
    probe_env = {**environ, **target.child_env(), "PYTHONPATH": os.pathsep.join(paths)}
    return Context(
        cwd=cwd,
        environ=environ,
        env_file=env_file,
        settings=settings,
        settings_error=error,
        settings_error_names=names,
        project=project,
        explicit_app=app is not None,
        platform=effective_platform(settings, environ),
        app=spec,
        target=target,
        queues=queues,
        broker=Lazy(broker),
        app_probe=Lazy(lambda: probe_app(spec, app_dir, probe_env)),
        redact=Redactor(secrets_in({**ours(environ), **env_file.values})),
    )
