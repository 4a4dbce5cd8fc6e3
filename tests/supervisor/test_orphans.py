"""Orphan protection for real: the guard's watchdog takes its command down when its parent is killed -9."""

from __future__ import annotations

import subprocess
import sys

import psutil

from tests.plans import plan_for
from tests.procs import guarded_by_a_stand_in, wait_until


def test_guard_stops_its_command_when_the_supervisor_dies(tmp_path) -> None:
    parent, sleep_pid, guard_pid = guarded_by_a_stand_in(["sleep", "120"])
    sleeper = psutil.Process(sleep_pid)
    assert wait_until(lambda: sleeper.name() == "sleep", 5)  # the guard's child may not have exec'd yet
    parent.kill()
    parent.wait()
    assert wait_until(lambda: not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE, 10)
    assert wait_until(
        lambda: (
            not psutil.pid_exists(guard_pid) or psutil.Process(guard_pid).status() == psutil.STATUS_ZOMBIE
        ),
        10,
    )


def test_guard_forwards_sigterm() -> None:
    guard = subprocess.Popen([sys.executable, "-m", "python419.supervisor.guard", "sleep", "120"])
    assert wait_until(lambda: psutil.Process(guard.pid).children(), 10)
    guard.terminate()
    assert guard.wait(10) == 128 + 15  # sleep died of the forwarded SIGTERM; the guard says so


def test_a_child_the_job_refuses_is_not_left_running(tmp_path) -> None:
    import os

    from python419.supervisor.plan import ChildSpec
    from python419.supervisor.process import ProcessFactory

    started: list[int] = []

    class RefusingJob:
        def assign(self, handle: int) -> None:
            started.append(handle)
            raise OSError("AssignProcessToJobObject failed (Windows error 5)")

    factory = ProcessFactory(
        plan_for("linux", tmp_path), dict(os.environ), lambda n, line: None, RefusingJob()
    )  # type: ignore[arg-type]
    try:
        factory(ChildSpec("sleeper", "api", ["sleep", "60"]))
    except OSError:
        pass
    else:
        raise AssertionError("the factory must report the failure")
    [pid] = started
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_every_child_is_put_in_the_job_object(tmp_path) -> None:
    """The Windows seam: the factory hands each new child's pid to the Job Object it was given."""
    import os
    import queue

    from python419.supervisor.plan import ChildSpec
    from python419.supervisor.process import ProcessFactory

    class FakeJob:
        def __init__(self) -> None:
            self.assigned: list[int] = []

        def assign(self, handle: int) -> None:
            self.assigned.append(handle)  # on Linux Popen has no handle: the factory passes the pid

    lines: queue.Queue[tuple[str, str]] = queue.Queue()
    job = FakeJob()
    plan = plan_for("linux", tmp_path)
    factory = ProcessFactory(plan, dict(os.environ), lambda n, line: lines.put((n, line)), job)  # type: ignore[arg-type]
    child = factory(ChildSpec("echo", "api", [sys.executable, "-c", "print('hello from the child')"]))
    assert job.assigned == [child.pid]
    assert lines.get(timeout=10) == ("echo", "hello from the child")
    assert wait_until(lambda: child.poll() == 0, 10)


STAND_IN = """
import os, subprocess, sys, time
from pathlib import Path
from python419.broker import make_embedded_folders
from python419.supervisor.plan import UpOptions
from tests.plans import plan_for

root = Path(sys.argv[1])
plan = plan_for("linux", root, config={"celery": "tinyapp.celery", "workers": 1}, mode="embedded",
                python=sys.executable, supervisor_pid=os.getpid(), options=UpOptions(grace=1.0))
make_embedded_folders(plan.target)
[worker] = plan.by_kind("worker")
# No parent-death signal here (p419's process layer would set one on Linux): only the watchdog can act.
child = subprocess.Popen(worker.argv, env={**os.environ, **plan.env, **worker.env}, cwd=worker.cwd,
                         start_new_session=True, stdout=open(root / "worker.log", "w"), stderr=subprocess.STDOUT)
print(child.pid, worker.ready.target, flush=True)
time.sleep(600)
"""


def test_the_launcher_started_with_the_plans_environment_runs_the_watchdog(tmp_path) -> None:
    """The orphan watchdog reads the supervisor's pid from the variable the plan sets (a name spelled twice
    once left it dead): a real worker launched with the plan's own environment goes when its supervisor is
    killed -9, with no parent-death signal to help."""
    from pathlib import Path

    (tmp_path / "tinyapp.py").write_text("from celery import Celery\ncelery = Celery('tiny')\n")
    repo = Path(__file__).resolve().parents[2]
    stand_in = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, str(tmp_path)], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    worker = None
    try:
        pid_text, ready = stand_in.stdout.readline().split()  # type: ignore[union-attr]
        worker = psutil.Process(int(pid_text))
        assert wait_until(lambda: Path(ready).exists(), 60), (tmp_path / "worker.log").read_text()
        stand_in.kill()
        stand_in.wait()
        gone = lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE  # noqa: E731
        assert wait_until(gone, 15), (tmp_path / "worker.log").read_text()
        assert "Warm shutdown" in (tmp_path / "worker.log").read_text()  # it stopped warmly
    finally:
        stand_in.kill()
        if worker is not None and worker.is_running():
            worker.kill()
