"""Import the Celery app in a fresh interpreter, as a worker would, and read back what it registered.

A fresh process matters: in this one, import order and already-imported modules could hide a circular import
or a task that only gets registered by accident.
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

from python419.doctor.app_spec import TASK_MODULE, AppSpec
from python419.doctor.probes.app_probe_child import MARKER

Stage = Literal["ok", "import", "find", "finalize", "crash", "timeout"]
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
    task_module_exists: bool = False  # TASK_MODULE can be imported (whether or not anything imports it)
    default_queue: str | None = None
    routes: tuple[tuple[str, str], ...] = ()  # (task, queue it is sent to)
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
        task_module_exists=bool(data.get("task_module_exists")),
        default_queue=data.get("default_queue"),
        routes=tuple(sorted((str(t), str(q)) for t, q in (data.get("routes") or {}).items())),
    )


def probe_app(spec: AppSpec, cwd: Path, env: Mapping[str, str], timeout: float = PROBE_TIMEOUT) -> AppProbe:
    argv = [
        sys.executable,
        "-m",
        "python419.doctor.probes.app_probe_child",
        spec.module,
        spec.attr or "",
        TASK_MODULE,
    ]
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
