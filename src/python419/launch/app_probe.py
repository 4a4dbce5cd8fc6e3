"""`p419 doctor`'s app probe, run by path in the PROJECT's interpreter, in the app's folder: import a Celery app
the way a worker does and report what it registered.

Started by python419/doctor/probes/app_probe.py as `PYTHON .../launch/app_probe.py MODULE ATTR TASK_MODULES`
(ATTR may be empty; TASK_MODULES, comma-separated, may be empty: the modules where the bundled app's tasks say
they live). Prints one line, MARKER + JSON, on stdout; whatever the app prints around it is ignored. Before the
app, only the standard library and Celery are imported (nothing of python419, which the project's interpreter
need not have), so nothing of ours can hide or cause its import problems. Python 3.9 syntax, standard library
and celery only (tests/unit/test_launch_imports.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
from types import ModuleType
from typing import Any

MARKER = "P419-DOCTOR-PROBE "
_PARTIAL = re.compile(r"partially initialized module '([^']+)'")


def describe(exc: BaseException) -> dict[str, Any]:
    """The error, plus the chain of modules that were executing when it was raised (outermost first)."""
    chain = []
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        name = frame.f_globals.get("__name__")
        # A "<module>" frame is a module body running: that is an import in progress.
        if frame.f_code.co_name == "<module>" and name and name != "__main__":
            chain.append({"module": name, "line": tb.tb_lineno})
        tb = tb.tb_next
    partial = _PARTIAL.search(str(exc))
    return {
        "error": f"{type(exc).__name__}: {exc}"[:500],
        "chain": chain,
        "partial": partial.group(1) if partial else None,
    }


def find_app(module: ModuleType, attr: str | None) -> Any:
    """The Celery app, looked up as `celery -A` does: the attribute, app/celery, any instance, MODULE.celery."""
    from celery import Celery

    if attr:
        found: Any = module
        for part in attr.split("."):
            found = getattr(found, part)
        return found if isinstance(found, Celery) else None
    for name in ("app", "celery", "celery_app"):
        if isinstance(getattr(module, name, None), Celery):
            return getattr(module, name)
    for value in vars(module).values():
        if isinstance(value, Celery):
            return value
    if hasattr(module, "__path__"):
        try:
            return find_app(importlib.import_module(module.__name__ + ".celery"), None)
        except ModuleNotFoundError as exc:
            if exc.name != module.__name__ + ".celery":
                raise
    return None


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def record_autodiscovery() -> list[tuple[Any, str | None]]:
    """Wrap Celery.autodiscover_tasks to learn what the app asked for: its discovery is lazy and silent."""
    from celery import Celery

    calls: list[tuple[Any, str | None]] = []
    original = Celery.autodiscover_tasks

    def recording(self: Any, packages: Any = None, related_name: Any = "tasks", force: bool = False) -> Any:
        calls.append((packages, related_name))
        return original(self, packages, related_name, force)

    Celery.autodiscover_tasks = recording
    return calls


def discovery_report(calls: list[tuple[Any, str | None]]) -> list[dict[str, Any]]:
    report = []
    for packages, related_name in calls:
        try:
            names = list(packages() if callable(packages) else packages or [])
        except Exception:
            names = []
        targets = [f"{p}.{related_name}" if related_name else str(p) for p in names]
        missing = [t for t in targets if not module_exists(t)]
        report.append({"packages": [str(p) for p in names], "related_name": related_name, "missing": missing})
    return report


def task_queues(app: Any, tasks: list[str]) -> dict[str, str]:
    """The queue each task is sent to, as Celery's own router decides (task_routes, then the default)."""
    queues = {}
    for name in tasks:
        try:
            queue = app.amqp.router.route({}, name).get("queue")
        except Exception:
            continue
        queues[name] = str(getattr(queue, "name", queue) or app.conf.task_default_queue)
    return queues


def probe(
    module_name: str,
    attr: str | None,
    task_modules: list[str],
    calls: list[tuple[Any, str | None]] | None = None,
) -> dict[str, Any]:
    if calls is None:
        try:
            calls = record_autodiscovery()
        except ImportError as exc:  # no celery here: say so, rather than crash on the app's first import
            return {"stage": "import", **describe(exc)}
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # `celery -A main.celery` means attribute `celery` of module `main` when main is not a package.
        parent, _, last = module_name.rpartition(".")
        if not (parent and attr is None and exc.name == module_name):
            return {"stage": "import", **describe(exc)}
        return probe(parent, last, task_modules, calls)
    except (Exception, SystemExit) as exc:
        return {"stage": "import", **describe(exc)}
    try:
        app = find_app(module, attr)
    except Exception as exc:
        return {"stage": "find", **describe(exc)}
    if app is None:
        where = f"{module_name}:{attr}" if attr else module_name
        return {"stage": "find", "error": f"no Celery app found in {where}", "chain": [], "partial": None}
    import celery

    report: dict[str, Any] = {
        "worker_pool": str(app.conf.worker_pool),
        "python": ".".join(str(part) for part in sys.version_info[:3]),
        "celery": str(getattr(celery, "__version__", "?")),
    }
    try:
        # What a worker does at start: import the configured modules (this runs autodiscovery), then finalize.
        app.loader.import_default_modules()
        app.finalize(auto=True)
        report["tasks"] = sorted(name for name in app.tasks if not name.startswith("celery."))
        report["default_queue"] = str(app.conf.task_default_queue)
        # a worker started without -Q consumes every queue the app declares (task_queues), else the default
        report["queues"] = [str(getattr(q, "name", q)) for q in (app.conf.task_queues or ())]
        report["routes"] = task_queues(app, report["tasks"])
    except (Exception, SystemExit) as exc:
        report.update(stage="finalize", **describe(exc))
    else:
        report["stage"] = "ok"
    report["autodiscover"] = discovery_report(calls)
    report["task_modules_found"] = [name for name in task_modules if module_exists(name)]
    return report


def import_paths() -> None:
    """As the launcher does: this folder off sys.path (run by path, it is sys.path[0], and its module names,
    e.g. watchdog or contract, must not shadow the project's), and the app's folder (the working directory)
    first, as `celery -A` has it."""
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def main(argv: list[str]) -> None:
    module, attr, task_modules = argv
    import_paths()
    result = probe(module, attr or None, [name for name in task_modules.split(",") if name])
    sys.stdout.flush()
    sys.__stdout__.write("\n" + MARKER + json.dumps(result) + "\n")  # type: ignore[union-attr]
    sys.__stdout__.flush()  # type: ignore[union-attr]
    # Reported: a thread the app started at import (a connection pool, a scheduler) must not hold the exit.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
