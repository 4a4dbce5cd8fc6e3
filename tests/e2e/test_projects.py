"""The user's own project under `p419 up`: three fixture projects shaped like the widely copied ones, each
configured by `p419 init` from its compose file or Procfile, run end to end on real Redis and on the embedded
broker: the API answers, a task posted through the API runs on a worker (on the project's queue) and its result
comes back, and Ctrl+C leaves no process behind."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import clean_environ
from tests.procs import free_port
from tests.user_stacks import UserStack, copy_project, p419


@pytest.fixture
def project(tmp_path: Path, latest_venv: Path) -> Iterator[Callable[..., Path]]:
    """A copy of a fixture project with its own environment at .venv: the newest releases of its stack."""

    def copy(name: str) -> Path:
        root = copy_project(tmp_path, name)
        (root / ".venv").symlink_to(latest_venv, target_is_directory=True)
        return root

    yield copy


def init(root: Path) -> str:
    done = p419(root, clean_environ(), "init")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("broker", ["redis", "embedded"])
def test_flat_project_from_its_compose_file(project, user_stacks, broker: str) -> None:
    root = project("flat")
    said = init(root)
    assert "web: the API (main:app)" in said and "dashboard: celery flower" in said
    config = (root / "p419.toml").read_text()
    assert 'app_dir = "project"' in config and 'celery = "worker.celery"' in config
    assert (
        "redis://127.0.0.1:6379/0" in config and "redis://redis" not in config
    )  # loopback, not compose's host
    stack = UserStack(root, "--broker", broker)
    user_stacks.append(stack)
    stack.wait_ready()
    assert httpx.get(f"{stack.url}/").json() == {"hello": "flat"}
    # StaticFiles(directory="static") is relative: the API runs in the app dir
    assert "static file" in httpx.get(f"{stack.url}/static/hello.txt").text
    task_id = httpx.post(f"{stack.url}/tasks", json={"type": 1}).json()["task_id"]
    body = stack.result(f"/tasks/{task_id}", lambda b: b["task_status"] == "SUCCESS")
    assert body["task_result"]["slept"] == 0.1
    # The project's own test suite passes against the running stack.
    suite = subprocess.run(
        [str(root / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root / "project",
        env={**clean_environ(), "BASE_URL": stack.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert "3 passed" in suite.stdout
    stack.stop_and_check_nothing_left()


@pytest.mark.parametrize("broker", ["redis", "embedded"])
def test_app_factory_project_from_its_procfile_routes_to_its_queue(project, user_stacks, broker: str) -> None:
    root = project("factory")
    said = init(root)
    assert "worker: a Celery worker on high_priority,default" in said and "beat = true" in said
    stack = UserStack(root, "--broker", broker)
    user_stacks.append(stack)
    stack.wait_ready()
    # Settings from the project's env file reach its code.
    assert httpx.get(f"{stack.url}/").json() == {"database": "postgresql://user:pw@db:5432/app"}
    task_id = httpx.post(f"{stack.url}/urgent/21").json()["task_id"]
    body = stack.result(f"/result/{task_id}", lambda b: b["status"] == "SUCCESS")
    assert body["result"]["double"] == 42 and body["result"]["queue"] == "high_priority"
    assert body["result"]["worker"].startswith("worker1@")
    stack.stop_and_check_nothing_left()


@pytest.mark.parametrize("broker", ["redis", "embedded"])
def test_package_project_with_a_hard_coded_amqp_broker(project, user_stacks, broker: str) -> None:
    root = project("package")
    said = init(root)
    assert "queue (rabbitmq:3): not needed" in said and "db (postgres:12): not started by p419" in said
    config = (root / "p419.toml").read_text()
    assert 'api = "app.main:app"' in config and 'queues = ["main-queue"]' in config
    stack = UserStack(root, "--broker", broker)
    user_stacks.append(stack)
    stack.wait_ready()
    task_id = httpx.post(f"{stack.url}/test-celery/hello").json()["task_id"]
    body = stack.result(f"/result/{task_id}", lambda b: b["status"] == "SUCCESS")
    assert body["result"] == "test task return hello"
    # The hard-coded amqp:// broker was overridden by the stack's (CELERY_BROKER_URL wins in Celery).
    assert "Connected to amqp" not in stack.output()
    stack.stop_and_check_nothing_left()


@pytest.mark.parametrize("name", ["flat", "factory", "package"])
def test_windows_plan_of_each_project(project, name: str) -> None:
    root = project(name)
    init(root)
    done = p419(
        root, {**clean_environ(), "P419_PLATFORM": "windows"}, "up", "--dry-run", "--concurrency", "2"
    )
    assert done.returncode == 0, done.stderr
    workers = [line for line in done.stdout.splitlines() if line.startswith(("worker", "celeryworker"))]
    workers = [line for line in workers if "launch/__main__.py celery" in line]
    assert len(workers) == 2, done.stdout  # one solo process per unit of concurrency
    assert all("--pool=solo" in line and "--concurrency=1" in line for line in workers)
    assert "ctrl-break" in done.stdout and "0x200" in done.stdout


def test_bad_project_configuration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = {
        'api = "main:app"\ncelery = "worker.celery"\napii = "x"\n': "apii: unknown key",
        'api = "nosuchmodule:app"\ncelery = "nosuchmodule"\n': "no module 'nosuchmodule'",
        'celery = "worker.celery"\napp_dir = "missing"\n': "does not exist",
        "api = [\n": "not valid TOML",
        # which key, and its line, not pydantic's one error per union branch (issue 18 item 6)
        'celery = "w.celery"\n\n[[workers]]\nname = "a"\n\n[[workers]]\nname = "b"\nredis_password = true\n': (
            "workers[1].redis_password: unknown key (line 8)"
        ),
        'celery = "w.celery"\nworkers = "three"\n': "workers: must be a number of processes (workers = 2) or "
        "[[workers]] tables (line 2)",
        # a module that does not exist on disk, below a package that does
        'celery = "pkg.nosuch:celery"\n': "no module 'pkg.nosuch'",
    }
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    for text, expected in cases.items():
        (tmp_path / "p419.toml").write_text(text)
        done = p419(tmp_path, clean_environ(), "up", "--dry-run")
        assert done.returncode == 2, (text, done.stdout, done.stderr)
        assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_attribute_that_is_not_a_celery_app_stops_up_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text("celery = 42\n")
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "p419.toml").write_text('api = "main:app"\ncelery = "worker:celery"\n')
    env = {**clean_environ(), "P419_API_PORT": str(free_port())}
    done = p419(tmp_path, env, "up", "--broker", "embedded", "--grace", "2", timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'worker:celery' is a int, not a Celery app" in done.stdout
    assert "restarting api" not in done.stdout and "restarting worker1" not in done.stdout


def test_init_refuses_to_overwrite_and_says_what_is_unrecognisable(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services:\n  db:\n    image: postgres:16\n")
    done = p419(tmp_path, clean_environ(), "init")
    assert done.returncode == 2 and "no uvicorn/gunicorn API and no celery worker" in done.stderr
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    command: uvicorn main:app\n  worker:\n    command: celery -A main worker\n"
    )
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    assert p419(tmp_path, clean_environ(), "init").returncode == 0
    written = (tmp_path / "pyproject.toml").read_text()
    assert written.startswith('[project]\nname = "demo"\n') and "[tool.p419]" in written
    again = p419(tmp_path, clean_environ(), "init")
    assert again.returncode == 2 and "--force" in again.stderr
    assert p419(tmp_path, clean_environ(), "init", "--force").returncode == 0


def test_doctor_follows_the_project_and_names_an_unconsumed_route(project) -> None:
    root = project("factory")
    init(root)  # the Procfile's worker consumes high_priority,default; tasks.later goes to low_priority
    done = p419(root, clean_environ(), "doctor", "--json", timeout=120)
    checks = {c["id"]: c for c in json.loads(done.stdout)}
    registration = checks["registration"]
    assert registration["status"] == "pass" and "tasks.urgent" in registration["detail"], registration
    routes = checks["routes"]
    assert routes["status"] == "fail", routes
    assert "tasks.later → queue 'low_priority'" in routes["detail"] and "tasks.urgent" not in routes["detail"]
    assert "low_priority" in routes["fix"]
    assert done.returncode == 1
    # With a group on that queue, nothing is left unconsumed.
    config = (
        (root / "p419.toml")
        .read_text()
        .replace(
            'queues = ["high_priority", "default"]', 'queues = ["high_priority", "default", "low_priority"]'
        )
    )
    (root / "p419.toml").write_text(config)
    again = {
        c["id"]: c for c in json.loads(p419(root, clean_environ(), "doctor", "--json", timeout=120).stdout)
    }
    assert again["routes"]["status"] == "pass", again["routes"]


def test_a_circular_import_is_one_line_on_the_console_and_a_traceback_in_the_log(tmp_path: Path) -> None:
    """worker → tasks_a → tasks_b → tasks_a: the chain, with each import's line, said once (the API imports the
    same app and fails the same way); the whole traceback goes to the child's log file; exit 2, no restarts."""
    (tmp_path / "worker.py").write_text('from celery import Celery\ncelery = Celery("w")\nimport tasks_a\n')
    (tmp_path / "tasks_a.py").write_text("from tasks_b import b\n\ndef a():\n    pass\n")
    (tmp_path / "tasks_b.py").write_text("from tasks_a import a\n\ndef b():\n    pass\n")
    (tmp_path / "main.py").write_text("from fastapi import FastAPI\nimport worker\napp = FastAPI()\n")
    (tmp_path / "p419.toml").write_text('api = "main:app"\ncelery = "worker.celery"\n')
    env = {**clean_environ(), "P419_API_PORT": str(free_port())}
    done = p419(tmp_path, env, "up", "--broker", "embedded", "--grace", "2", timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    chain = "circular import: worker (line 3) → tasks_a (line 1) → tasks_b (line 1) → tasks_a (partially initialized)"
    said = [line for line in done.stdout.splitlines() if chain in line]
    assert len(said) == 1, done.stdout
    assert "Traceback" not in done.stdout and "restarting api" not in done.stdout
    assert len(done.stdout.splitlines()) <= 15, done.stdout
    logs = "".join(p.read_text() for p in (tmp_path / ".p419" / "logs").glob("*.log"))
    assert "Traceback (most recent call last):" in logs and 'File "' in logs


def test_a_project_folder_without_a_config_is_not_run_as_the_demo(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services:\n  web:\n    command: uvicorn main:app\n")
    done = p419(tmp_path, clean_environ(), "up", "--dry-run")
    assert done.returncode == 2 and "has docker-compose.yml but no p419 config: run p419 init" in done.stderr
    assert "Traceback" not in done.stderr
    demo = p419(tmp_path, clean_environ(), "up", "--dry-run", "--demo")
    assert demo.returncode == 0 and "project: the bundled products app" in demo.stdout


def test_a_stack_without_an_api_says_so_when_ready(project, user_stacks) -> None:
    root = project("flat")
    init(root)
    config = root / "p419.toml"
    config.write_text("\n".join(x for x in config.read_text().splitlines() if not x.startswith("api =")))
    stack = UserStack(root, "--broker", "embedded")
    user_stacks.append(stack)
    stack.wait_ready()
    assert "ready in" in stack.output() and "no API configured (workers only)" in stack.output()
    stack.stop_and_check_nothing_left()


def test_send_runs_a_task_of_the_project_and_waits_for_its_result(project, user_stacks) -> None:
    """`p419 send TASK ARGS --wait` in a user's project: the task found by its last name, its arguments as
    JSON, its result printed; --kwargs and --queue; an unknown task is exit 2 with the names it has."""
    root = project("factory")
    init(root)
    stack = UserStack(root)
    user_stacks.append(stack)
    stack.wait_ready()
    done = stack.p419("send", "urgent", "21", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    sent, outcome = done.stdout.strip().splitlines()[-2:]
    assert sent.startswith("sent tasks.urgent ")
    state, value = outcome.split(" ", 1)
    assert state == "SUCCESS" and json.loads(value)["double"] == 42
    # tasks.later is routed to low_priority, which no group consumes: --queue puts it where a worker is
    later = stack.p419("send", "tasks.later", "--kwargs", '{"n": 5}', "--queue", "default", "--wait")
    assert later.returncode == 0, later.stdout + later.stderr
    assert json.loads(later.stdout.strip().splitlines()[-1].split(" ", 1)[1]) == {
        "n": 5,
        "queue": "default",
        "worker": json.loads(value)["worker"],
    }
    no_wait = stack.p419("send", "urgent", "1")
    assert no_wait.returncode == 0 and no_wait.stdout.startswith("sent tasks.urgent ")
    unknown = stack.p419("send", "urgnet", "1")
    assert unknown.returncode == 2 and "registers no task 'urgnet'" in unknown.stdout
    assert "tasks.urgent" in unknown.stdout and "Traceback" not in unknown.stdout + unknown.stderr
    stack.stop_and_check_nothing_left()
