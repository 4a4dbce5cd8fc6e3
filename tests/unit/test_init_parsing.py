"""`p419 init`'s reading, unit by unit (python419.project_init): command lines and their wrappers, start
scripts, Dockerfiles, the container's file system mapped to this machine, compose dicts, Procfile fallback,
env files, and the pyproject.toml it writes into."""

from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from python419.project import ProjectError
from python419.project_init import (
    Container,
    asgi_attribute,
    discover,
    from_services,
    init_project,
    module_of_file,
    parse_dockerfile,
    place,
    recognise,
    script_command,
    shell_commands,
    spaced_after_ours,
)
from tests.user_stacks import PROJECTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def files(root: Path, tree: dict[str, str]) -> Path:
    for name, text in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# --- command lines -----------------------------------------------------------------------------------------

API_COMMANDS = {
    "uvicorn main:app --reload --host 0.0.0.0": "main:app",
    "uvicorn --host :: --port 80 main:app": "main:app",  # `::` is the host's value, not the app
    "python -m uvicorn app.main:app --port 8000": "app.main:app",
    "python3 -u -m uvicorn app.main:app": "app.main:app",
    "gunicorn -k uvicorn.workers.UvicornWorker -b 0.0.0.0:8000 main:app": "main:app",
    "gunicorn main:app -w 4 -k uvicorn.workers.UvicornWorker --bind 0.0.0.0:80": "main:app",
    "gunicorn --worker-class uvicorn_worker.UvicornWorker shop.asgi": "shop.asgi:application",
    "sh -c 'alembic upgrade head && uvicorn main:app --host 0.0.0.0'": "main:app",
    'bash -ec "python prestart.py; exec uvicorn main:app"': "main:app",
    "uv run --frozen uvicorn main:app": "main:app",
    "poetry run uvicorn main:app": "main:app",
    "env PYTHONPATH=. uvicorn main:app": "main:app",
    "FOO=1 uvicorn main:app": "main:app",
    "gosu app uvicorn main:app": "main:app",
    "uvicorn main:app > /var/log/api.log 2>&1": "main:app",
    "uvicorn main:app | tee api.log": "main:app",
    "watchfiles 'uvicorn main:app' ./project": "main:app",
}


@pytest.mark.parametrize("command", list(API_COMMANDS))
def test_api_commands_served_by_uvicorn(command: str) -> None:
    found = recognise(command)
    assert found is not None and found.role == "api", command
    assert found.values["api"] == API_COMMANDS[command] and "api_command" not in found.values


def test_uvicorn_options_that_matter() -> None:
    assert recognise("uvicorn main:app --app-dir src").values == {"api": "main:app", "app_dir": "src"}  # type: ignore[union-attr]
    factory = recognise("uvicorn app.main:create_app --factory --port 80 --reload --root-path /api")
    assert factory is not None and factory.values["api_command"] == [
        "{python}", "-m", "uvicorn", "app.main:create_app", "--factory", "--root-path", "/api",
        "--host", "{host}", "--port", "{port}",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "server", "argv"),
    [
        (
            "hypercorn app.main:app --bind 0.0.0.0:8000 --reload -w 2",
            "hypercorn",
            "{python} -m hypercorn -w 2 --bind {host}:{port} app.main:app",
        ),
        (
            "hypercorn -b0.0.0.0:80 --root-path /api app.main:app",
            "hypercorn",
            "{python} -m hypercorn --root-path /api --bind {host}:{port} app.main:app",
        ),
        (
            "granian --interface asgi --host 0.0.0.0 --port 8000 --workers 2 app.main:app",
            "granian",
            "{python} -m granian --interface asgi --workers 2 --host {host} --port {port} app.main:app",
        ),
    ],
)
def test_other_servers_become_an_api_command(command: str, server: str, argv: str) -> None:
    found = recognise(command)
    assert found is not None and found.role == "api" and found.server == server
    assert " ".join(found.values["api_command"]) == argv
    assert found.values["api"] == "app.main:app"  # to find the module on disk


def test_fastapi_cli() -> None:
    run = recognise("fastapi run src/api.py --port 80 --host 0.0.0.0")
    assert run is not None and run.server == "fastapi" and run.values["fastapi"] == "src/api.py"
    dev = recognise("fastapi dev")
    assert dev is not None and dev.values["fastapi"] is None
    named = recognise(["fastapi", "run", "--app", "application", "main.py"])
    assert named is not None and named.values == {"fastapi": "main.py", "fastapi_app": "application"}
    assert recognise("fastapi --version") is None


@pytest.mark.parametrize(
    ("command", "role", "values"),
    [
        (
            "celery -A main.celery worker --loglevel=info -Q a,b -c 2 -P solo",
            "worker",
            {"celery": "main.celery", "queues": ["a", "b"], "concurrency": 2, "pool": "solo"},
        ),
        ("celery --app=proj worker", "worker", {"celery": "proj"}),
        ("celery worker -A proj", "worker", {"celery": "proj"}),
        (["python", "-m", "celery", "-A", "tasks", "beat"], "beat", {"celery": "tasks"}),
        (
            "celery -A main.celery -b redis://x:6379 flower --basic_auth=a:b",
            "flower",
            {"celery": "main.celery"},
        ),
        (
            "exec watchfiles --filter python celery.__main__.main --args '-A main.celery worker --loglevel=info'",
            "worker",
            {"celery": "main.celery"},
        ),
        (
            "watchfiles --target-type=function celery.__main__.main --args='-A main.celery beat -l info'",
            "beat",
            {"celery": "main.celery"},
        ),
        (
            "watchfiles --filter python 'celery -A worker.celery worker' ./project",
            "worker",
            {"celery": "worker.celery"},
        ),
    ],
)
def test_celery_commands(command: Any, role: str, values: dict) -> None:
    found = recognise(command)
    assert found is not None and (found.role, found.values) == (role, values)


@pytest.mark.parametrize(
    "command",
    [
        "celery -A proj inspect ping",
        "gunicorn main:app",
        "python manage.py runserver",
        "python -m app",
        "/start",
    ],
)
def test_not_what_p419_runs(command: str) -> None:
    assert recognise(command) is None


def test_shell_lines() -> None:
    assert shell_commands("a && b; c | d &") == [["a"], ["b"], ["c"]]
    assert shell_commands(">&2 echo 'hi there'") == [["echo", "hi there"]]
    assert shell_commands("cmd 2>&1 >> log") == [["cmd"]]
    assert shell_commands("echo 'open") is None


# --- start scripts -----------------------------------------------------------------------------------------

SCRIPTS = PROJECTS / "template" / "compose" / "local" / "fastapi"


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("start", "uvicorn main:app --reload --reload-dir project --host 0.0.0.0"),
        (
            "celery/worker/start",
            "exec watchfiles --filter python celery.__main__.main --args -A main.celery worker --loglevel=info",
        ),
        (
            "celery/beat/start",
            "exec watchfiles --filter python celery.__main__.main --args -A main.celery beat -l info",
        ),
        ("entrypoint", "exec $@"),  # a heredoc of Python inside, then `exec "$@"`: nothing p419 runs
    ],
)
def test_the_last_command_of_the_template_start_scripts(script: str, argv: str) -> None:
    found = script_command((SCRIPTS / script).read_text())
    assert found is not None and " ".join(found.argv) == argv


def test_the_flower_script_waits_for_workers_then_runs_flower() -> None:
    found = script_command((SCRIPTS / "celery/flower/start").read_text())
    assert found is not None
    recognised = recognise(found.argv)
    assert (
        recognised is not None
        and recognised.role == "flower"
        and recognised.values["celery"] == "main.celery"
    )


def test_script_blocks_and_cd() -> None:
    text = """#!/bin/sh
set -e
if [ "$ENV" = "production" ]; then
    exec gunicorn -k uvicorn.workers.UvicornWorker app.main:app
else
    cd /srv/app/src
    exec uvicorn app.main:app --reload
fi
echo done
"""
    found = script_command(text)
    assert found is not None and found.argv == ["exec", "uvicorn", "app.main:app", "--reload"]
    assert found.cwd == "/srv/app/src"


# --- Dockerfiles and the container's files -----------------------------------------------------------------


def test_the_template_dockerfile(tmp_path: Path) -> None:
    path = SCRIPTS / "Dockerfile"
    parsed = parse_dockerfile(path.read_text(), PROJECTS / "template", path)
    assert parsed.workdir == PurePosixPath("/app") and parsed.entrypoint == ["/entrypoint"]
    copied = {str(c.dest): c.source.relative_to(PROJECTS / "template").as_posix() for c in parsed.copies}
    assert copied["/start"] == "compose/local/fastapi/start"
    assert copied["/start-celeryworker"] == "compose/local/fastapi/celery/worker/start"
    assert copied["/requirements.txt"] == "requirements.txt"


def test_dockerfile_stages_workdirs_and_copies(tmp_path: Path) -> None:
    text = """
FROM python:3.12 AS builder
COPY requirements.txt .
RUN pip wheel -r requirements.txt -w /wheels

FROM python:3.12-slim AS base
WORKDIR /srv
WORKDIR app
COPY --from=builder /wheels /wheels
ADD https://example.com/x.tar.gz /tmp/
COPY ["./src", "src/"]
COPY scripts/*.sh /usr/local/bin/

FROM base
CMD uvicorn src.main:app --host 0.0.0.0
"""
    parsed = parse_dockerfile(text, tmp_path, tmp_path / "Dockerfile")
    assert parsed.workdir == PurePosixPath("/srv/app")
    assert [(c.source, str(c.dest)) for c in parsed.copies] == [
        (tmp_path / "src", "/srv/app/src"),
        (tmp_path / "scripts/*.sh", "/usr/local/bin"),
    ]
    assert parsed.cmd == "uvicorn src.main:app --host 0.0.0.0"


def test_container_paths_on_this_machine(tmp_path: Path) -> None:
    root = files(tmp_path, {"src/api.py": "", "scripts/start.sh": "", "compose/start": "", "Dockerfile": ""})
    text = "WORKDIR /code\nCOPY ./compose/start /start\nCOPY scripts/*.sh /bin/\nCOPY . .\n"
    container = Container(root, mounts=[(PurePosixPath("/code/src"), root / "src")])
    container.dockerfile = parse_dockerfile(text, root, root / "Dockerfile")
    host = container.host
    assert host(PurePosixPath("/code/src/api.py")) == root / "src/api.py"  # the mount
    assert host(PurePosixPath("/start")) == root / "compose/start"  # a file COPY
    assert host(PurePosixPath("/bin/start.sh")) == root / "scripts/start.sh"  # a glob
    assert host(PurePosixPath("/code/Dockerfile")) == root / "Dockerfile"  # COPY . .
    assert host(PurePosixPath("/etc/passwd")) is None
    # Only ./src mounted at /code/src: /code is the folder above it.
    mounted = Container(root, mounts=[(PurePosixPath("/code/src"), root / "src")])
    assert mounted.host(PurePosixPath("/code")) == root


def test_a_module_path_written_for_the_container(tmp_path: Path) -> None:
    root = files(tmp_path, {"app/__init__.py": "", "app/worker.py": "", "app/main.py": ""})
    container = Container(root, mounts=[(PurePosixPath("/app"), root)])
    moved = place("app.app.worker", container, PurePosixPath("/"), celery=True)
    assert moved is not None and (moved.spec, moved.folder) == ("app.worker", root)
    as_is = place("app.main:app", container, PurePosixPath("/app"), celery=False)
    assert as_is is not None and (as_is.spec, as_is.folder) == ("app.main:app", root)
    attr = place("app.worker.celery_app", container, PurePosixPath("/app"), celery=True)
    assert attr is not None and attr.spec == "app.worker.celery_app" and attr.file == root / "app/worker.py"
    assert place("nowhere.worker", container, PurePosixPath("/app"), celery=True) is None


def test_what_fastapi_run_imports(tmp_path: Path) -> None:
    root = files(
        tmp_path, {"src/api.py": "", "pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/m.py": ""}
    )
    assert module_of_file(root / "src/api.py") == (root / "src", "api")
    assert module_of_file(root / "pkg/sub/m.py") == (root, "pkg.sub.m")
    assert asgi_attribute("from fastapi import FastAPI\napi = FastAPI()\napp = api\n") == "app"
    assert asgi_attribute("import fastapi\napi = fastapi.FastAPI()\n") == "api"
    assert asgi_attribute("from fastapi import FastAPI\nserver: FastAPI = FastAPI()\n") == "server"
    assert asgi_attribute("application = make()\n") is None


# --- compose services --------------------------------------------------------------------------------------


def test_compose_container_paths_and_env_files(tmp_path: Path) -> None:
    root = files(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/main.py": "",
            "app/worker.py": "",
            ".env": "DATABASE_URL=postgresql://u:p@db:5432/x\nREDIS=redis://cache:6379/0\nDEBUG=1\n"
            "CELERY_BROKER_URL=redis://cache:6379/1\n",
        },
    )
    services = {
        "web": {"build": ".", "command": "uvicorn app.main:app", "volumes": ["./:/app"], "working_dir": "/app",
                "env_file": ".env", "environment": {"CELERY_BROKER_URL": "redis://cache:6379/2"}},
        "worker": {"build": ".", "command": "celery -A app.app.worker worker", "volumes": ["./:/app:ro"],
                   "working_dir": "/", "env_file": [{"path": ".env"}, "missing.env"]},
        "cache": {"image": "redis:7"},
        "db": {"image": "postgres:16"},
    }  # fmt: skip
    found = from_services(services, "compose.yaml", root)
    assert found.config["api"] == "app.main:app" and found.config["celery"] == "app.worker"
    assert found.config["env_files"] == [".env", "missing.env"]
    assert found.config["env"] == {
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/2",  # environment: wins over the env file, as in compose
        "DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/x",
        "REDIS": "redis://127.0.0.1:6379/0",
    }
    [guess] = [line for line in found.lines if "app.app.worker" in line]
    assert guess == (
        "worker: app.app.worker is imported from / in the container (. is /app): on this machine that is "
        "app.worker (app/worker.py), from ."
    )
    assert "env_file missing.env: no such file yet (p419 up reads it once it is there)" in found.left


def test_a_module_not_on_disk_is_kept_and_said(tmp_path: Path) -> None:
    found = from_services({"worker": {"command": "celery -A installed_pkg worker"}}, "Procfile", tmp_path)
    assert found.config["celery"] == "installed_pkg"
    assert any("no module for installed_pkg" in line for line in found.left)


def test_fastapi_run_without_a_clear_app_runs_fastapi_itself(tmp_path: Path) -> None:
    root = files(tmp_path, {"main.py": "application = build()\n", "tasks.py": ""})
    services = {"api": {"command": "fastapi run main.py"}, "worker": {"command": "celery -A tasks worker"}}
    found = from_services(services, "Procfile", root)
    assert found.config["api_command"] == "{python} -m fastapi run main.py --host {host} --port {port}"
    assert "api" not in found.config and any("fastapi-cli" in line for line in found.left)


def test_fastapi_run_default_file_and_named_app(tmp_path: Path) -> None:
    root = files(tmp_path, {"app/__init__.py": "", "app/main.py": "server = FastAPI()\n", "app/tasks.py": ""})
    services = {"api": {"command": "fastapi run"}, "worker": {"command": "celery -A app.tasks worker"}}
    found = from_services(services, "Procfile", root)
    assert found.config["api"] == "app.main:server" and "app_dir" not in found.config


def test_granian_in_compose(tmp_path: Path) -> None:
    root = files(tmp_path, {"app/__init__.py": "", "app/main.py": "", "app/tasks.py": ""})
    services = {
        "web": {"command": "granian --interface asgi --host 0.0.0.0 app.main:app"},
        "worker": {"command": "celery -A app.tasks worker"},
    }
    found = from_services(services, "compose.yaml", root)
    assert (
        found.config["api_command"]
        == "{python} -m granian --interface asgi --host {host} --port {port} app.main:app"
    )
    assert "web: the API served by granian (app.main:app) → api_command" in found.lines


def test_the_dockerfile_cmd_and_a_start_script_with_cd(tmp_path: Path) -> None:
    root = files(
        tmp_path,
        {
            "Dockerfile": "FROM python\nWORKDIR /srv\nCOPY . .\nCOPY docker/run-worker.sh /run-worker.sh\n"
            'CMD ["uvicorn", "api:app", "--app-dir", "src"]\n',
            "docker/run-worker.sh": "#!/bin/sh\ncd /srv/src\nexec celery -A tasks worker -Q jobs\n",
            "src/api.py": "",
            "src/tasks.py": "",
        },
    )
    services = {"api": {"build": "."}, "worker": {"build": ".", "command": ["/run-worker.sh"]}}
    found = from_services(services, "compose.yaml", root)
    assert found.config["app_dir"] == "src" and found.config["api"] == "api:app"
    assert found.config["celery"] == "tasks" and found.config["workers"] == [
        {"name": "worker", "queues": ["jobs"]}
    ]
    assert "api: the CMD of Dockerfile: `uvicorn api:app --app-dir src`" in found.lines
    assert any(
        line.startswith("worker: /run-worker.sh is docker/run-worker.sh, copied by Dockerfile")
        for line in found.lines
    )


# --- which file, and when nothing is recognisable ----------------------------------------------------------

COMPOSE_WITHOUT_APP = "services:\n  web:\n    command: python -m app\n  db:\n    image: postgres:16\n  redis:\n    image: redis:7\n"


def test_a_procfile_beside_a_compose_file_that_runs_nothing_known(tmp_path: Path) -> None:
    root = files(
        tmp_path,
        {
            "docker-compose.yml": COMPOSE_WITHOUT_APP,
            "Procfile": "web: uvicorn main:app --port $PORT\nworker: celery -A main.celery worker\n",
            "main.py": "",
            ".env": "DATABASE_URL=postgresql://u@db/x\nLOCAL=redis://127.0.0.1:6379/0\n",
        },
    )
    source, found = discover(root)
    assert source == root / "Procfile"
    assert found.lines[0] == (
        "docker-compose.yml: no service runs the app (web: python -m app; db: postgres:16; redis: redis:7) → Procfile"
    )
    assert found.config["api"] == "main:app" and found.config["celery"] == "main.celery"
    # .env names the compose file's db: pointed at loopback in [env]; the loopback one is left alone.
    assert found.config["env"] == {"DATABASE_URL": "postgresql://u@127.0.0.1/x"}
    assert any(line.startswith("db (postgres:16): not started") for line in found.left)


def test_neither_recognisable_names_the_services_and_the_lines_to_write(tmp_path: Path) -> None:
    files(tmp_path, {"docker-compose.yml": COMPOSE_WITHOUT_APP, "Procfile": "web: node server.js\n"})
    with pytest.raises(ProjectError) as caught:
        discover(tmp_path)
    message = str(caught.value)
    assert "docker-compose.yml: no uvicorn/gunicorn API and no celery worker found in any service" in message
    assert "(seen: web: python -m app; db: postgres:16; redis: redis:7)" in message
    assert (
        "Procfile: no uvicorn/gunicorn API and no celery worker found in any service (seen: web: node server.js)"
        in message
    )
    assert message.endswith(
        'write p419.toml by hand, e.g.:\n    app_dir = "."             # the folder your code runs from\n'
        '    api = "main:app"          # what you pass to uvicorn\n'
        '    celery = "worker.celery"  # what you pass to celery -A'
    )


def test_nothing_at_all(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no docker-compose.yml, compose.yaml or Procfile"):
        discover(tmp_path)


# --- writing into pyproject.toml (issue 18, item 6) -------------------------------------------------------

COMPOSE = (
    "services:\n  web:\n    command: uvicorn main:app\n  worker:\n    command: celery -A main worker -Q a\n"
)


@pytest.mark.parametrize(
    "pyproject",
    [
        '[project]\nname = "demo"\n\n[tool.ruff]\nline-length = 100\n[build-system]\nrequires = ["hatchling"]\n',
        '[tool.ruff]\nline-length = 100\n\n[build-system]\nrequires = ["hatchling"]\n',
        '[tool.p419]\napi = "old:app"\ncelery = "old"\n[tool.ruff]\nline-length = 100\n',
        '[project]\nname = "demo"\n',
    ],
)
def test_a_blank_line_before_the_table_after_ours(tmp_path: Path, monkeypatch, pyproject: str) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    files(tmp_path, {"docker-compose.yml": COMPOSE, "main.py": "", "pyproject.toml": pyproject})
    init_project(tmp_path, force=True)
    written = (tmp_path / "pyproject.toml").read_text()
    lines = written.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("[")]
    assert all(lines[i - 1] == "" for i in headers if i > 0), written  # every table after ours is spaced
    data = tomllib.loads(written)
    assert data["tool"]["p419"]["api"] == "main:app"
    assert data["tool"]["p419"]["workers"] == [{"name": "worker", "queues": ["a"]}]
    before = tomllib.loads(pyproject)
    for key in ("project", "build-system"):
        assert data.get(key) == before.get(key)
    assert data["tool"].get("ruff") == before.get("tool", {}).get("ruff")


def test_spaced_after_ours_touches_nothing_else() -> None:
    text = '[a]\nx = 1\n[tool.p419]\ny = 2\n\n[[tool.p419.workers]]\nname = "w"\n[b]\nz = 3\n[c]\n'
    assert spaced_after_ours(text) == (
        '[a]\nx = 1\n[tool.p419]\ny = 2\n\n[[tool.p419.workers]]\nname = "w"\n\n[b]\nz = 3\n[c]\n'
    )


def test_entrypoints(tmp_path: Path) -> None:
    root = files(
        tmp_path,
        {
            "api/Dockerfile": 'FROM python\nWORKDIR /app\nCOPY . .\nENTRYPOINT ["tini", "--", "uvicorn"]\n'
            'CMD ["main:app", "--host", "0.0.0.0"]\n',
            "api/main.py": "",
            "worker/Dockerfile": "FROM python\nWORKDIR /app\nCOPY . .\nCOPY run.sh /run.sh\n"
            'ENTRYPOINT ["/run.sh"]\n',
            "worker/run.sh": "#!/bin/sh\nexec celery -A tasks worker\n",
            "worker/tasks.py": "",
        },
    )
    services = {
        "api": {"build": "./api", "volumes": ["${PWD}/api:/app"]},
        "worker": {"build": "./worker"},  # the entrypoint script runs the worker itself
        "flower": {"build": "./worker", "entrypoint": ["celery"], "command": ["--workdir", "/app", "-A", "tasks", "flower"]},
    }  # fmt: skip
    found = from_services(services, "compose.yaml", root)
    assert found.config["app_dir"] == "api" and found.config["api"] == "main:app"
    assert "api: the ENTRYPOINT and CMD of api/Dockerfile: `uvicorn main:app --host 0.0.0.0`" in found.lines
    # The worker's module is in worker/, outside the API's folder: kept, and said.
    assert found.config["celery"] == "tasks" and found.config["flower"] is True
    assert any("tasks is in worker, outside app_dir api" in line for line in found.left)


def test_one_api_is_run_and_the_others_are_said(tmp_path: Path) -> None:
    root = files(tmp_path, {"main.py": "", "admin.py": "", "tasks.py": ""})
    services = {
        "web": {"command": "uvicorn main:app"},
        "admin": {"command": "uvicorn admin:app"},
        "worker": {"command": "celery -A tasks worker"},
    }
    found = from_services(services, "Procfile", root)
    assert found.config["api"] == "main:app"
    assert "admin: another API; p419 up runs one (web's), not this one" in found.left


def test_dockerfile_variables(tmp_path: Path) -> None:
    text = (
        "FROM python:3.12\nARG APP_HOME=/app\nENV PROJECT_DIR /srv/project\nWORKDIR ${APP_HOME}\n"
        "COPY . ${APP_HOME}\nCOPY ./start /start-${ROLE:-web}\nCOPY ./lib $PROJECT_DIR/lib\n"
    )
    parsed = parse_dockerfile(text, tmp_path, tmp_path / "Dockerfile")
    assert parsed.workdir == PurePosixPath("/app")
    assert [str(c.dest) for c in parsed.copies] == ["/app", "/start-web", "/srv/project/lib"]


def test_code_mounted_from_outside_the_compose_folder(tmp_path: Path) -> None:
    files(tmp_path, {"backend/main.py": "", "backend/tasks.py": ""})
    services = {
        "api": {"command": "uvicorn main:app", "volumes": ["../backend:/app"], "working_dir": "/app"},
        "worker": {
            "command": "celery -A tasks worker",
            "volumes": ["../backend:/app"],
            "working_dir": "/app",
        },
    }
    found = from_services(services, "docker/compose.yaml", tmp_path / "docker")
    assert found.config["app_dir"] == "../backend" and found.config["api"] == "main:app"
    assert found.config["celery"] == "tasks" and not found.left


def test_one_shot_steps_from_what_compose_files_do(tmp_path: Path) -> None:
    """The work a server's shell line does first (`alembic upgrade head && uvicorn ...`), and a service that
    runs once (`restart: "no"`, or others wait for it to complete), become [[steps]], in order."""
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "worker.py").write_text("celery = None\n")
    services = {
        "seed": {"command": ["python", "-m", "seed"], "restart": "no"},
        "migrate": {"command": "python manage.py migrate"},
        "web": {
            "command": 'sh -c "cd /app && export X=1 && alembic upgrade head && uvicorn main:app --host 0.0.0.0"',
            "depends_on": {
                "migrate": {"condition": "service_completed_successfully"},
                "redis": {"condition": "service_started"},
            },
        },
        "worker": {"command": "celery -A worker.celery worker"},
        "redis": {"image": "redis:7"},
    }
    found = from_services(services, "docker-compose.yml", tmp_path)
    assert found.config["steps"] == [
        {"name": "seed", "command": "python -m seed"},
        {"name": "migrate", "command": "python manage.py migrate"},
        {"name": "alembic", "command": "alembic upgrade head"},
    ]
    assert found.config["api"] == "main:app" and found.config["celery"] == "worker.celery"
    assert "web: `alembic upgrade head` before the server → [[steps]]" in found.lines
    # written as [[steps]] tables, and read back as the plan runs them
    import yaml

    from python419.project import load_project

    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump({"services": services}, sort_keys=False))
    init_project(tmp_path)
    project = load_project(cwd=tmp_path, environ={})
    assert [(s.name, s.command) for s in project.steps] == [
        ("seed", ("python", "-m", "seed")),
        ("migrate", ("python", "manage.py", "migrate")),
        ("alembic", ("alembic", "upgrade", "head")),
    ]


def test_a_workers_replicas_are_its_groups_count(tmp_path: Path) -> None:
    """`deploy.replicas` (what p419 export compose writes for a count) or the older `scale`: the group's count,
    so an exported stack reads back the same."""
    root = files(tmp_path, {"app/__init__.py": "", "app/main.py": "", "app/tasks.py": ""})
    services = {
        "web": {"command": "uvicorn app.main:app"},
        "worker": {"command": "celery -A app.tasks worker -Q fast", "deploy": {"replicas": 3}},
        "slow": {"command": "celery -A app.tasks worker -Q slow", "scale": 2},
        "odd": {"command": "celery -A app.tasks worker -Q odd", "deploy": {"replicas": "three"}},
    }
    found = from_services(services, "compose.yaml", root)
    counts = {g["name"]: g.get("count", 1) for g in found.config["workers"]}
    assert counts == {"worker": 3, "slow": 2, "odd": 1}
    assert "worker: a Celery worker on fast, 3 processes → workers" in found.lines
