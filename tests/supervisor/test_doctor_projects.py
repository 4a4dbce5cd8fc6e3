"""`p419 doctor` on a user's own project (a copy of tests/projects/flat, configured by `p419 init`): it checks that
project — its interpreter, its tasks on its running workers, its API on its port — and nothing of the bundled
app (no Telegram, no outbox, no send_tg_notification). The bundled app's own checks run only for the bundled app.
Real processes throughout: `p419 up`, a stale worker started by hand, the project's own venv."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import celery
import pytest

from tests.conftest import clean_environ
from tests.doctor_helpers import DoctorRun, down_env, run_doctor, start_celery_worker, write_files
from tests.procs import Proc, RedisServer, wait_until
from tests.user_stacks import UserStack, copy_project, p419

BUNDLED_TASK = "send_tg_notification"
REPORT_TASK = """

@celery.task(name="create_report")
def create_report(rows):
    return {"rows": rows}
"""


def check(run: DoctorRun, check_id: str, status: str, *details: str) -> dict:
    found = run.report[check_id]
    assert found["status"] == status, found
    for detail in details:
        assert detail in found["detail"], found
    return found


def nothing_of_the_bundled_app(run: DoctorRun) -> None:
    assert not [i for i in run.report if i.startswith(("telegram", "queue"))], list(run.report)
    assert BUNDLED_TASK not in run.stdout and "python419 API" not in run.stdout, run.stdout


def flat_project(tmp_path: Path) -> Path:
    root = copy_project(tmp_path, "flat")
    done = p419(root, clean_environ(), "init")
    assert done.returncode == 0, done.stderr
    return root


def start_stack(root: Path, user_stacks: list[UserStack], *args: str, **env: str) -> UserStack:
    stack = UserStack(root, "--no-flower", *args, **env)  # Flower's fixed port 5555 is not tested here
    user_stacks.append(stack)
    stack.wait_ready()
    return stack


def doctor(stack: UserStack, *args: str) -> DoctorRun:
    return run_doctor("--json", *args, env=stack.env, cwd=stack.root, timeout=90)


@pytest.mark.parametrize("broker", ["redis", "embedded"])
def test_a_healthy_user_project_is_checked_as_itself(
    tmp_path: Path, user_stacks: list[UserStack], broker: str
) -> None:
    root = flat_project(tmp_path)
    stack = start_stack(root, user_stacks, "--broker", broker)  # redis: one that p419 up starts
    api_pid = stack.children()["api"]["pid"]
    run = doctor(stack)
    assert run.returncode == 0, run.stdout + run.stderr
    nothing_of_the_bundled_app(run)
    assert not [c for c in run.report.values() if c["status"] == "fail"]
    check(
        run,
        "python",
        "pass",
        f"Python {platform.python_version()}",
        f"celery {celery.__version__}",
        "chosen: p419's own interpreter",
    )
    check(run, "registration", "pass", "1 task(s): create_task")
    check(run, "workers", "pass", "1 worker(s): worker1@", "task registered")
    check(run, "api", "pass", f"the stack's API (pid {api_pid}) answers on 127.0.0.1:{stack.api_port}")
    assert run.report["broker"]["status"] != "fail"  # the broker the running stack chose
    check(run, "env.values", "pass")
    # The table says the same to a person.
    table = run_doctor(env=stack.env, cwd=root, timeout=90)
    assert table.returncode == 0 and "0 failed" in table.stdout and BUNDLED_TASK not in table.stdout


@pytest.fixture
def shared_redis_url(redis_server: RedisServer) -> Iterator[str]:
    url = redis_server.url.rsplit("/", 1)[0] + "/12"
    yield url


def test_a_stale_worker_of_a_user_project_is_named(
    tmp_path: Path, user_stacks: list[UserStack], shared_redis_url: str
) -> None:
    root = flat_project(tmp_path)
    stack = start_stack(root, user_stacks, REDIS_URL=shared_redis_url)
    # Last week's copy of the app: create_task did not exist yet. Its worker consumes the same broker.
    old = tmp_path / "old"
    worker_py = (root / "project" / "worker.py").read_text()
    write_files(old, {"worker.py": worker_py.split('@celery.task(name="create_task")')[0]})
    stale: Proc = start_celery_worker(old, "worker.celery", shared_redis_url, "stale", tmp_path, pool="solo")
    try:
        run = doctor(stack)
    finally:
        stale.stop()
    assert run.returncode == 1, run.stdout
    nothing_of_the_bundled_app(run)
    workers = check(run, "workers", "fail", "stale@", "does not have create_task registered", "old code")
    assert "restart stale@" in workers["fix"] and "worker1@" not in workers["fix"], workers
    assert "Received unregistered task" in workers["detail"]
    check(run, "registration", "pass", "create_task")

    # The project's code gains a task while its worker runs: the stack's own worker is now the stale one.
    with (root / "project" / "worker.py").open("a") as handle:
        handle.write(REPORT_TASK)
    run = doctor(stack)
    assert run.returncode == 1, run.stdout
    workers = check(run, "workers", "fail", "worker1@", "does not have create_report registered")
    assert "restart worker1@" in workers["fix"] and "p419 restart workers" in workers["fix"]
    check(run, "registration", "pass", "2 task(s): create_report, create_task")
    # The fix it gives works: after a restart the worker has both tasks.
    assert stack.p419("restart", "workers").returncode == 0
    assert wait_until(lambda: doctor(stack).report["workers"]["status"] == "pass", 60, 0.5), stack.output()[
        -3000:
    ]
    assert doctor(stack).returncode == 0


def test_the_api_port_held_by_another_program_on_a_user_project(tmp_path: Path) -> None:
    """No stack of the project runs, and something holds its API port: not "the python419 API" — p419 up could
    not start the project's API there."""
    import socket

    root = flat_project(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        run = run_doctor("--json", env=down_env(P419_API_PORT=str(port)), cwd=root, timeout=90)
    nothing_of_the_bundled_app(run)
    api = check(run, "api", "fail", f"(pid {__import__('os').getpid()})", "no p419 up of this project runs")
    assert "P419_API_PORT" in api["fix"]


def test_stack_outcome_decisions() -> None:
    from python419.doctor.checks.api_port import Holder, StackApi, stack_outcome

    someone = Holder(4242, "python3")
    assert stack_outcome("127.0.0.1", 8000, someone, None, None, "linux") is None  # no stack: can't tell
    other = stack_outcome("127.0.0.1", 8000, someone, StackApi(10, 11, "running"), False, "linux")
    assert other is not None and other.status == "fail" and "python3 (pid 4242)" in other.detail
    assert "not by the running stack's API (pid 11)" in other.detail
    only_workers = stack_outcome("127.0.0.1", 8000, someone, StackApi(10, None), None, "linux")
    assert only_workers is not None and only_workers.status == "pass" and "runs no API" in only_workers.detail
    down = stack_outcome("127.0.0.1", 8000, someone, StackApi(10, None, "restarting in 1s"), None, "linux")
    assert down is not None and down.status == "fail"


def test_the_python_check_reads_the_projects_own_interpreter(tmp_path: Path, pinned_venv: Path) -> None:
    """--python, as for p419 up: the pinned venv (Python 3.9, celery 5.2.7, kombu 5.2.4, redis 4.5.4). Its
    versions are listed, its known problem is a failure with the fix, and the app is imported in it."""
    root = flat_project(tmp_path)
    python = pinned_venv / "bin" / "python"
    run = run_doctor("--json", "--python", str(pinned_venv), env=down_env(), cwd=root, timeout=90)
    nothing_of_the_bundled_app(run)
    found = check(
        run, "python", "fail", f"{python}: Python 3.", "celery 5.2.7", "kombu 5.2.4", "chosen: --python"
    )
    assert "kombu before 5.4.0" in found["detail"] and "-m pip install -U kombu" in found["fix"], found
    version = re.search(r"Python (3\.\d+\.\d+)", found["detail"])
    assert version is not None
    # The probe ran there (by path, with no python419 in that venv), not in p419's own interpreter.
    check(run, "registration", "pass", f"(Python {version.group(1)}, celery 5.2.7;", "create_task")


def test_an_interpreter_without_celery_is_named(tmp_path: Path) -> None:
    root = flat_project(tmp_path)
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    run = run_doctor("--json", "--python", str(bare), env=down_env(), cwd=root, timeout=90)
    assert run.returncode == 1
    found = check(
        run, "python", "fail", str(bare / "bin" / "python"), "has no celery, uvicorn", "the workers"
    )
    assert f"{bare / 'bin' / 'python'} -m pip install celery uvicorn" in found["fix"], found
    check(run, "registration", "warn", "has no celery", "(see python)")


def test_the_app_probe_runs_by_path_without_shadowing_the_projects_modules(tmp_path: Path) -> None:
    """The probe's folder (python419/launch) has a contract.py and a watchdog.py; a project's own modules of those
    names must be the ones its app imports."""
    root = write_files(
        tmp_path / "shadow",
        {
            "p419.toml": 'celery = "tasks_app"\n',
            "contract.py": "QUEUE = 'orders'\n",
            "tasks_app.py": """
                from celery import Celery

                from contract import QUEUE

                app = Celery("shadow")
                app.conf.task_default_queue = QUEUE


                @app.task(name="orders.place")
                def place():
                    return QUEUE
            """,
        },
    )
    run = run_doctor("--json", env=down_env(), cwd=root, timeout=90)
    check(run, "registration", "pass", "1 task(s): orders.place")
    check(run, "routes", "pass", "consumed (orders)")  # the project's QUEUE, read from its own contract.py


def test_the_bundled_apps_checks_run_only_for_the_bundled_app(tmp_path: Path) -> None:
    root = flat_project(tmp_path)
    user = run_doctor("--json", env=down_env(), cwd=root, timeout=90)
    nothing_of_the_bundled_app(user)
    # --app naming the bundled app in the same folder: its checks are back, with its settings.
    bundled = run_doctor(
        "--json", "--app", "python419.products.tasks.celery_app", env=down_env(), cwd=root, timeout=90
    )
    assert {"queue", "telegram.token", "telegram.chat"} <= set(bundled.report)
    check(bundled, "registration", "pass", f"tasks.notifications.{BUNDLED_TASK}")
    check(bundled, "telegram.token", "warn", "dry-run")
    check(bundled, "python", "pass", "chosen: the bundled app")  # it runs in p419's own interpreter
    # No configuration at all: the bundled app, in its report order.
    plain = run_doctor("--json", env=down_env(), cwd=tmp_path, timeout=90)
    ids = list(plain.report)
    assert ids.index("workers") < ids.index("queue") < ids.index("api") < ids.index("telegram.token")
    assert ids.index("telegram.token") + 1 == ids.index("telegram.chat") < ids.index("exposure.api")


def test_a_broken_p419_configuration_is_not_checked_as_the_bundled_app(tmp_path: Path) -> None:
    """Which app and interpreter a broken configuration means is unknown: its checks say so, and the bundled app
    (which an unreadable p419.toml is not) is not checked in its place."""
    root = write_files(tmp_path / "broken", {"p419.toml": 'celery = "worker.celery"\nworkres = 2\n'})
    run = run_doctor("--json", env=down_env(), cwd=root, timeout=90)
    assert run.returncode == 1
    nothing_of_the_bundled_app(run)
    check(run, "env.values", "fail", "workres: unknown key")
    for check_id in ("python", "registration", "workers"):
        check(run, check_id, "warn", "the p419 configuration is invalid")


@pytest.mark.parametrize(
    "name", ["package", "pinned", "template", "fastapi-run", "hypercorn", "procfile-beside"]
)
def test_the_doctor_on_each_fixture_project_with_its_stack_running(
    tmp_path: Path, user_stacks: list[UserStack], name: str, latest_venv: Path, pinned_venv: Path
) -> None:
    """Each shape of project, in its own environment, configured by `p419 init` and running: the doctor checks
    that project (its interpreter, its tasks on its workers, its API) and nothing of the bundled app."""
    root = copy_project(tmp_path, name)
    venv = pinned_venv if name == "pinned" else latest_venv
    (root / ".venv").symlink_to(venv, target_is_directory=True)
    assert p419(root, clean_environ(), "init").returncode == 0
    stack = start_stack(root, user_stacks)
    run = doctor(stack)
    failed = {k: v for k, v in run.report.items() if v["status"] == "fail"}
    nothing_of_the_bundled_app(run)
    if name == "pinned":  # kombu 5.2.4 with Redis: a known problem the python check names, the one failure
        assert list(failed) == ["python"] and "kombu" in failed["python"]["detail"], failed
        assert run.returncode == 1
    else:
        assert run.returncode == 0 and not failed, failed
    check(run, "python", failed.get("python", {}).get("status", "pass"), f"{root}/.venv/bin/python")
    assert run.report["workers"]["status"] == "pass" and "registered" in run.report["workers"]["detail"]
    assert run.report["api"]["status"] == "pass", run.report["api"]
