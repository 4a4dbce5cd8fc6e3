"""workers: who is running, with which pool, and does each know the tasks it will be sent. A worker started from
old code keeps running until restarted: it is how "Received unregistered task" happens while the code looks
right. The tasks it must know: the bundled app's own task, or, on a user's project, every task the project's app
registers today (read by the app probe, in the project's interpreter)."""

from __future__ import annotations

from python419.doctor.checks.system import SOLO_FIX, WINERROR, pool_name
from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed, warned
from python419.doctor.probes.workers_probe import PING_TIMEOUT, WorkerInfo, inspect_workers
from python419.platforms import Platform

SHOWN = 3  # missing tasks named per worker; the rest are counted


def missing_tasks(worker: WorkerInfo, expected: tuple[str, ...]) -> list[str]:
    return [task for task in expected if worker.tasks is not None and task not in worker.tasks]


def listed(tasks: list[str]) -> str:
    more = f" and {len(tasks) - SHOWN} more" if len(tasks) > SHOWN else ""
    return ", ".join(tasks[:SHOWN]) + more


def describe(worker: WorkerInfo, expected: tuple[str, ...]) -> str:
    pool = pool_name(worker.pool) if worker.pool else "pool unknown"
    if worker.tasks is None:
        tasks = "did not list its tasks"
    elif not expected:
        tasks = f"{len(worker.tasks)} task(s)"
    else:
        missing = missing_tasks(worker, expected)
        if not missing:
            tasks = "task registered" if len(expected) == 1 else f"all {len(expected)} tasks registered"
        else:
            tasks = "TASK MISSING" if len(expected) == 1 else f"MISSING {listed(missing)}"
    return f"{worker.name} ({pool}, {tasks})"


def workers_outcome(
    workers: list[WorkerInfo],
    platform: Platform,
    expected: tuple[str, ...],
    unknown: str | None = None,
) -> Outcome:
    """Pure: fail on stale workers (one without a task in `expected`) and on prefork under Windows; warn when
    none runs. `unknown`: why the tasks could not be compared (the app did not load), said in the detail."""
    if not workers:
        return warned(
            f"no worker answered ping within {PING_TIMEOUT:g} s: tasks wait in the broker until one runs",
            "start one: p419 worker (or the whole stack: p419 up)",
        )
    summary = f"{len(workers)} worker(s): " + ", ".join(describe(w, expected) for w in workers)
    if unknown:
        summary += f" (tasks not compared: {unknown})"
    stale = {w.name: missing_tasks(w, expected) for w in workers if missing_tasks(w, expected)}
    forking = [w.name for w in workers if platform == "windows" and w.pool and pool_name(w.pool) == "prefork"]
    problems, fixes = [], []
    if stale:
        names = ", ".join(stale)
        problems.append(
            "; ".join(f"{name} does not have {listed(missing)} registered" for name, missing in stale.items())
            + ": it runs old code or another app, and answers those tasks' messages with "
            "'Received unregistered task'"
        )
        fixes.append(
            f"restart {names} from the current code (a worker of the running stack: p419 restart workers; "
            "else stop it, then p419 worker or p419 up)"
        )
    if forking:
        problems.append(f"{', '.join(forking)} runs the prefork pool, which fails on Windows with {WINERROR}")
        fixes.append(f"restart it: {SOLO_FIX}")
    if problems:
        return failed(f"{summary}. " + "; ".join(problems), "; ".join(fixes))
    silent = [w.name for w in workers if w.tasks is None]
    if silent:
        return warned(
            f"{summary}: {', '.join(silent)} did not report its tasks in time (busy, or stuck)",
            "run `p419 doctor` again; if it persists, restart that worker",
        )
    return passed(summary)


def check_workers(ctx: Context) -> Outcome:
    if not ctx.broker.get().ok:
        return warned("not checked: the broker is unreachable (see broker)", "fix the broker first")
    workers = inspect_workers(ctx.target)
    if ctx.plugin is not None:
        return workers_outcome(workers, ctx.platform, ctx.plugin.tasks)
    # A user's project: every task its app registers today, as the app probe (running meanwhile) found them.
    probe = ctx.app_probe.get() if workers else None
    if probe is None or probe.stage == "ok":
        return workers_outcome(workers, ctx.platform, probe.tasks if probe else ())
    return workers_outcome(workers, ctx.platform, (), "the app did not load, see registration")
