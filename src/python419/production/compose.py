"""`p419 export compose`: the project's docker-compose.yml, the inverse of `p419 init`.

Each part of the configuration becomes the service `p419 init` reads back into it:

| configuration | service |
|---|---|
| the broker | `redis` (redis:7, AOF on, healthy when `redis-cli ping` answers); every other service depends on it |
| `api` / `api_command` | `api`: `uvicorn API --host 0.0.0.0 --port 8000`, or the api_command with its {python} {host} {port} |
| each `[[workers]]` group | a service named after it: `celery -A CELERY worker` with the group's -Q, --pool, --concurrency (only those configured: a container is Linux, where Celery's own default pool is prefork); `count` as `deploy.replicas` |
| `beat`, `flower` | `beat`, `flower` (the image needs the flower package) |
| `app_dir` | the code bind-mounted at /app (as p419 runs it: the folder's files), `working_dir` /app/APP_DIR |
| `[env]`, env files | `environment` (URLs of a loopback Redis pointed at `redis`), `env_file` (those that exist) |

What p419 gives every child, compose must say: CELERY_BROKER_URL and CELERY_RESULT_BACKEND point at the `redis`
service (p419 init reads them back into `[env]`, where `p419 up` sets its own over them). A variable named like a
secret (PASSWORD, SECRET, TOKEN, KEY) is written as a `${NAME}` reference, never its value: compose takes it from
the shell or the `.env` beside the file.

Pure: the project, the broker URL and the env files' values in; the document and what is left to the user out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from python419.addresses import is_local_url, is_loopback_host
from python419.launch.contract import CELERY_BROKER_URL, CELERY_RESULT_BACKEND
from python419.project import Project
from python419.supervisor.plan import FLOWER_PORT, SECRET_WORDS

REDIS_SERVICE = "redis"
REDIS_IMAGE = "redis:7"
REDIS_VOLUME = "redis-data"
CODE_ROOT = PurePosixPath("/app")
API_PORT = 8000
DEFAULT_OUTPUT = "docker-compose.yml"
HEADER = (
    "# Written by p419 export compose from {source}.\n"
    "# p419 init reads it back into the same configuration; docker compose up runs it (build: needs a\n"
    "# Dockerfile that installs the project's requirements).\n"
)


class ExportError(Exception):
    """The project cannot be exported as asked: the message says why."""


@dataclass
class ComposeExport:
    document: dict[str, Any]
    left: list[str] = field(default_factory=list)  # what the user must look at, one line each


def is_secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def relative(path: Path, base: Path) -> str:
    """A path as compose wants it relative to the file's folder: `.`, `./sub`, `../other`."""
    rel = Path(os.path.relpath(path, base)).as_posix()
    return rel if rel == "." or rel.startswith("../") or rel == ".." else f"./{rel}"


def redis_url_here(url: str) -> bool:
    """A Redis URL on this machine's loopback: inside compose that Redis is the `redis` service."""
    try:
        parts = urlsplit(url)
        return parts.scheme in ("redis", "rediss") and is_loopback_host(parts.hostname)
    except ValueError:
        return False


def in_compose(url: str) -> str:
    """redis://127.0.0.1:6380/2 → redis://redis:6379/2: the `redis` service, on its own port, no password."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{REDIS_SERVICE}:6379").geturl()


def compose_value(value: str) -> str:
    """compose interpolates `$`: a literal one is `$$`."""
    return value.replace("$", "$$")


def api_command(project: Project) -> list[str] | None:
    if project.api_command:
        values = {"{python}": "python", "{host}": "0.0.0.0", "{port}": str(API_PORT)}
        out = []
        for word in project.api_command:
            for placeholder, value in values.items():
                word = word.replace(placeholder, value)
            out.append(word)
        return out
    if project.api:
        return ["uvicorn", project.api, "--host", "0.0.0.0", "--port", str(API_PORT)]
    return None


def worker_command(project: Project, index: int) -> list[str]:
    group = project.workers[index]
    argv = ["celery", "-A", project.celery, "worker", "--loglevel=info"]
    if group.queues:
        argv += ["-Q", ",".join(group.queues)]
    if group.pool:
        argv += ["--pool", group.pool]
    if group.concurrency:
        argv += ["--concurrency", str(group.concurrency)]
    return argv


def compose_document(
    project: Project,
    *,
    broker_url: str,
    broker_mode: str,
    env_file_values: Mapping[str, str],
    out_dir: Path,
    api_port: int = API_PORT,
) -> ComposeExport:
    """The compose document for `project`. `broker_url`: the Redis the project uses (REDIS_URL, P419_BROKER);
    `env_file_values`: what its env files that exist set; `out_dir`: the folder the file is written to (relative
    paths start there)."""
    if project.bundled:
        raise ExportError(
            "no p419 configuration here: p419 export compose writes your project's (p419 init writes one "
            "from a docker-compose.yml or Procfile; or write p419.toml by hand)"
        )
    left: list[str] = []
    local = broker_mode in ("auto", "redis", "embedded") and (
        broker_mode == "embedded" or is_local_url(broker_url)
    )
    if broker_mode == "embedded":
        left.append(
            "broker = embedded: compose runs Redis instead (a folder is not shared between containers)"
        )
    if local:
        broker = in_compose(broker_url) if redis_url_here(broker_url) else f"redis://{REDIS_SERVICE}:6379/0"
    elif urlsplit(broker_url).password:
        broker = f"${{{CELERY_BROKER_URL}}}"
        left.append(
            f"{CELERY_BROKER_URL}: the remote Redis's URL holds a password: set it in the environment or the "
            ".env beside the compose file (compose reads ${CELERY_BROKER_URL} from there)"
        )
    else:
        broker = broker_url

    environment: dict[str, str] = {}
    secrets: list[str] = []
    for name, value in project.env.items():
        if is_secret(name):
            environment[name] = f"${{{name}}}"
            secrets.append(name)
        elif redis_url_here(value):
            environment[name] = in_compose(value)
        else:
            environment[name] = compose_value(value)
            host = _host(value)
            if host and is_loopback_host(host):
                left.append(
                    f"{name} points at {host}, which inside a container is the container itself: add that "
                    "service to the file, or point it at the host"
                )
    for name, value in env_file_values.items():  # the env files reach the containers through env_file:
        if name not in environment and not is_secret(name) and redis_url_here(value):
            environment[name] = in_compose(value)  # ... but a loopback Redis there is the `redis` service
    environment[CELERY_BROKER_URL] = broker
    environment[CELERY_RESULT_BACKEND] = broker
    if secrets:
        left.append(
            f"{', '.join(secrets)}: written as ${{NAME}} references, not their values: set them in the environment "
            "or the .env beside the compose file"
        )

    root = project.root
    mounts = [f"{relative(root, out_dir)}:{CODE_ROOT}"]
    if project.app_dir == root or root in project.app_dir.parents:
        workdir = CODE_ROOT.joinpath(*project.app_dir.relative_to(root).parts)
    else:  # a folder beside the project (app_dir = "../backend"): mounted on its own
        workdir = PurePosixPath("/code")
        mounts.append(f"{relative(project.app_dir, out_dir)}:{workdir}")
    env_files = [Path(os.path.relpath(p, out_dir)).as_posix() for p in project.env_files if p.is_file()]

    def service(command: list[str], **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"build": relative(root, out_dir), "working_dir": str(workdir)}
        body["command"] = command
        body["volumes"] = list(mounts)
        if env_files:
            body["env_file"] = list(env_files)
        body["environment"] = dict(environment)
        if local:
            body["depends_on"] = {REDIS_SERVICE: {"condition": "service_healthy"}}
        body.update(extra)
        return body

    services: dict[str, Any] = {}
    if local:
        services[REDIS_SERVICE] = {
            "image": REDIS_IMAGE,
            "command": ["redis-server", "--appendonly", "yes"],
            "volumes": [f"{REDIS_VOLUME}:/data"],
            "healthcheck": {
                "test": ["CMD", "redis-cli", "ping"],
                "interval": "2s",
                "timeout": "3s",
                "retries": 30,
            },
        }
    taken = set(services)
    api = api_command(project)
    if api:
        services["api"] = service(api, ports=[f"{api_port}:{API_PORT}"])
        taken.add("api")
        if project.api_command and not any("{port}" in w for w in project.api_command):
            left.append(
                f"api: api_command has no {{port}}: make it listen on 0.0.0.0:{API_PORT} in the container"
            )
    taken |= {"beat", "flower"}
    for index, group in enumerate(project.workers):
        name = group.name if group.name not in taken else f"{group.name}-worker"
        if name != group.name:
            left.append(f"workers {group.name}: the service is {name} ({group.name} is taken)")
        taken.add(name)
        extra: dict[str, Any] = {}
        if group.count > 1:
            extra["deploy"] = {"replicas": group.count}
        services[name] = service(worker_command(project, index), **extra)
    if project.beat:
        schedule = "--schedule=/tmp/celerybeat-schedule"  # not in the mounted project folder
        services["beat"] = service(["celery", "-A", project.celery, "beat", "--loglevel=info", schedule])
    if project.flower:
        services["flower"] = service(
            ["celery", "-A", project.celery, "flower", f"--port={FLOWER_PORT}"],
            ports=[f"{FLOWER_PORT}:{FLOWER_PORT}"],
        )
        left.append("flower: the image needs the flower package (pip install flower)")
    for step in getattr(project, "steps", ()):  # one-shot steps (a migration): not written as services yet
        left.append(f"step {step.name}: not exported; run it before the servers (a one-shot service)")
    document: dict[str, Any] = {"services": services}
    if local:
        document["volumes"] = {REDIS_VOLUME: {}}
    return ComposeExport(document, left)


def _host(value: str) -> str | None:
    if "://" not in value:
        return None
    try:
        return urlsplit(value).hostname
    except ValueError:
        return None


def render_yaml(document: Mapping[str, Any], source: str) -> str:
    """Block style, commands and other lists of plain values on one line (`["celery", "-A", ...]`)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            super().increase_indent(flow, False)  # a list under its key is indented, as compose files are

    def represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        plain = bool(data) and all(isinstance(item, str | int) for item in data)
        if not plain or any(isinstance(item, str) and ":/" in item for item in data):  # volumes stay block
            return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=False)
        items = [
            dumper.represent_scalar("tag:yaml.org,2002:str", item, style='"')
            if isinstance(item, str)
            else dumper.represent_data(item)
            for item in data
        ]
        return yaml.SequenceNode("tag:yaml.org,2002:seq", items, flow_style=True)

    Dumper.add_representer(list, represent_list)
    text = yaml.dump(
        dict(document),
        Dumper=Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=4096,
        allow_unicode=True,
    )
    return HEADER.format(source=source) + text
