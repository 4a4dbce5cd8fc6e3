"""Everything the checks read, gathered once: the project (the user's own, or the bundled app), its settings (or
why they are invalid), the .env file, the application's own checks (the bundled app's only), and the lazily
computed facts that several checks share (one broker probe, the project's interpreter, one app import)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import get_args

from python419.broker import BrokerTarget, redis_target, runtime_target
from python419.doctor.app_spec import DEFAULT_APP, AppSpec, is_bundled_app, parse_app_spec
from python419.doctor.lazy import Lazy
from python419.doctor.model import AppChecks
from python419.doctor.probes.app_probe import AppProbe, probe_app
from python419.doctor.probes.broker_probe import QUEUE, BrokerProbe, probe_broker
from python419.doctor.probes.python_probe import PythonFinding, find_python
from python419.doctor.redact import Redactor, ours, secrets_in
from python419.platforms import Platform, detect_platform
from python419.project import Flags, Project, ProjectError, load_project, project_settings
from python419.runfiles import running_broker
from python419.settings import Settings, SettingsError
from python419.settings import read_env_file as env_file_values
from python419.supervisor.process import verb_environment


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
    project: Project | None  # None: the p419 configuration is invalid (settings_error says why)
    platform: Platform
    app: AppSpec
    # The application's own checks: the bundled app's when it is the app checked, else None (a user's project).
    plugin: AppChecks | None
    target: BrokerTarget  # the broker the stack uses: a running `up`'s choice, else the settings'
    queues: tuple[str, ...]  # where the stack's messages wait
    broker: Lazy[BrokerProbe]
    python: Lazy[PythonFinding]  # the project's interpreter, why, and what it has
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

    @property
    def bundled(self) -> bool:
        """Is the app checked the bundled products app (so its own checks run)?"""
        return self.plugin is not None


def read_env_file(cwd: Path, path: Path | None = None) -> EnvFile:
    path = path or cwd / ".env"
    if path.is_file():
        return EnvFile(path, True, env_file_values(path))
    elsewhere = next((p / ".env" for p in cwd.parents if (p / ".env").is_file()), None)
    return EnvFile(path, False, elsewhere=elsewhere)


def effective_platform(settings: Settings | None, environ: dict[str, str]) -> Platform:
    if settings is not None:
        return settings.platform
    raw = environ.get("P419_PLATFORM", "").strip().lower()
    return raw if raw in get_args(Platform) else detect_platform()  # type: ignore[return-value]


def app_checks(project: Project | None, app: AppSpec | None) -> AppChecks | None:
    """The bundled app's checks when it is the app checked: the project is the bundled app (no p419
    configuration; `--app` then names a replacement for it, as the write-up's own app), or `--app` names the
    bundled app. A user's project gets none."""
    bundled = (project is not None and project.bundled) or (app is not None and is_bundled_app(app))
    if not bundled:
        return None
    from python419.products.doctor import PRODUCTS

    return PRODUCTS


def stack_queues(
    project: Project | None, settings: Settings | None, plugin: AppChecks | None
) -> tuple[str, ...]:
    """The app's own queues (the bundled app: its stack's queue and Celery's default); a project: its groups'."""
    if plugin is not None:
        return plugin.queues(settings)
    named = tuple(dict.fromkeys(q for group in project.workers for q in group.queues)) if project else ()
    return named or (QUEUE,)


def load(
    cwd: Path, flags: Flags, project: Project | None, app: AppSpec | None
) -> tuple[Project | None, Settings | None, str | None, tuple[str, ...]]:
    """The project and its settings, or why not: (project, settings, error, names at fault)."""
    try:
        project = project or load_project(flags, cwd=cwd)
    except ProjectError as exc:
        return None, None, str(exc), ()
    try:
        if not project.bundled and app is not None and is_bundled_app(app):
            # --app names the bundled app in a user's folder: that app is checked, as it runs (p419's own
            # interpreter, its own settings).
            project = replace(project, bundled=True)
        return project, project_settings(project), None, ()
    except SettingsError as exc:
        return project, None, str(exc), exc.names


def build_context(
    app: AppSpec | None,
    cwd: Path | None = None,
    project: Project | None = None,
    python: str | None = None,
) -> Context:
    """`app` None: the project's Celery app (or the bundled one). `python`: --python. A broken project config or
    invalid settings are reported by the checks, not raised."""
    cwd = cwd or Path.cwd()
    environ = dict(os.environ)
    project, settings, error, names = load(cwd, Flags(python=python), project, app)
    first_env = project.env_files[0] if project and project.env_files else None
    env_file = read_env_file(cwd, first_env)
    spec = app or parse_app_spec(project.celery if project else DEFAULT_APP)
    plugin = app_checks(project, app)
    app_dir = project.app_dir if project else cwd
    if settings is not None:
        target = runtime_target(settings, {}, running_broker(settings.run_dir))
    else:
        target = redis_target("redis://127.0.0.1:6379/0")
    platform = effective_platform(settings, environ)
    queues = stack_queues(project, settings, plugin)

    def broker() -> BrokerProbe:
        return probe_broker(target, queues)

    def interpreter() -> PythonFinding:
        assert project is not None  # the checks that ask need a project (Check.needs_project)
        return find_python(project, platform, environ)

    python_finding: Lazy[PythonFinding] = Lazy(interpreter)

    def app_probe() -> AppProbe:
        found = python_finding.get()
        if found.python is None or found.missing:
            return AppProbe("interpreter", error=found.unusable)
        # Imported as a worker of the stack would: in its folder, with its environment, on the stack's broker.
        assert project is not None
        env = verb_environment(project, settings, target, found.python.path, environ)
        task_modules = tuple(dict.fromkeys(t.rsplit(".", 1)[0] for t in plugin.tasks)) if plugin else ()
        return probe_app(spec, app_dir, env, found.python.path, task_modules)

    return Context(
        cwd=cwd,
        environ=environ,
        env_file=env_file,
        settings=settings,
        settings_error=error,
        settings_error_names=names,
        project=project,
        platform=platform,
        app=spec,
        plugin=plugin,
        target=target,
        queues=queues,
        broker=Lazy(broker),
        python=python_finding,
        app_probe=Lazy(app_probe),
        redact=Redactor(secrets_in({**ours(environ), **env_file.values})),
    )
