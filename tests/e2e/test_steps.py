"""One-shot steps (issue 19): commands run to completion, in order, after the broker is ready and before the
servers start, with the project's interpreter and environment; a step that fails stops the start with its last
lines, one that hangs is killed with its tree after its timeout, and nothing is left running."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil

from tests.conftest import clean_environ
from tests.procs import free_port, wait_until
from tests.user_stacks import UserStack, p419

API = """
import sqlite3
from fastapi import FastAPI
app = FastAPI()

@app.get("/")
def rows():
    with sqlite3.connect("app.db") as db:
        return {"rows": [r[0] for r in db.execute("select name from items order by name")]}
"""
MIGRATE = """
import sqlite3, sys
with sqlite3.connect("app.db") as db:
    db.execute("create table if not exists items (name text)")
    db.execute("insert into items values (?)", (sys.argv[1],))
print("migrated", sys.argv[1])
"""
WORKER = 'from celery import Celery\ncelery = Celery("w")\n'


def project(tmp_path: Path, steps: str) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "main.py").write_text(API)
    (root / "migrate.py").write_text(MIGRATE)
    (root / "worker.py").write_text(WORKER)
    (root / "p419.toml").write_text('api = "main:app"\ncelery = "worker.celery"\n\n' + steps)
    return root


def test_a_migration_step_makes_the_table_the_api_then_reads(tmp_path: Path, user_stacks) -> None:
    root = project(
        tmp_path,
        '[[steps]]\nname = "migrate"\ncommand = "python migrate.py first"\n\n'
        '[[steps]]\nname = "seed"\ncommand = ["{python}", "migrate.py", "second"]\n',
    )
    dry = p419(root, clean_environ(), "up", "--dry-run")
    assert dry.returncode == 0 and "step migrate: " in dry.stdout and "migrate.py first" in dry.stdout
    stack = UserStack(root, "--broker", "embedded")
    user_stacks.append(stack)
    stack.wait_ready()
    assert httpx.get(f"{stack.url}/", timeout=5).json() == {"rows": ["first", "second"]}
    out = stack.output()
    assert "migrate | migrated first" in out and "step migrate done in" in out and "step seed done in" in out
    assert out.index("step seed done in") < out.index("started api")  # before the servers
    only = p419(root, clean_environ(), "up", "--dry-run", "--only", "workers")
    assert "step migrate" not in only.stdout  # --only leaves them out unless asked for
    stack.stop_and_check_nothing_left()


def test_a_failing_step_stops_the_start_and_shows_its_output(tmp_path: Path, user_stacks) -> None:
    root = project(
        tmp_path,
        '[[steps]]\nname = "migrate"\ncommand = "python -c \\"print(\'no database\'); raise SystemExit(4)\\""\n',
    )
    done = p419(
        root, {**clean_environ(), "P419_API_PORT": str(free_port())}, "up", "--broker", "embedded", timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "migrate | no database" in done.stdout and "migrate exited with code 4" in done.stdout
    assert "started api" not in done.stdout and "started worker1" not in done.stdout


def test_a_hanging_step_is_killed_with_its_tree_after_its_timeout(tmp_path: Path, user_stacks) -> None:
    hang = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); print('hanging', flush=True); time.sleep(300)"
    root = project(
        tmp_path, f'[[steps]]\nname = "stuck"\ncommand = ["python", "-c", "{hang}"]\ntimeout = 2\n'
    )
    stack = UserStack(root, "--broker", "embedded")
    user_stacks.append(stack)
    stack.wait_for(r"stuck +\| hanging", 60)
    kids = psutil.Process(stack.proc.pid).children(recursive=True)
    assert stack.proc.wait(30) == 1, stack.output()
    assert "stuck did not finish within 2s: killed with its processes" in stack.output()
    assert wait_until(
        lambda: not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids), 10
    )
