"""Import the Celery app in a fresh interpreter, the project's own, as a worker would, and read back what it
registered.

A fresh process matters: in this one, import order and already-imported modules could hide a circular import
or a task that only gets registered by accident. The project's interpreter matters: the app is imported with
the project's celery and the project's dependencies, which p419's own interpreter need not have. The child,
python419/launch/app_probe.py, is run there by path (standard library and celery only).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from python419.doctor.app_spec import AppSpec
from python419.launch import app_probe as child
from python419.launch.app_probe import MARKER

# "interpreter": not run, the project's interpreter cannot import the app (see the python check).
Stage = Literal["ok", "import", "find", "finalize", "crash", "timeout", "interpreter"]
CHILD = Path(child.__file__).resolve()  # run by path: the project's interpreter need not have python419
# A hang (an app that connects somewhere at import), not a slow import, is what this catches: under Wine a
# healthy app took 4.0 s to import, and a cold disk can take as long. The report says how long it took.
PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class ImportFrame:
    module: str
    line: int


@dataclass(frozen=True)
class Autodiscovery:
    packages: tuple[str, ...]
    related_name: str | None
    missing: tuple[str, ...]  # modules autodiscovery looked for that do not exist


@dataclass(frozen=True)
class AppProbe:
    stage: Stage
    error: str | None = None
    chain: tuple[ImportFrame, ...] = ()
    partial: str | None = None  # set when Python reported a partially initialized module: a cycle
    tasks: tuple[str, ...] = ()
    worker_pool: str | None = None
    autodiscover: tuple[Autodiscovery, ...] = ()
    # Of the task modules asked about (the bundled app's), those that can be imported, whether or not anything
    # imports them.
    task_modules_found: tuple[str, ...] = ()
    default_queue: str | None = None
    queues: tuple[str, ...] = ()  # the app's task_queues: what a worker without -Q consumes
    routes: tuple[tuple[str, str], ...] = ()  # (task, queue it is sent to)
    python: str | None = None  # the version of the interpreter it ran in ("3.9.18"), and its celery's
    celery: str | None = None
    seconds: float | None = None  # the fresh interpreter's whole run: start, import, finalize
    budget: float = PROBE_TIMEOUT


def parse_probe_output(stdout: str, stderr: str, returncode: int) -> AppProbe:
    """The child's report, or a crash carrying the end of its stderr."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        tail = " | ".join(stderr.strip().splitlines()[-3:]) or f"exit code {returncode}, no output"
        return AppProbe("crash", error=tail[:500])
    data: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    return AppProbe(
        stage=data.get("stage", "crash"),
        error=data.get("error"),
        chain=tuple(ImportFrame(str(f["module"]), int(f["line"])) for f in data.get("chain", [])),
        partial=data.get("partial"),
        tasks=tuple(data.get("tasks", [])),
        worker_pool=data.get("worker_pool"),
        autodiscover=tuple(
            Autodiscovery(tuple(d["packages"]), d.get("related_name"), tuple(d["missing"]))
            for d in data.get("autodiscover", [])
        ),
        task_modules_found=tuple(str(m) for m in data.get("task_modules_found", [])),
        default_queue=data.get("default_queue"),
        queues=tuple(str(q) for q in data.get("queues") or ()),
        routes=tuple(sorted((str(t), str(q)) for t, q in (data.get("routes") or {}).items())),
        python=data.get("python"),
        celery=data.get("celery"),
    )


def probe_app(
    spec: AppSpec,
    cwd: Path,
    env: Mapping[str, str],
    python: str | None = None,
    task_modules: tuple[str, ...] = (),
    timeout: float = PROBE_TIMEOUT,
) -> AppProbe:
    """`python`: the project's interpreter (default: this one). `task_modules`: whether these can be imported
    is reported too (where a missing task should have come from)."""
    argv = [python or sys.executable, str(CHILD), spec.module, spec.attr or "", ",".join(task_modules)]
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return AppProbe(
            "timeout", error=f"importing {spec} took longer than its {timeout:g} s budget", budget=timeout
        )
    found = parse_probe_output(done.stdout, done.stderr, done.returncode)
    return replace(found, seconds=time.monotonic() - started, budget=timeout)
