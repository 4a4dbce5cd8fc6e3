"""The everyday loop on a user's project (issue 9), with real processes: reload on save (warm for workers, a
syntax error parks the child until the next good save), worker groups by queue, beat into a worker, one beat per
broker, `p419 restart NAME`, and `--only workers` joining a stack from another data dir."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import clean_environ
from tests.procs import RedisServer, free_port, wait_until
from tests.user_stacks import UserStack as Up
from tests.user_stacks import copy_project

FLAT = 'app_dir = "project"\napi = "main:app"\ncelery = "worker.celery"\nreload = true\n'
FACTORY_GROUPS = """api = "main:app"
celery = "main.celery"
beat = true

[[workers]]
name = "fast"
queues = ["high_priority", "default"]
pool = "solo"

[[workers]]
name = "slow"
queues = ["low_priority"]
pool = "solo"
"""


def post_task(up: Up, kind: int) -> str:
    assert wait_until(up.answers, 30), up.output()[-3000:]
    return httpx.post(f"{up.url}/tasks", json={"type": kind}, timeout=10).json()["task_id"]


def test_reload_restarts_the_worker_warmly_and_a_syntax_error_waits_for_the_fix(
    tmp_path: Path, user_stacks
) -> None:
    root = copy_project(tmp_path, "flat", FLAT)
    worker = root / "project" / "worker.py"
    up = Up(root, "--pool", "solo")
    user_stacks.append(up)
    up.wait_ready()
    pid_before = up.children()["worker1"]["pid"]
    # A task in progress (3 s) when the code changes: it must finish, not be killed.
    slow = post_task(up, 30)
    up.wait_for(r"Task create_task\[" + slow + r"\] received")
    worker.write_text(worker.read_text().replace('"slept": float(task_type) * 0.1', '"slept": -1.0'))
    up.wait_for(r"reload: .*worker\.py changed: restarting api, worker1")
    body = up.result(f"/tasks/{slow}", lambda b: b["task_status"] in ("SUCCESS", "FAILURE"), 30)
    assert body["task_status"] == "SUCCESS" and body["task_result"]["slept"] == 3.0  # the old code, finished
    # the restarted worker's readiness: the second "worker1 ready" line, not the first one
    assert wait_until(lambda: up.output().count("worker1 ready in") >= 2, 30), up.output()[-4000:]
    assert up.children()["worker1"]["pid"] != pid_before
    new = post_task(up, 1)
    assert up.result(f"/tasks/{new}", lambda b: b["task_status"] == "SUCCESS")["task_result"]["slept"] == -1.0
    assert (
        "killed" not in up.output().split("reload:", 1)[1].split("worker1 ready in", 1)[0]
    )  # warm, not forced

    # A syntax error: the worker stays down with the error shown; the stack keeps running.
    good = worker.read_text()
    worker.write_text(good + "\ndef broken(:\n")
    up.wait_for(r"worker1 +\| .*SyntaxError", 30)
    up.wait_for(r"worker1 cannot load the app: waiting for the next change", 30)
    assert up.proc.poll() is None
    worker.write_text(good.replace("-1.0", "-2.0"))
    assert wait_until(lambda: up.output().count("worker1 ready in") >= 3, 30), up.output()[-4000:]
    fixed = post_task(up, 1)
    assert (
        up.result(f"/tasks/{fixed}", lambda b: b["task_status"] == "SUCCESS")["task_result"]["slept"] == -2.0
    )
    up.stop_and_check_nothing_left()


def test_worker_groups_beat_restart_and_one_beat_per_broker(tmp_path: Path, user_stacks) -> None:
    root = copy_project(tmp_path, "factory", FACTORY_GROUPS)
    up = Up(root)
    user_stacks.append(up)
    up.wait_ready()
    # Each task lands on its group's queue.
    urgent = httpx.post(f"{up.url}/urgent/2").json()["task_id"]
    later = httpx.post(f"{up.url}/later/3").json()["task_id"]
    u = up.result(f"/result/{urgent}", lambda b: b["status"] == "SUCCESS")["result"]
    lt = up.result(f"/result/{later}", lambda b: b["status"] == "SUCCESS")["result"]
    assert u["queue"] == "high_priority" and u["worker"].startswith("fast1@")
    assert lt["queue"] == "low_priority" and lt["worker"].startswith("slow1@")
    # Beat's 1 s schedule fires into the slow group.
    up.wait_for(r"slow1 +\| .*Task tasks\.later\[.*\] succeeded", 15)
    assert (Path(root) / ".p419" / "beat" / "celerybeat-schedule").exists() or list(
        (Path(root) / ".p419" / "beat").glob("celerybeat-schedule*")
    )
    assert not (root / "celerybeat.pid").exists() and not list(root.glob("celerybeat-schedule*"))

    # p419 restart from another terminal: a new pid, the restart counted.
    before = up.children()["fast1"]
    done = up.p419("restart", "fast1")
    assert done.returncode == 0, done.stderr + done.stdout
    after = up.children()["fast1"]
    assert after["pid"] != before["pid"] and after["restarts"] == before["restarts"] + 1
    assert "fast1 restarted" in done.stdout

    # A second beat on the same broker (another data dir, as from another machine) is refused, by name.
    other = copy_project(tmp_path / "second", "factory", FACTORY_GROUPS)
    env = {"REDIS_URL": up.env["REDIS_URL"], "P419_DATA_DIR": str(tmp_path / "second-data")}
    second = Up(other, "--only", "beat", **env)
    user_stacks.append(second)
    assert second.proc.wait(60) == 2, second.output()
    beat_pid = up.children()["beat"]["pid"]
    assert f"beat: another celery beat for this broker is alive (pid {beat_pid} on " in second.output()
    assert "cannot load the app" not in second.output()

    # Beat never blocks its own successor: a restart, a kill -9, a whole new `up` at once.
    fired = lambda: up.output().count("Scheduler: Sending due task")  # noqa: E731
    done = up.p419("restart", "beat")
    assert done.returncode == 0 and "beat restarted" in done.stdout, done.stderr + done.stdout
    count = fired()
    assert wait_until(lambda: fired() > count + 1, 20), up.output()[-3000:]
    assert up.proc.poll() is None and up.children()["beat"]["pid"] != beat_pid
    os.kill(up.children()["beat"]["pid"], signal.SIGKILL)
    up.wait_for(r"restarting beat", 20)
    count = fired()
    assert wait_until(lambda: fired() > count + 1, 30), up.output()[-3000:]
    assert "took over the beat lock of a beat that is gone" in up.output()
    up.stop_and_check_nothing_left()
    again = Up(root, "--reload", REDIS_URL=up.env["REDIS_URL"])  # up again at once, this time with --reload
    user_stacks.append(again)
    again.wait_ready()
    again.wait_for(r"beat +\| .*Scheduler: Sending due task", 20)
    assert "another celery beat" not in again.output()
    # a save restarts beat (warmly: its lock goes with it), and the new beat fires again
    beat_before = again.children()["beat"]["pid"]
    tasks = root / "tasks.py"
    tasks.write_text(tasks.read_text() + "\n# saved\n")
    again.wait_for(r"reload: .*tasks\.py changed: restarting .*beat", 20)
    assert wait_until(lambda: again.children()["beat"]["pid"] != beat_before, 30), again.output()[-3000:]
    fired = again.output().count("Scheduler: Sending due task")
    assert wait_until(lambda: again.output().count("Scheduler: Sending due task") > fired, 30), (
        again.output()[-3000:]
    )
    assert "another celery beat" not in again.output() and again.proc.poll() is None
    again.stop_and_check_nothing_left()


def test_redis_is_the_projects_url_exactly_and_a_password_only_when_asked(
    tmp_path: Path, user_stacks
) -> None:
    """Like any local Redis (compose, apt, brew): the project's own clients reach p419's Redis with the
    project's URL, no password; `redis_password = true` gives it a generated one, shown by `p419 status`."""
    from celery import Celery

    root = copy_project(tmp_path, "factory", FACTORY_GROUPS.replace("beat = true\n", ""))
    up = Up(root)
    user_stacks.append(up)
    up.wait_ready()
    client = Celery("outside", broker=up.env["REDIS_URL"], backend=up.env["REDIS_URL"], set_as_current=False)
    try:
        result = client.send_task("tasks.urgent", args=[5], queue="high_priority")
        assert result.get(timeout=30)["double"] == 10
    finally:
        client.close()
    up.stop_and_check_nothing_left()

    (root / "p419.toml").write_text("redis_password = true\n" + (root / "p419.toml").read_text())
    locked = Up(root, REDIS_URL=up.env["REDIS_URL"])
    user_stacks.append(locked)
    locked.wait_ready()
    status = locked.p419("status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["broker_url"].startswith(
        "redis://:**@127.0.0.1:"
    )
    password = (root / ".p419" / "redis" / "password").read_text().strip()
    assert password not in status.stdout + locked.output()  # never printed
    url = locked.env["REDIS_URL"].replace("redis://", f"redis://:{password}@")
    client = Celery("outside", broker=url, backend=url, set_as_current=False)
    try:
        assert (
            client.send_task("tasks.urgent", args=[6], queue="high_priority").get(timeout=30)["double"] == 12
        )
    finally:
        client.close()
    refused = Up(
        copy_project(tmp_path / "other", "factory", FACTORY_GROUPS),
        "--only",
        "beat",
        REDIS_URL=locked.env["REDIS_URL"],
    )
    user_stacks.append(refused)
    assert refused.proc.wait(60) == 1 and "requires a password" in refused.output(), refused.output()
    locked.stop_and_check_nothing_left()


def test_only_workers_joins_a_stack_from_another_data_dir(tmp_path: Path, user_stacks) -> None:
    (tmp_path / "redis").mkdir()
    redis_server = RedisServer(free_port(), tmp_path / "redis").start()
    try:
        url = redis_server.url
        root = copy_project(tmp_path, "flat", FLAT.replace("reload = true\n", ""))
        api_only = Up(root, "--only", "api", REDIS_URL=url, P419_DATA_DIR=str(tmp_path / "host-a"))
        user_stacks.append(api_only)
        api_only.wait_ready()
        assert "worker1" not in api_only.children()
        second = copy_project(tmp_path / "host-b", "flat", FLAT.replace("reload = true\n", ""))
        workers = Up(second, "--only", "workers", REDIS_URL=url, P419_DATA_DIR=str(tmp_path / "host-b-data"))
        user_stacks.append(workers)
        workers.wait_ready()
        task = post_task(api_only, 1)
        assert api_only.result(f"/tasks/{task}", lambda b: b["task_status"] == "SUCCESS")
        assert re.search(r"worker1 +\| .*Task create_task\[" + task + r"\] succeeded", workers.output())
        refused = subprocess.run(
            [sys.executable, "-m", "python419", "up", "--only", "workers", "--broker", "embedded"],
            cwd=second,
            env={**clean_environ(), "P419_DATA_DIR": str(tmp_path / "x")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and "cannot span hosts" in refused.stderr, refused.stderr
        workers.stop_and_check_nothing_left()
        api_only.stop_and_check_nothing_left()
    finally:
        redis_server.stop()


def test_flower_sees_the_workers_tasks_and_keeps_them_across_a_restart(tmp_path: Path, user_stacks) -> None:
    root = copy_project(tmp_path, "flat", FLAT.replace("reload = true\n", "flower = true\n"))
    env = {"FLOWER_UNAUTHENTICATED_API": "true"}  # Flower's JSON API, for this test to read
    up = Up(root, "--broker", "embedded", "--pool", "solo", **env)
    user_stacks.append(up)
    up.wait_ready()
    assert re.search(r"^worker1: .* -E", up.p419("up", "--dry-run", "--broker", "embedded").stdout, re.M)
    task = post_task(up, 1)
    up.result(f"/tasks/{task}", lambda b: b["task_status"] == "SUCCESS")

    def flower_knows() -> bool:
        tasks = httpx.get("http://127.0.0.1:5555/api/tasks", timeout=5).json()
        return tasks.get(task, {}).get("state") == "SUCCESS"  # task events reached Flower

    assert wait_until(flower_knows, 20), up.output()[-3000:]
    up.stop_and_check_nothing_left()
    again = Up(root, "--broker", "embedded", "--pool", "solo", **env)
    user_stacks.append(again)
    again.wait_ready()
    assert wait_until(flower_knows, 20), "Flower forgot the task across a restart"
    again.stop_and_check_nothing_left()
