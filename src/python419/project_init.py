"""`p419 init`: read the docker-compose.yml / compose.yaml or Procfile a project already has and turn it into
its p419 configuration. Recognising commands is pure (a command line in, what it runs out); reading and
writing files happen in `init_project` only.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from python419.addresses import with_parts
from python419.launch.child import option_value
from python419.project import CONFIG_FILE, PYPROJECT, ProjectError, find_config, parse_config

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
PROCFILE = "Procfile"
# Services p419 does not run, and what the user should do instead.
LEFT_TO_USER = {
    "postgres": "not started by p419; run PostgreSQL yourself and set DATABASE_URL",
    "mysql": "not started by p419; run MySQL yourself and set DATABASE_URL",
    "mariadb": "not started by p419; run MariaDB yourself and set DATABASE_URL",
    "mongo": "not started by p419; run MongoDB yourself and set its URL",
    "rabbitmq": "not needed: p419 runs the stack on Redis (or its embedded broker), CELERY_BROKER_URL points there",
    "nginx": "not started by p419 (a reverse proxy; the API answers directly)",
}


@dataclass(frozen=True)
class Recognised:
    role: str  # api | worker | beat | flower
    values: dict[str, Any] = field(default_factory=dict)


def _strip_wrappers(argv: list[str]) -> list[str]:
    """`sh -c "..."`, `python -m celery`, `watchfiles --filter python 'celery ...'` → the command itself."""
    while argv:
        head = PurePosixPath(argv[0]).name
        if head in ("sh", "bash") and len(argv) >= 3 and argv[1] == "-c":
            argv = shlex.split(argv[2])
            if "&&" in argv:  # `cd app && uvicorn ...`: the last command
                argv = argv[len(argv) - 1 - argv[::-1].index("&&") + 1 :]
        elif head.startswith("python") and len(argv) >= 3 and argv[1] == "-m":
            argv = argv[2:]
        elif head in ("exec", "poetry", "pipenv", "uv") and len(argv) >= 2:
            argv = argv[2:] if argv[1] == "run" else argv[1:]
        elif head == "watchfiles":
            rest = [a for a in argv[1:] if not a.startswith("-")]
            argv = shlex.split(rest[-1]) if rest else []
        else:
            return argv
    return argv


def recognise(command: str | list[str]) -> Recognised | None:
    """What a service's command runs, as p419 would run it; None for anything else."""
    try:
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    except ValueError:
        return None
    argv = _strip_wrappers(argv)
    if not argv:
        return None
    head = PurePosixPath(argv[0]).name
    if head == "uvicorn":
        target = next((a for a in argv[1:] if ":" in a and not a.startswith("-")), None)
        return Recognised("api", {"api": target}) if target else None
    if head == "gunicorn":
        worker = option_value(argv, "-k", "--worker-class") or ""
        target = next((a for a in reversed(argv[1:]) if ":" in a and not a.startswith("-")), None)
        if "uvicorn" in worker and target:
            return Recognised("api", {"api": target})
        return None
    if head == "celery":
        app = option_value(argv, "-A", "--app")
        verb = next((a for a in argv[1:] if a in ("worker", "beat", "flower")), None)
        if verb == "worker":
            values: dict[str, Any] = {"celery": app}
            queues = option_value(argv, "-Q", "--queues")
            if queues:
                values["queues"] = [q for q in queues.split(",") if q]
            concurrency = option_value(argv, "-c", "--concurrency")
            if concurrency and concurrency.isdigit():
                values["concurrency"] = int(concurrency)
            pool = option_value(argv, "-P", "--pool")
            if pool:
                values["pool"] = pool
            return Recognised("worker", values)
        if verb in ("beat", "flower"):
            return Recognised(verb, {"celery": app})
    return None


def loopback_urls(value: str, services: set[str]) -> str:
    """`redis://redis:6379/0` → `redis://127.0.0.1:6379/0`: compose service names are hosts only inside
    compose's network; here every service runs on this machine."""
    if "://" not in value:
        return value
    try:
        host = urlsplit(value).hostname
    except ValueError:
        return value
    return with_parts(value, host="127.0.0.1") if host in services else value


def _environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = [str(item).split("=", 1) for item in raw]
        return {p[0]: p[1] for p in pairs if len(p) == 2}
    return {str(k): str(v) for k, v in raw.items() if v is not None}


def _app_dir(service: dict[str, Any]) -> str | None:
    """The folder whose code the container runs: the bind-mounted host folder, else the build context."""
    for volume in service.get("volumes") or []:
        source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
        if source and source.startswith("."):
            return source
    build = service.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    return str(context) if context else None


@dataclass
class Found:
    config: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # what was found, said to the user
    left: list[str] = field(default_factory=list)  # what p419 will not do


def from_services(services: dict[str, Any], source: str) -> Found:
    found = Found()
    names = set(services)
    env: dict[str, str] = {}
    env_files: list[str] = []
    groups: list[dict[str, Any]] = []
    for name, raw in services.items():
        service = raw or {}
        image = str(service.get("image") or "")
        command = service.get("command")
        thing = recognise(command) if command else None
        if thing is None:
            kind = image.split(":", 1)[0].rsplit("/", 1)[-1]
            if kind in ("redis", "redis-stack", "valkey", "keydb"):
                found.lines.append(f"{name}: Redis ({image}) → started by p419 up (or the embedded broker)")
            elif kind in LEFT_TO_USER:
                found.left.append(f"{name} ({image}): {LEFT_TO_USER[kind]}")
            else:
                found.left.append(f"{name}: {image or 'no command p419 recognises'} → not started by p419")
            continue
        env.update({k: loopback_urls(v, names) for k, v in _environment(service).items()})
        for item in service.get("env_file") or []:
            path = item.get("path") if isinstance(item, dict) else item
            if path and path not in env_files:
                env_files.append(str(path))
        app_dir = _app_dir(service)
        if app_dir and app_dir not in (".", "./"):
            found.config.setdefault("app_dir", app_dir.removeprefix("./"))
        values = dict(thing.values)
        if thing.role == "api":
            found.config["api"] = values["api"]
            found.lines.append(f"{name}: the API ({values['api']}) → api")
        elif thing.role == "worker":
            if values.get("celery"):
                found.config.setdefault("celery", values.pop("celery"))
            values.pop("celery", None)
            groups.append({"name": _group_name(name, groups), **values})
            queues = f" on {','.join(values['queues'])}" if values.get("queues") else ""
            found.lines.append(f"{name}: a Celery worker{queues} → workers")
        else:
            if values.get("celery"):
                found.config.setdefault("celery", values["celery"])
            found.config[thing.role] = True
            found.lines.append(f"{name}: celery {thing.role} → {thing.role} = true")
    if env:
        found.config["env"] = env
    if env_files:
        found.config["env_files"] = env_files
    if groups:
        found.config["workers"] = groups
    if "api" not in found.config and "celery" not in found.config:
        raise ProjectError(f"{source}: no uvicorn/gunicorn API and no celery worker found in any service")
    if "celery" not in found.config:
        found.left.append('no celery -A APP found: set celery = "MODULE[:ATTR]" by hand')
    return found


def _group_name(service: str, groups: list[dict[str, Any]]) -> str:
    base = "".join(c if c.isalnum() or c in "-_" else "-" for c in service) or "worker"
    taken = {g["name"] for g in groups}
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    return name


def read_compose(path: Path) -> Found:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProjectError(f"{path}: cannot be read as YAML ({exc})") from None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict) or not services:
        raise ProjectError(f"{path}: no services: section")
    return from_services(services, str(path))


def read_procfile(path: Path) -> Found:
    services: dict[str, Any] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip():
            raise ProjectError(f"{path}:{number}: expected `name: command`")
        services[name.strip()] = {"command": command.strip()}
    if not services:
        raise ProjectError(f"{path}: no processes")
    return from_services(services, str(path))


def discover(folder: Path) -> tuple[Path, Found]:
    for name in (*COMPOSE_FILES, PROCFILE):
        path = folder / name
        if path.is_file():
            return path, read_procfile(path) if name == PROCFILE else read_compose(path)
    raise ProjectError(
        f"no docker-compose.yml, compose.yaml or Procfile in {folder}: write p419.toml by hand "
        '(api = "main:app", celery = "worker.celery")'
    )


def render(config: dict[str, Any]) -> str:
    import tomlkit

    document = tomlkit.document()
    document.add(tomlkit.comment("Written by p419 init; see `p419 up --dry-run` for what it runs."))
    for key, value in config.items():
        if key == "workers":
            array = tomlkit.aot()
            for group in value:
                array.append(tomlkit.item(group))
            document.add(key, array)
        else:
            document.add(key, value)
    return tomlkit.dumps(document)


def add_python(folder: Path, found: Found) -> None:
    """`python = ...` when the project has an environment of its own (found by the same rule as `p419 up`),
    written relative to the folder when it lies inside it."""
    import os
    import sys

    from python419.interpreter import InterpreterError, find_interpreter
    from python419.platforms import detect_platform

    app_dir = found.config.get("app_dir")
    try:
        interp = find_interpreter(
            platform=detect_platform(),
            environ=os.environ,
            root=folder,
            own_executable=sys.executable,
            own_prefix=sys.prefix,
            app_dir=folder / app_dir if app_dir else None,
        )
    except InterpreterError as exc:
        found.left.append(f"python: {exc}")
        return
    if interp.own:
        found.left.append("python: no environment of the project's found; p419 up runs it with its own")
        return
    path = Path(interp.path)
    shown = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
    config = dict(found.config)
    found.config.clear()
    for key, value in config.items():
        found.config[key] = value
        if key == "app_dir":
            found.config["python"] = shown
    found.config.setdefault("python", shown)
    found.lines.append(f"python: {shown} ({interp.reason}) → python")


def init_project(folder: Path, *, force: bool = False) -> tuple[Path, Path, Found]:
    """Writes the config; returns (source read, file written, what was found). Raises ProjectError."""
    import tomlkit

    existing = find_config(folder)
    if existing is not None and existing.path.parent == folder and not force:
        raise ProjectError(
            f"{existing.path} already has a p419 configuration ({existing.table}); --force replaces it"
        )
    source, found = discover(folder)
    add_python(folder, found)
    parse_config(found.config, f"the configuration read from {source}")  # what we write must load
    pyproject = folder / PYPROJECT
    if pyproject.is_file():
        document = tomlkit.parse(pyproject.read_text(encoding="utf-8"))
        tool = document.setdefault("tool", tomlkit.table())
        tool["p419"] = tomlkit.parse(render(found.config))
        pyproject.write_text(tomlkit.dumps(document), encoding="utf-8")
        return source, pyproject, found
    target = folder / CONFIG_FILE
    target.write_text(render(found.config), encoding="utf-8")
    return source, target, found
