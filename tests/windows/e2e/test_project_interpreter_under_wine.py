"""p419 as a tool on Windows: installed in one Windows interpreter, it runs a user project's workers in the
project's own, under Wine.

scripts/test-windows builds both: p419's (python419 and its dependencies: celery 5.7, fastapi, pydantic, ...) and
the project's, the same CPython whose site-packages hold only a 2023 Celery project's lock file
(scripts/windows/project-requirements.txt: celery 5.3.6, kombu 5.3.4, pywin32 306, ...) and nothing of p419's, so
a child that imported anything of p419 would fail there. The project here is a user's smallest: a Celery app
module, its own client script, and a p419.toml naming the app and the interpreter; workers only (no API: the
project has no uvicorn). `p419 up --broker embedded` runs under p419's interpreter; the project's client, run by
the project's interpreter, sends tasks with the broker settings p419 gives every child (from its dry-run); a
task records the interpreter, the Celery and kombu it ran with, and whether anything of p419 was importable;
`p419 down` stops the worker warmly in the middle of a task (the stop file: Wine cannot deliver CTRL_BREAK).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import wait_until
from tests.windows.e2e.wine import (
    WINE_PROJECT_PYTHON,
    WINE_PYTHON,
    WineUp,
    alive,
    require_wine,
    run_windows,
    windows_env,
    winpath,
)

REPO = Path(__file__).resolve().parents[3]
REQUIREMENTS = REPO / "scripts" / "windows" / "project-requirements.txt"
GRACE = 30.0
TASK_SECONDS = 8  # longer than Wine takes to start `p419 down` (about 3-4 s), so the stop lands mid-task
P419_PACKAGES = ("python419", "fastapi", "pydantic", "typer", "rich")
# A module-wide run (dry-run, up, two tasks, a warm stop) under Wine on a busy 2-core machine.
pytestmark = pytest.mark.timeout(420)

APP = f'''"""A user's Celery app: one task that says where it ran."""
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import celery as celery_package
import kombu
from celery import Celery

celery = Celery("app")
DONE = Path(__file__).resolve().parent / "done"


@celery.task
def where(marker, seconds=0.0):
    started = time.time()
    time.sleep(seconds)
    found = {{
        "marker": marker,
        "executable": sys.executable,
        "celery": celery_package.__version__,
        "kombu": kombu.__version__,
        "importable": [m for m in {P419_PACKAGES!r} if importlib.util.find_spec(m)],
        "imported": sorted(m for m in sys.modules if m.split(".")[0] in {P419_PACKAGES!r}),
        "pid": os.getpid(),
        "started": started,
        "finished": time.time(),
    }}
    DONE.mkdir(exist_ok=True)
    (DONE / (marker + ".json")).write_text(json.dumps(found), encoding="utf-8")
    return found
'''

# The project's own client. On the embedded broker the queue's folders are transport options, which Celery reads
# from no environment variable: it takes them as p419's launcher gives them to the project's app.
SEND = '''"""python send.py MARKER SECONDS [--no-wait]: send `where`, print its id, then (unless --no-wait) its result."""
import json
import os
import sys

from app import celery, where

options = os.environ.get("P419_STACK_TRANSPORT_OPTIONS")
if options:
    celery.conf.broker_transport_options = json.loads(options)
result = where.delay(sys.argv[1], float(sys.argv[2]))
print("sent", result.id, flush=True)
if "--no-wait" not in sys.argv:
    print("result", json.dumps(result.get(timeout=120)), flush=True)
'''


def pinned(name: str) -> str:
    """The version scripts/windows/project-requirements.txt pins `name` to."""
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        if line.startswith(name + "=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in {REQUIREMENTS}")


def installed(python: str, name: str) -> str:
    """The version of `name` in a Windows interpreter's site-packages, read from its dist-info folder."""
    [info] = (Path(python).parent / "Lib" / "site-packages").glob(f"{name}-*.dist-info")
    return info.name[len(name) + 1 : -len(".dist-info")]


def same_path(a: str, b: str) -> bool:
    return a.lower() == b.lower()  # Windows paths: case does not matter


def child_blocks(dry_run: str) -> dict[str, str]:
    """The dry-run's children: each one's first line (`NAME: argv`), by name; a child's block goes on with
    indented `cwd:`, `env:` and `ready:` lines."""
    lines = dry_run.splitlines()
    return {
        line.split(":", 1)[0]: line
        for line, after in zip(lines, lines[1:], strict=False)
        if not line.startswith(" ") and after.strip().startswith("cwd: ")
    }


def child_environment(dry_run: str) -> dict[str, str]:
    """The dry-run's `environment for every child: NAME=value NAME=value ...` line, as a dict."""
    line = next(x for x in dry_run.splitlines() if x.startswith("environment for every child: "))
    body = line.split(": ", 1)[1]
    return dict(re.findall(r"([A-Z][A-Z0-9_]*)=(.*?)(?= [A-Z][A-Z0-9_]*=|$)", body))


@pytest.fixture(scope="module", autouse=True)
def wine() -> None:
    require_wine(WINE_PYTHON, WINE_PROJECT_PYTHON)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "app.py").write_text(APP, encoding="utf-8")
    (root / "send.py").write_text(SEND, encoding="utf-8")
    config = f'celery = "app.celery"\npython = {json.dumps(winpath(WINE_PROJECT_PYTHON))}\n'
    (root / "p419.toml").write_text(config, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def dry_run(project: Path) -> str:
    """`p419 up --dry-run` in the project, with the data dir the real run below uses."""
    env = windows_env(P419_DATA_DIR=winpath(project / "data"))
    done = run_windows(
        WINE_PYTHON, ["-m", "python419", "up", "--dry-run", "--broker", "embedded"], project, env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def send(
    project: Path, stack: dict[str, str], marker: str, seconds: float, *, wait: bool = True
) -> tuple[str, dict | None]:
    """The project's client in the project's interpreter: the task's id, and its result when waited for."""
    args = ["send.py", marker, str(seconds)] + ([] if wait else ["--no-wait"])
    done = run_windows(WINE_PROJECT_PYTHON, args, project, windows_env(**stack))
    assert done.returncode == 0, done.stdout + done.stderr
    said = dict(
        line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("sent ", "result "))
    )
    return said["sent"], json.loads(said["result"]) if wait else None


@dataclass
class Scenario:
    up: WineUp
    workers: list[list[str]]  # the children's command lines, as Linux sees them
    quick: dict  # the quick task's result, as the project's client got it
    slow_id: str
    stop_asked: float  # time.time() when `p419 down` was started
    down: subprocess.CompletedProcess[str]
    exit_code: int | None
    children_gone: bool
    left: list[int]  # this run's Windows processes still there after the stop

    @property
    def output(self) -> str:
        return self.up.output()


@pytest.fixture(scope="module")
def scenario(project: Path, dry_run: str) -> Iterator[Scenario]:
    env = child_environment(dry_run)
    stack = {
        k: env[k] for k in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "P419_STACK_TRANSPORT_OPTIONS")
    }
    up = WineUp(project, grace=GRACE)
    try:
        up.wait_ready()
        workers = [p.cmdline() for p in up.children()]
        _, quick = send(project, stack, f"quick-{uuid.uuid4().hex[:8]}", 0)
        assert quick is not None
        slow_id, _ = send(project, stack, "slow", TASK_SECONDS, wait=False)
        received = re.compile(rf"worker1 \|.*Task app\.where\[{slow_id}\] received")
        assert wait_until(lambda: received.search(up.output()), 60), up.output()[-3000:]
        kids = up.children()
        stop_asked = time.time()
        down = up.p419("down", "--timeout", str(GRACE + 60))
        print(f"p419 down with a task in flight took {time.time() - stop_asked:.1f}s (task {TASK_SECONDS}s)")
        try:
            exit_code: int | None = up.proc.wait(30)
        except subprocess.TimeoutExpired:
            exit_code = None
        gone = wait_until(lambda: not alive(kids), 20)
        left = [p.pid for p in up.windows_processes()]
        yield Scenario(up, workers, quick, slow_id, stop_asked, down, exit_code, gone, left)
    finally:
        up.stop()  # never leave a stack behind


def test_the_dry_run_runs_the_worker_in_the_projects_interpreter_and_nothing_in_p419s(dry_run: str) -> None:
    project_python, p419_python = winpath(WINE_PROJECT_PYTHON), winpath(WINE_PYTHON)
    [python] = [x for x in dry_run.splitlines() if x.startswith("python: ")]
    assert python.lower().startswith(f"python: {project_python.lower()} 3.12."), dry_run
    assert f"(python in p419.toml): celery {pinned('celery')}, kombu {pinned('kombu')}" in python, dry_run
    children = child_blocks(dry_run)
    assert list(children) == ["worker1"], dry_run  # workers only: no API, no Redis
    argv = children["worker1"].split(": ", 1)[1].split(" ")
    launcher = Path(WINE_PYTHON).parent / "Lib" / "site-packages" / "python419" / "launch" / "__main__.py"
    # the project's interpreter runs p419's stdlib-only launcher by its path, then the plain celery command
    assert same_path(argv[0], project_python) and same_path(argv[1], winpath(launcher)), argv
    assert argv[2:6] == ["celery", "-A", "app.celery", "worker"] and "--pool=solo" in argv, argv
    assert p419_python.lower() not in dry_run.lower(), dry_run  # p419's interpreter runs nothing of the stack


def test_the_worker_runs_a_task_in_the_projects_interpreter(scenario: Scenario) -> None:
    # What Linux sees: the only child is the project's interpreter, running the launcher.
    assert len(scenario.workers) == 1, scenario.workers
    assert same_path(scenario.workers[0][0], winpath(WINE_PROJECT_PYTHON)), scenario.workers
    # What the task saw: the project's interpreter, its Celery and kombu (not p419's), nothing of p419.
    quick = scenario.quick
    assert same_path(quick["executable"], winpath(WINE_PROJECT_PYTHON)), quick
    assert (quick["celery"], quick["kombu"]) == (pinned("celery"), pinned("kombu")), quick
    assert quick["celery"] != installed(WINE_PYTHON, "celery"), (
        "p419's Celery is the project's: proves nothing"
    )
    assert quick["importable"] == [] and quick["imported"] == [], quick
    assert "python: " in scenario.output and "(python in p419.toml)" in scenario.output, scenario.output


def test_a_warm_stop_lets_the_task_in_hand_finish_and_leaves_nothing(scenario: Scenario) -> None:
    out = scenario.output
    assert scenario.down.returncode == 0, scenario.down.stdout + scenario.down.stderr
    assert scenario.exit_code == 0, out[-3000:]
    done = scenario.up.tmp_path / "done" / "slow.json"
    assert done.exists(), f"the task in hand was lost:\n{out[-4000:]}"
    slow = json.loads(done.read_text(encoding="utf-8"))
    assert same_path(slow["executable"], winpath(WINE_PROJECT_PYTHON)), slow
    # Wine's clock is the host's: the stop was asked while the task ran, and the task ran to its end.
    assert slow["started"] < scenario.stop_asked < slow["finished"], (slow, scenario.stop_asked)
    stopping = out.find("p419    | stopping: p419 down")
    finished = out.find(f"Task app.where[{scenario.slow_id}] succeeded in")
    assert -1 < stopping < finished, f"the stop did not land while the task was in flight:\n{out[-4000:]}"
    # "worker1 killed" when the grace period ran out, "worker1 stopped" for a clean exit
    assert re.search(r"^p419\s+\| worker1 stopped$", out, re.M), f"not stopped warmly:\n{out[-4000:]}"
    assert "worker1 killed" not in out and "Traceback" not in out, out[-4000:]
    assert scenario.children_gone and scenario.left == [], (scenario.left, out[-3000:])


def test_the_task_finished_in_the_warm_stop_is_not_queued_again(scenario: Scenario) -> None:
    """Celery < 5.5's synchronous loop (the embedded broker) checked for the stop before acking the task that had
    just finished, so kombu put it back and the next start ran it again; the launcher sends the ack first."""
    queue = scenario.up.data_dir / "broker" / "queue"
    waiting = [p.name for p in queue.iterdir() if scenario.slow_id in p.read_text(encoding="utf-8")]
    assert waiting == [], f"{waiting} in {queue}:\n{scenario.output[-2000:]}"
    assert "Restoring 1 unacknowledged message" not in scenario.output
