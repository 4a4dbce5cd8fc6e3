"""The project `p419` runs: the user's own (from `[tool.p419]` in pyproject.toml, or p419.toml, in the current
folder or above), or the bundled products app when none is configured.

Precedence, one rule for every key: flags > environment (P419_*) > config file > defaults.
Reading the files is the only I/O here; resolving is a pure function of what was read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from python419 import products
from python419.interpreter import ProjectPython, project_python
from python419.platforms import Platform
from python419.settings import Settings, check_broker, env_names, load_settings
from python419.workers import DEFAULT_GROUP, Pool, WorkerGroup

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_FILE = "p419.toml"
# What `p419 init` reads: a folder with one of these and no p419 config is a project that was not set up yet.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
PROCFILE = "Procfile"
PYPROJECT = "pyproject.toml"
BUNDLED_API = products.API
BUNDLED_CELERY = products.CELERY_APP
BUNDLED_READY_PATH = "/health?workers=false"
DEFAULT_READY_PATH = "/"

# Environment variables for project keys (the settings module owns P419_BROKER and P419_DATA_DIR).
ENV_KEYS = {
    "api": "P419_API",
    "api_command": "P419_API_COMMAND",
    "celery": "P419_CELERY",
    "app_dir": "P419_APP_DIR",
    "ready_path": "P419_READY_PATH",
}


class ProjectError(Exception):
    """The project configuration is wrong: the message names the file and the key."""


# --- the file format -----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _a_name(value: str) -> str:
    """A group's or a step's name: it prefixes the console lines and names the log file."""
    if not value.replace("-", "").replace("_", "").isalnum():
        raise ValueError("use letters, digits, - and _")
    return value


class WorkerGroupConfig(_Strict):
    name: str = DEFAULT_GROUP
    count: int = Field(default=1, ge=1, le=64)
    pool: Pool | None = None
    concurrency: int | None = Field(default=None, ge=1, le=256)
    queues: list[str] = Field(default_factory=list)

    _name = field_validator("name")(classmethod(lambda cls, value: _a_name(value)))

    @field_validator("queues", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return [q.strip() for q in value.split(",") if q.strip()] if isinstance(value, str) else value


class StepConfig(_Strict):
    """A one-shot step: run to completion after the broker is ready, before the servers (a migration)."""

    name: str
    command: str | list[str]
    timeout: float = Field(default=300.0, gt=0, le=86400)

    _name = field_validator("name")(classmethod(lambda cls, value: _a_name(value)))


class ProjectConfig(_Strict):
    """`[tool.p419]` / p419.toml. Unknown keys are refused, so a typo is not silently ignored."""

    app_dir: str | None = None
    python: str | None = None  # the project's interpreter (or its venv folder), relative to this file
    api: str | None = None
    api_command: str | list[str] | None = None
    celery: str | None = None
    env_files: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    ready_path: str | None = None
    broker: str | None = None
    data_dir: str | None = None
    workers: WorkerGroupConfig | list[WorkerGroupConfig] | int | None = None
    beat: bool = False
    flower: bool = False
    reload: bool = False
    # A Redis that p419 starts gets a generated password (kept in the data dir) instead of the URL's own.
    redis_password: bool = False
    steps: list[StepConfig] = Field(default_factory=list)

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str | None) -> str | None:
        return check_broker(value) if value is not None else None

    @field_validator("ready_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with /, e.g. /health")
        return value


@dataclass(frozen=True)
class ConfigSource:
    path: Path  # the file
    table: str  # "[tool.p419]" or "p419.toml"
    config: ProjectConfig


BRANCHES = {
    "int",
    "str",
    "float",
    "bool",
    "WorkerGroupConfig",
    "StepConfig",
}  # how pydantic names a union's branches
# What a key takes, said when none of its forms fits (a union: pydantic would list one error per branch).
FORMS = {"workers": "must be a number of processes (workers = 2) or [[workers]] tables"}


def _field_path(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """A pydantic location without its union branches ('list[WorkerGroupConfig]', 'int'): the keys and the
    indexes a user wrote."""
    return tuple(
        p
        for p in loc
        if isinstance(p, int) or (isinstance(p, str) and p.isidentifier() and p not in BRANCHES)
    )


def _shown(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def key_line(text: str, path: tuple[str | int, ...], table: str | None = None) -> int | None:
    """The line (1-based) where `path` is written in a TOML text: `key = ...` at the top (or in [tool.p419]),
    `[[workers]]`'s n-th table for `workers[n].key`."""
    import re

    lines = text.splitlines()
    start = 0
    if table:  # [tool.p419] in a pyproject.toml: look from its header on
        start = next((i for i, line in enumerate(lines) if line.strip() == table), 0)
    top = str(path[0]) if path else ""
    if len(path) >= 3 and isinstance(path[1], int):
        header = re.compile(rf"^\s*\[\[\s*(tool\.p419\.)?{re.escape(top)}\s*\]\]")
        headers = [i for i, line in enumerate(lines) if i >= start and header.match(line)]
        if path[1] < len(headers):
            start, top = headers[path[1]], str(path[2])
    key = re.compile(rf"^\s*{re.escape(top)}\s*=")
    found = next((i for i, line in enumerate(lines) if i >= start and key.match(line)), None)
    if found is None and path:  # a table of its own: [env], [[workers]]
        header = re.compile(rf"^\s*\[\[?\s*(tool\.p419\.)?{re.escape(str(path[0]))}\s*\]")
        found = next((i for i, line in enumerate(lines) if i >= start and header.match(line)), None)
    return None if found is None else found + 1


def _describe(error: ValidationError, where: str, text: str | None = None, table: str | None = None) -> str:
    """One clause per key at fault, with its line: `workers[1].redis_password: unknown key (line 12)`. Of a
    union's branches (a table, a list of tables, a number), only the deepest errors are kept: the branch the
    user meant."""
    items = [(_field_path(tuple(item.get("loc", ()))), item) for item in error.errors()]
    deepest: dict[Any, int] = {}
    for path, _ in items:
        deepest[path[:1]] = max(deepest.get(path[:1], 0), len(path))
    parts: list[str] = []
    for path, item in items:
        if len(path) < deepest[path[:1]]:
            continue
        msg = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if item.get("type") == "extra_forbidden":
            msg = "unknown key"
        elif sum(1 for other, _ in items if other == path) > 1 and str(path[0]) in FORMS:
            msg = FORMS[str(path[0])]
        line = key_line(text, path, table) if text is not None and path else None
        at = f" (line {line})" if line else ""
        part = f"{_shown(path)}: {msg}{at}" if path else msg
        if part not in parts:
            parts.append(part)
    return f"{where}: " + "; ".join(parts)


def parse_config(
    data: Mapping[str, Any], where: str, text: str | None = None, table: str | None = None
) -> ProjectConfig:
    """`text`: the file's, so that an error can name its line; `table`: where the config starts in it."""
    try:
        return ProjectConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ProjectError(_describe(exc, where, text, table)) from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ProjectError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def find_config(start: Path) -> ConfigSource | None:
    """p419.toml, or a pyproject.toml with [tool.p419], in `start` or the nearest folder above that has one."""
    for folder in (start, *start.parents):
        own = folder / CONFIG_FILE
        if own.is_file():
            data = read_toml(own)
            table = data.get("tool", {}).get("p419", data) if "tool" in data else data
            text = own.read_text(encoding="utf-8")
            return ConfigSource(own, CONFIG_FILE, parse_config(table, str(own), text, "[tool.p419]"))
        pyproject = folder / PYPROJECT
        if pyproject.is_file():
            table = read_toml(pyproject).get("tool", {}).get("p419")
            if table is not None:
                text = pyproject.read_text(encoding="utf-8")
                where = f"{pyproject} [tool.p419]"
                return ConfigSource(pyproject, "[tool.p419]", parse_config(table, where, text, "[tool.p419]"))
    return None


# --- the resolved project ------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    command: tuple[str, ...]
    timeout: float = 300.0


@dataclass(frozen=True)
class Flags:
    """What `p419 up` (and the other verbs) were given on the command line; None = not given."""

    app_dir: str | None = None
    python: str | None = None
    api: str | None = None
    api_command: str | None = None
    celery: str | None = None
    ready_path: str | None = None
    broker: str | None = None
    workers: int | None = None
    pool: Pool | None = None
    concurrency: int | None = None
    queues: tuple[str, ...] | None = None
    reload: bool | None = None
    beat: bool | None = None
    flower: bool | None = None
    only: tuple[str, ...] | None = None  # run part of the stack: api, workers, beat, flower
    redis_password: bool | None = None
    demo: bool = False  # the bundled products app, whatever the folder holds


ONLY_CHOICES = ("api", "workers", "beat", "flower", "steps")


@dataclass(frozen=True)
class Project:
    root: Path  # where the config is (or the working directory): relative paths start here
    config_path: Path | None
    bundled: bool
    app_dir: Path
    api: str | None
    api_command: tuple[str, ...] | None
    celery: str
    ready_path: str
    env_files: tuple[Path, ...]
    env: dict[str, str] = field(default_factory=dict)
    workers: tuple[WorkerGroup, ...] = (WorkerGroup(DEFAULT_GROUP),)
    broker_config: str | None = None  # the config file's (P419_BROKER wins over it)
    broker_flag: str | None = None  # --broker (wins over everything)
    data_dir: Path | None = None  # from the config file (P419_DATA_DIR wins)
    reload: bool = False
    beat: bool = False
    flower: bool = False
    only: tuple[str, ...] | None = None
    redis_password: bool = False  # generate a password for the Redis that p419 starts
    steps: tuple[Step, ...] = ()  # one-shot commands, in order, before the servers start
    python_flag: str | None = None  # --python
    python_config: str | None = None  # python = "..." in the config file

    def needs(self) -> set[str]:
        """What the project's interpreter must have for the parts this run starts."""
        wants = lambda part: self.only is None or part in self.only  # noqa: E731
        needs = {"celery"} if (wants("workers") or (self.beat and wants("beat"))) else set()
        if self.api and wants("api"):
            needs.add("uvicorn")
        return needs

    @property
    def label(self) -> str:
        return "the bundled products app" if self.bundled else f"the project in {self.root}"

    def key_source(self, key: str) -> str:
        """Where a key came from, for error messages."""
        return f"{key} in {self.config_path}" if self.config_path else key


def _groups(
    value: WorkerGroupConfig | list[WorkerGroupConfig] | int | None, where: str
) -> tuple[WorkerGroup, ...]:
    if value is None:
        configs = [WorkerGroupConfig()]
    elif isinstance(value, int):
        configs = [WorkerGroupConfig(count=value)]
    elif isinstance(value, list):
        configs = value or [WorkerGroupConfig()]
    else:
        configs = [value]
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ProjectError(f"workers: two groups are named {duplicates[0]!r}; give each group its own name")
    return tuple(
        WorkerGroup(c.name, c.count, c.pool, c.concurrency, tuple(c.queues), f"pool in {where}")
        for c in configs
    )


def _apply_flags(groups: tuple[WorkerGroup, ...], flags: Flags) -> tuple[WorkerGroup, ...]:
    """Worker flags apply to every group."""
    changes: dict[str, Any] = {}
    if flags.workers is not None:
        changes["count"] = flags.workers
    if flags.pool is not None:
        changes["pool"], changes["pool_source"] = flags.pool, "--pool"
    if flags.concurrency is not None:
        changes["concurrency"] = flags.concurrency
    if flags.queues is not None:
        changes["queues"] = flags.queues
    return tuple(replace(g, **changes) for g in groups)


def _command(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    import shlex

    if value is None:
        return None
    parts = tuple(shlex.split(value, posix=True)) if isinstance(value, str) else tuple(value)
    return parts or None


def resolve_project(
    cwd: Path, environ: Mapping[str, str], flags: Flags, source: ConfigSource | None
) -> Project:
    """Pure: the project from the config file (if any), the environment and the flags."""
    config = source.config if source else ProjectConfig()
    root = source.path.parent if source else cwd

    def pick(key: str) -> Any:
        flag = getattr(flags, key)
        if flag is not None:
            return flag
        env_name = ENV_KEYS.get(key)
        if env_name and environ.get(env_name):
            return environ[env_name]
        return getattr(config, key)

    api, api_command, celery = pick("api"), _command(pick("api_command")), pick("celery")
    if api and api_command:
        raise ProjectError(
            "both api and api_command are set: api runs an ASGI app with uvicorn, api_command any other "
            "server; keep one"
        )
    bundled = source is None and not (api or api_command or celery)
    app_dir_value = pick("app_dir")
    app_dir = (root / app_dir_value).resolve() if app_dir_value else root.resolve()
    env_files = config.env_files if config.env_files is not None else [".env"]
    groups = _apply_flags(_groups(config.workers, source.table if source else "the config"), flags)
    if bundled:
        api, celery = BUNDLED_API, BUNDLED_CELERY
    elif not celery:
        raise ProjectError(
            f"{source.path if source else 'the command line'}: no Celery app configured: set celery = "
            '"MODULE[:ATTR]" (what you pass to celery -A), e.g. celery = "worker.celery"'
        )
    ready_path = pick("ready_path") or (BUNDLED_READY_PATH if bundled else DEFAULT_READY_PATH)
    return Project(
        root=root.resolve(),
        config_path=source.path if source else None,
        bundled=bundled,
        app_dir=app_dir,
        api=api,
        api_command=api_command,
        celery=celery,
        ready_path=ready_path,
        env_files=tuple((root / f).resolve() for f in env_files),
        env=dict(config.env),
        workers=groups,
        broker_config=config.broker,
        broker_flag=_broker_flag(flags.broker),
        data_dir=(root / config.data_dir).resolve() if config.data_dir else None,
        reload=bool(flags.reload if flags.reload is not None else config.reload),
        beat=bool(flags.beat if flags.beat is not None else config.beat),
        flower=bool(flags.flower if flags.flower is not None else config.flower),
        only=_only(flags.only),
        steps=_steps(config.steps),
        redis_password=bool(
            flags.redis_password if flags.redis_password is not None else config.redis_password
        ),
        python_flag=flags.python,
        python_config=config.python,
    )


def _steps(configs: list[StepConfig]) -> tuple[Step, ...]:
    names = [c.name for c in configs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ProjectError(f"steps: two steps are named {twice[0]!r}; give each step its own name")
    made = tuple(Step(c.name, _command(c.command) or (), c.timeout) for c in configs)
    empty = [s.name for s in made if not s.command]
    if empty:
        raise ProjectError(f"steps: step {empty[0]!r} has an empty command")
    return made


def _only(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    unknown = [v for v in value if v not in ONLY_CHOICES]
    if unknown or not value:
        raise ProjectError(f"--only {','.join(value)}: choose from {', '.join(ONLY_CHOICES)}")
    return value


def _broker_flag(value: str | None) -> str | None:
    try:
        return check_broker(value) if value else None
    except ValueError as exc:
        raise ProjectError(f"--broker {value!r}: {exc}") from None


def load_project(
    flags: Flags | None = None, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> Project:
    cwd = cwd or Path.cwd()
    environ = os.environ if environ is None else environ
    flags = flags or Flags()
    project = resolve_project(cwd, environ, flags, find_config(cwd))
    if project.bundled and not flags.demo:
        found = [name for name in (*COMPOSE_FILES, PROCFILE) if (cwd / name).is_file()]
        if found:
            # Never the demo app silently in a user's project folder.
            raise ProjectError(
                f"{cwd} has {found[0]} but no p419 config: run p419 init (it reads {found[0]}), "
                "or p419 up --demo for the bundled products app"
            )
    return project


def project_interpreter(
    project: Project,
    platform: Platform,
    environ: Mapping[str, str],
    on_skip: Callable[[str], None] | None = None,
) -> ProjectPython:
    """The interpreter that runs this project's children (interpreter.py's rule, with this project's root,
    app_dir, --python and python = ...), and what it has. Raises InterpreterError."""
    return project_python(
        platform=platform,
        environ=environ,
        root=project.root,
        app_dir=project.app_dir,
        flag=project.python_flag,
        configured=project.python_config,
        config_file=project.config_path,
        bundled=project.bundled,
        on_skip=on_skip,
    )


def project_settings(project: Project) -> Settings:
    """The user's settings for this project: its env files, the config's [env] over them, the environment over
    both; the config file's data_dir and broker where none sets them; --broker over everything."""
    cls: type[Settings] = Settings
    if project.bundled:
        from python419.products.settings import ProductSettings

        cls = ProductSettings
    # The config's [env] (p419 init puts the env files' compose hosts there, pointed at loopback) wins over
    # the env files, and the environment wins over it.
    known = set(env_names(cls).values())
    config_env = {k: v for k, v in project.env.items() if k in known and k not in os.environ}
    settings = load_settings(project.env_files, cls=cls, **config_env)
    changes: dict[str, Any] = {}
    if "data_dir" not in settings.model_fields_set:
        changes["data_dir"] = project.data_dir or (project.root / ".p419")
    if project.broker_flag:
        changes["broker"] = project.broker_flag
    elif project.broker_config and "broker" not in settings.model_fields_set:
        changes["broker"] = project.broker_config
    return settings.model_copy(update=changes) if changes else settings


# --- checks that need no import of the user's code -----------------------------------------------


def module_on_disk(module: str, app_dir: Path) -> bool | None:
    """Is the dotted module a file (or package) under app_dir, all the way down? None when its top-level
    package is not there at all (it may be installed in the project's environment). Nothing is imported."""
    from importlib.machinery import PathFinder

    top, *rest = module.split(".")
    spec = PathFinder.find_spec(top, [str(app_dir)])
    if spec is None:
        return None
    for part in rest:
        locations = spec.submodule_search_locations
        spec = PathFinder.find_spec(part, list(locations)) if locations else None
        if spec is None:
            return False
    return True


def importable_by(python: str, module: str, app_dir: Path) -> bool:
    """Asked of the project's interpreter (one short run): can it find `module` from app_dir? p419's own
    interpreter (the bundled app) is asked in this process: a run of its own cost 12-37 ms before the stack's
    first child (scripts/bench, row 8)."""
    import subprocess

    if os.path.realpath(python) == os.path.realpath(sys.executable):
        import importlib.util

        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    code = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 1)"
    try:
        done = subprocess.run(
            [python, "-c", code, module],
            cwd=app_dir,
            capture_output=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: the launcher will say it at start
    return done.returncode == 0


def preflight(project: Project, python: str | None = None) -> None:
    """What can be known wrong before anything starts: missing folders and modules (a file on disk under
    app_dir, or else something the project's interpreter can import). Raises ProjectError."""
    if not project.app_dir.is_dir():
        raise ProjectError(f"{project.key_source('app_dir')}: folder {project.app_dir} does not exist")
    for key in ("api", "celery"):
        value = getattr(project, key)
        if not value:
            continue
        module = value.split(":", 1)[0]
        if not all(part.isidentifier() for part in module.split(".")):
            raise ProjectError(f"{project.key_source(key)}: {value!r} is not MODULE[:ATTR]")
        # celery -A also accepts MODULE.ATTR: try the whole dotted name, then without its last part.
        candidates = [module] if ":" in value or key == "api" else [module, module.rsplit(".", 1)[0]]
        found = [module_on_disk(c, project.app_dir) for c in candidates]
        if True in found:
            continue
        if None in found and (python is None or importable_by(python, candidates[-1], project.app_dir)):
            continue  # not under app_dir, but installed in the project's environment
        missing = module if False in found else module.split(".", 1)[0]
        raise ProjectError(
            f"{project.key_source(key)}: no module {missing!r} in {project.app_dir} "
            "(set app_dir to the folder your code runs from)"
        )
