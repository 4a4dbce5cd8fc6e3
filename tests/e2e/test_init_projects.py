"""`p419 init` on the ways real projects start (issue 18, item 3), then `p419 up` on Redis with no hand edit:
each fixture project (tests/projects/) is copied with its own environment at .venv, configured by `p419 init`,
run, a task posted through its own API succeeds on its worker, and Ctrl+C leaves nothing behind.

- template: the course template: every service starts through a script its Dockerfile COPYs in
  (/start, /start-celeryworker, /start-celerybeat, /start-flower), settings in .env/.dev-sample with compose
  hosts in its URLs;
- fastapi-run: the API is the Dockerfile's CMD, `fastapi run src/api.py`; the worker runs from src/;
- hypercorn: served by hypercorn (an api_command), the worker's module written for the container
  (`celery -A app.app.worker` from `/` with the repository at /app);
- procfile-beside: a compose file of databases only, the app in the Procfile beside it (gunicorn with
  uvicorn's worker class, `python -m celery`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import clean_environ
from tests.user_stacks import PROJECTS, UserStack, copy_project, p419

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@pytest.fixture
def project(tmp_path: Path, latest_venv: Path) -> Iterator[Callable[..., Path]]:
    """A copy of a fixture project with its own environment at .venv: the newest releases of its stack."""

    def copy(name: str) -> Path:
        root = copy_project(tmp_path, name)
        (root / ".venv").symlink_to(latest_venv, target_is_directory=True)
        return root

    yield copy


def init(root: Path) -> tuple[str, dict]:
    done = p419(root, clean_environ(), "init")
    assert done.returncode == 0, done.stderr
    return done.stdout, tomllib.loads((root / "p419.toml").read_text())


def test_course_template_started_by_scripts_the_dockerfile_copies_in(project, user_stacks) -> None:
    root = project("template")
    said, config = init(root)
    for service, script, command in [
        ("web", "/start is compose/local/fastapi/start", "`uvicorn main:app"),
        ("celery_worker", "/start-celeryworker is compose/local/fastapi/celery/worker/start", "worker"),
        ("celery_beat", "/start-celerybeat is compose/local/fastapi/celery/beat/start", "beat"),
        ("flower", "/start-flower is compose/local/fastapi/celery/flower/start", "flower"),
    ]:
        [line] = [x for x in said.splitlines() if x.strip().startswith(f"{service}: /start")]
        assert script in line and "copied by compose/local/fastapi/Dockerfile" in line and command in line
    assert config["api"] == "main:app" and config["celery"] == "main.celery"
    assert config["beat"] is True and config["flower"] is True and "app_dir" not in config
    assert config["env_files"] == [".env/.dev-sample"]
    # Only the values naming compose services, pointed at loopback; the env file itself is left alone.
    assert config["env"] == {
        "DATABASE_URL": "postgresql://fastapi_celery:fastapi_celery@127.0.0.1/fastapi_celery",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/0",
        "WS_MESSAGE_QUEUE": "redis://127.0.0.1:6379/0",
    }
    env_file = ".env/.dev-sample"
    assert (root / env_file).read_text() == (PROJECTS / "template" / env_file).read_text()
    assert "db (postgres:16-alpine): not started by p419" in said

    stack = UserStack(root, "--no-flower")  # Flower's fixed port 5555 is not what is tested here
    user_stacks.append(stack)
    stack.wait_ready()
    # The project's settings: FASTAPI_CONFIG from its env file, DATABASE_URL from [env] (on this machine).
    assert httpx.get(f"{stack.url}/users/settings/").json() == {
        "config": "DevelopmentConfig",
        "database_url": "postgresql://fastapi_celery:fastapi_celery@127.0.0.1/fastapi_celery",
    }
    task_id = httpx.post(f"{stack.url}/users/form/", json={"x": 6, "y": 3}).json()["task_id"]
    body = stack.result(f"/users/task_status/?task_id={task_id}", lambda b: b["state"] == "SUCCESS")
    assert body["result"] == 2.0
    # Routed by the project's route_task to high_priority, one of its three declared queues.
    task_id = httpx.post(f"{stack.url}/users/priority/").json()["task_id"]
    body = stack.result(f"/users/task_status/?task_id={task_id}", lambda b: b["state"] == "SUCCESS")
    assert body["result"]["queue"] == "high_priority"
    assert body["result"]["worker"].startswith("celery_worker1@")
    stack.wait_for(r"Sending due task task-schedule-work")  # beat, from its own start script
    stack.stop_and_check_nothing_left()


def test_fastapi_run_from_the_dockerfile_cmd(project, user_stacks) -> None:
    root = project("fastapi-run")
    said, config = init(root)
    assert "api: the CMD of Dockerfile: `fastapi run src/api.py --port 80`" in said
    assert "the API (api:app, as `fastapi run src/api.py` imports it from src) → api" in said
    assert config["app_dir"] == "src" and config["api"] == "api:app" and config["celery"] == "worker.app"
    assert config["env_files"] == [".env"]
    assert config["env"] == {
        "BROKER_URL": "redis://127.0.0.1:6379/0",
        "RESULT_BACKEND": "redis://127.0.0.1:6379/1",
    }

    stack = UserStack(root)
    user_stacks.append(stack)
    stack.wait_ready()
    # The env file's own values reach the code; its compose hosts are replaced by [env]'s loopback.
    assert httpx.get(f"{stack.url}/").json() == {
        "greeting": "hello from .env",
        "broker": "redis://127.0.0.1:6379/0",
    }
    task_id = httpx.post(f"{stack.url}/add", json={"x": 2, "y": 40}).json()["id"]
    body = stack.result(f"/add/{task_id}", lambda b: b["state"] == "SUCCESS")
    assert body["value"] == 42
    stack.stop_and_check_nothing_left()


def test_hypercorn_and_a_module_path_written_for_the_container(project, user_stacks) -> None:
    root = project("hypercorn")
    said, config = init(root)
    assert "web: the API served by hypercorn (app.main:app) → api_command" in said
    assert (
        "worker: app.app.worker is imported from / in the container (. is /app): on this machine that is "
        "app.worker (app/worker.py), from ." in said
    )
    assert config["api_command"] == "{python} -m hypercorn --bind {host}:{port} app.main:app"
    assert config["celery"] == "app.worker" and "api" not in config and "app_dir" not in config
    assert "rabbitmq (rabbitmq:3-management-alpine): not needed" in said

    dry = p419(root, clean_environ(), "up", "--dry-run")
    assert (
        "{python}" not in dry.stdout
        and f"{root}/.venv/bin/python -m hypercorn --bind 127.0.0.1:" in dry.stdout
    )
    stack = UserStack(root)
    user_stacks.append(stack)
    stack.wait_ready()
    home = httpx.get(f"{stack.url}/")
    assert home.json() == {"hello": "hypercorn"} and home.headers["server"].startswith("hypercorn")
    task_id = httpx.post(f"{stack.url}/add/2/3").json()["task_id"]
    body = stack.result(f"/tasks/{task_id}", lambda b: b["status"] == "SUCCESS")
    assert body["result"] == 5
    # The amqp:// broker hard-coded in the code was overridden by the stack's.
    assert "Connected to amqp" not in stack.output()
    stack.stop_and_check_nothing_left()


def test_a_procfile_beside_a_compose_file_of_databases(project, user_stacks) -> None:
    root = project("procfile-beside")
    done = p419(root, clean_environ(), "init")
    assert done.returncode == 0, done.stderr
    said = done.stdout
    assert said.startswith("read Procfile:\n")
    assert "docker-compose.yml: no service runs the app (db: postgres:16; redis: redis:7; mailpit" in said
    assert "web: the API (shop.asgi:app) → api" in said and "worker: a Celery worker on orders,celery" in said
    assert "release: python -m shop.migrate → not started by p419" in said
    config = tomllib.loads((root / "p419.toml").read_text())
    assert config["api"] == "shop.asgi:app" and config["celery"] == "shop.tasks"
    assert config["workers"] == [{"name": "worker", "queues": ["orders", "celery"], "concurrency": 2}]
    assert "env" not in config  # .env says localhost: nothing to rewrite

    stack = UserStack(root)
    user_stacks.append(stack)
    stack.wait_ready()
    task_id = httpx.post(f"{stack.url}/orders/tea?quantity=2").json()["task_id"]
    body = stack.result(f"/orders/status/{task_id}", lambda b: b["status"] == "SUCCESS")
    assert body["result"] == {"sku": "tea", "quantity": 2, "queue": "orders"}
    stack.stop_and_check_nothing_left()


def test_neither_compose_nor_procfile_recognisable_names_what_was_seen(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    build: .\n    command: /start\n  db:\n    image: postgres:16\n"
    )
    (tmp_path / "Procfile").write_text("web: python run.py\n")
    done = p419(tmp_path, clean_environ(), "init")
    assert done.returncode == 2
    err = done.stderr
    assert "docker-compose.yml: no uvicorn/gunicorn API and no celery worker found in any service" in err
    assert "web: /start (a script not found in this repository)" in err and "db: postgres:16" in err
    assert "Procfile: no uvicorn/gunicorn API" in err and "web: python run.py" in err
    for line in ('app_dir = "."', 'api = "main:app"', 'celery = "worker.celery"'):
        assert line in err
    assert "Traceback" not in err and not (tmp_path / "p419.toml").exists()
