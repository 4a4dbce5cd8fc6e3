"""The project `p419` runs: the user's own (from `[tool.p419]` in pyproject.toml, or p419.toml, in the current
folder or above), or the bundled products app when none is configured.

Precedence, one rule for every key: flags > environment (P419_*) > config file > defaults.
Reading the files is the only I/O here; resolving is a pure function of what was read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar, cast

from python419 import products
from python419.interpreter import ProjectPython, choose_interpreter, with_versions
from python419.platforms import Platform
from python419.settings import Settings, check_broker, env_names, load_settings
from python419.workers import DEFAULT_GROUP, POOLS, Pool, WorkerGroup

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
# Checked here with the standard library, not pydantic: importing pydantic and building its validators cost
# `p419 up` ~100 ms before its first child (docs/benchmarks.md, row 8). One function per table walks the TOML
# dict and collects every problem as (path, message); parse_config says them all in one line, each with the
# line of the file it is on.

_Path = tuple[str | int, ...]
_Problems = list[tuple[_Path, str]]
_Check = Callable[[Any, _Path, _Problems], Any]

# What `workers` takes, said when none of its forms fits.
FORMS = {"workers": "must be a number of processes (workers = 2) or [[workers]] tables"}


def _a_name(value: str) -> str:
    """A group's or a step's name: it prefixes the console lines and names the log file."""
    if not value.replace("-", "").replace("_", "").isalnum():
        raise ValueError("use letters, digits, - and _")
    return value


@dataclass(frozen=True)
class WorkerGroupConfig:
    """A [[workers]] table (or `workers = N`): a group of identical workers."""

    name: str = DEFAULT_GROUP
    count: int = 1  # 1..64
    pool: Pool | None = None
    concurrency: int | None = None  # 1..256
    queues: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StepConfig:
    """A one-shot step: run to completion after the broker is ready, before the servers (a migration)."""

    name: str
    command: str | list[str]
    timeout: float = 300.0  # seconds, more than 0 and at most a day


@dataclass(frozen=True)
class ProjectConfig:
    """`[tool.p419]` / p419.toml. Unknown keys are refused, so a typo is not silently ignored. Built by
    parse_config (or from_mapping), which checks every value; constructing one directly checks nothing."""

    app_dir: str | None = None
    python: str | None = None  # the project's interpreter (or its venv folder), relative to this file
    api: str | None = None
    api_command: str | list[str] | None = None
    celery: str | None = None
    env_files: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str | None = None
    broker: str | None = None
    data_dir: str | None = None
    workers: WorkerGroupConfig | list[WorkerGroupConfig] | int | None = None
    beat: bool = False
    flower: bool = False
    reload: bool = False
    # A Redis that p419 starts gets a generated password (kept in the data dir) instead of the URL's own.
    redis_password: bool = False
    steps: list[StepConfig] = field(default_factory=list)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "the configuration") -> ProjectConfig:
        """A config from a dict built in code (a test, `p419 init`), checked as a file's is. Raises
        ProjectError."""
        return parse_config(data, where)


@dataclass(frozen=True)
class ConfigSource:
    path: Path  # the file
    table: str  # "[tool.p419]" or "p419.toml"
    config: ProjectConfig


# --- one value ---


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _whole(low: int, high: int) -> Callable[[object], int]:
    """An integer in low..high; TOML's true/false are not numbers here (Python's bool is an int)."""

    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be an integer")
        if not low <= value <= high:
            raise ValueError(f"must be {low}..{high}")
        return value

    return check


_count, _concurrency = _whole(1, 64), _whole(1, 256)


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number of seconds")
    if not 0 < value <= 86400:  # NaN is refused too
        raise ValueError("must be more than 0 and at most 86400 (a day)")
    return float(value)


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of strings")
    return list(value)


def _command_line(value: object) -> str | list[str]:
    """`api_command`, a step's `command`: one string (split like a shell line) or its words."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValueError("must be a string or a list of strings")


def _pool(value: object) -> Pool:
    if not isinstance(value, str) or value not in POOLS:
        raise ValueError(f"must be one of {', '.join(POOLS)}")
    return cast(Pool, value)


def _queues(value: object) -> list[str]:
    """A list of queue names, or one string of them separated by commas (as celery -Q takes them)."""
    if isinstance(value, str):
        return [q.strip() for q in value.split(",") if q.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValueError("must be a list of strings or a comma-separated string")


def _name(value: object) -> str:
    return _a_name(_string(value))


def _broker(value: object) -> str:
    return check_broker(_string(value))


def _ready_path(value: object) -> str:
    if not _string(value).startswith("/"):
        raise ValueError("must start with /, e.g. /health")
    return cast(str, value)


def _plain(check: Callable[[Any], Any]) -> _Check:
    """A check of one value (ValueError says what is wrong) as a key's check."""
    return lambda value, at, problems: check(value)


# --- one table ---

_Config = TypeVar("_Config", WorkerGroupConfig, StepConfig, ProjectConfig)


def _table(
    data: object, at: _Path, cls: type[_Config], checks: Mapping[str, _Check], problems: _Problems, kind: str
) -> _Config | None:
    """A TOML table made a `cls`: each key through its check; an unknown key, a wrong value or a missing
    required key is added to `problems` at its path. None when this table had any."""
    if not isinstance(data, Mapping):
        problems.append((at, f"must be {kind}"))
        return None
    before = len(problems)
    defaults = {f.name: f.default for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        check = checks.get(key)
        if check is None:
            problems.append(((*at, key), "unknown key"))
        elif value is None and defaults.get(key) is None:  # not set (a dict from code; TOML has no null)
            values[key] = None
        else:
            try:
                values[key] = check(value, (*at, key), problems)
            except ValueError as exc:
                problems.append(((*at, key), str(exc)))
    for f in fields(cls):
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING:
            problems.append(((*at, f.name), "required"))
    return cls(**values) if len(problems) == before else None


_GROUP_CHECKS: dict[str, _Check] = {
    "name": _plain(_name),
    "count": _plain(_count),
    "pool": _plain(_pool),
    "concurrency": _plain(_concurrency),
    "queues": _plain(_queues),
}
_STEP_CHECKS: dict[str, _Check] = {
    "name": _plain(_name),
    "command": _plain(_command_line),
    "timeout": _plain(_timeout),
}


def _worker_group(data: object, at: _Path, problems: _Problems) -> WorkerGroupConfig | None:
    return _table(data, at, WorkerGroupConfig, _GROUP_CHECKS, problems, "a [[workers]] table")


def _step(data: object, at: _Path, problems: _Problems) -> StepConfig | None:
    return _table(data, at, StepConfig, _STEP_CHECKS, problems, "a [[steps]] table")


def _workers(value: object, at: _Path, problems: _Problems) -> Any:
    """`workers = 2` (processes of the default group), one [workers] table, or [[workers]] tables."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _count(value)
    if isinstance(value, Mapping):
        return _worker_group(value, at, problems)
    if isinstance(value, list):
        return [_worker_group(item, (*at, i), problems) for i, item in enumerate(value)]
    raise ValueError(FORMS["workers"])


def _steps_table(value: object, at: _Path, problems: _Problems) -> list[StepConfig | None]:
    if not isinstance(value, list):
        raise ValueError("must be [[steps]] tables (name = ..., command = ...)")
    return [_step(item, (*at, i), problems) for i, item in enumerate(value)]


def _env(value: object, at: _Path, problems: _Problems) -> dict[str, str]:
    """[env]: variable names to their values, both strings."""
    if not isinstance(value, Mapping):
        raise ValueError('must be a table of strings (NAME = "value")')
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            problems.append(((*at, str(key)), "must be a string"))
    return dict(value)


_PROJECT_CHECKS: dict[str, _Check] = {
    "app_dir": _plain(_string),
    "python": _plain(_string),
    "api": _plain(_string),
    "api_command": _plain(_command_line),
    "celery": _plain(_string),
    "env_files": _plain(_strings),
    "env": _env,
    "ready_path": _plain(_ready_path),
    "broker": _plain(_broker),
    "data_dir": _plain(_string),
    "workers": _workers,
    "beat": _plain(_flag),
    "flower": _plain(_flag),
    "reload": _plain(_flag),
    "redis_password": _plain(_flag),
    "steps": _steps_table,
}


def _project_config(data: object, problems: _Problems) -> ProjectConfig | None:
    return _table(data, (), ProjectConfig, _PROJECT_CHECKS, problems, "a table")


# --- saying it ---


def _shown(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def key_line(text: str, path: tuple[str | int, ...], table: str | None = None) -> int | None:
    """The line (1-based) where `path` is written in a TOML text: `key = ...` at the top (or in [tool.p419]),
    `[[workers]]`'s n-th table for `workers[n].key`, a [table]'s own key for `table.key`."""
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
    elif len(path) >= 2 and isinstance(path[1], str):  # [env] NAME = ..., [workers] count = ...
        header = re.compile(rf"^\s*\[\s*(tool\.p419\.)?{re.escape(top)}\s*\]")
        own = next((i for i, line in enumerate(lines) if i >= start and header.match(line)), None)
        if own is not None:
            start, top = own, str(path[1])
    # The key is in this table: up to the next [header] (a required key that is missing: the table's header).
    is_header = re.compile(r"^\s*\[\[?[^\[\]=]+\]\]?\s*(#.*)?$").match
    after = start + 1 if start < len(lines) and is_header(lines[start]) else start
    end = next((i for i in range(after, len(lines)) if is_header(lines[i])), len(lines))
    key = re.compile(rf"^\s*{re.escape(top)}\s*=")
    found = next((i for i in range(start, end) if key.match(lines[i])), None)
    if found is None and path:  # a table of its own: [env], [[workers]]
        header = re.compile(rf"^\s*\[\[?\s*(tool\.p419\.)?{re.escape(str(path[0]))}\s*\]")
        found = next((i for i, line in enumerate(lines) if i >= start and header.match(line)), None)
    return None if found is None else found + 1


def _describe(problems: _Problems, where: str, text: str | None = None, table: str | None = None) -> str:
    """One clause per problem, with its line: `where: workers[1].redis_password: unknown key (line 12); ...`."""
    parts: list[str] = []
    for path, message in problems:
        line = key_line(text, path, table) if text is not None and path else None
        part = (f"{_shown(path)}: " if path else "") + message + (f" (line {line})" if line else "")
        if part not in parts:
            parts.append(part)
    return f"{where}: " + "; ".join(parts)


def parse_config(
    data: Mapping[str, Any], where: str, text: str | None = None, table: str | None = None
) -> ProjectConfig:
    """`text`: the file's, so that an error can name its line; `table`: where the config starts in it. Raises
    ProjectError naming every problem."""
    problems: _Problems = []
    config = _project_config(data, problems)
    if config is None or problems:
        raise ProjectError(_describe(problems or [((), "invalid")], where, text, table))
    return config


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

    @property
    def service_label(self) -> str:
        """What a systemd unit or a Windows service says it runs: the bundled app, or the folder and its path."""
        return self.label if self.bundled else f"{self.root.name} ({self.root})"

    @property
    def own_data_dir(self) -> Path:
        """The data dir when no P419_DATA_DIR says otherwise: the config's data_dir, else .p419 beside it."""
        return self.data_dir or (self.root / ".p419")

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
    return with_versions(
        choose_interpreter(
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
    if "data_dir" not in settings.fields_set:
        changes["data_dir"] = project.own_data_dir
    if project.broker_flag:
        changes["broker"] = project.broker_flag
    elif project.broker_config and "broker" not in settings.fields_set:
        changes["broker"] = project.broker_config
    return settings.replace(**changes) if changes else settings


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
