"""workers: who is running, with which pool, and does each know our task. A worker started from old code
keeps running until restarted: it is how "Received unregistered task" happens while the code looks right."""

from __future__ import annotations

from python419.doctor.app_spec import TASK_NAME
from python419.doctor.checks.system import SOLO_FIX, WINERROR, pool_name
from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed, warned
from python419.doctor.probes.workers_probe import PING_TIMEOUT, WorkerInfo, inspect_workers
from python419.platforms import Platform


def describe(worker: WorkerInfo) -> str:
    pool = pool_name(worker.pool) if worker.pool else "pool unknown"
    if worker.tasks is None:
        tasks = "did not list its tasks"
    else:
        tasks = "task registered" if TASK_NAME in worker.tasks else "TASK MISSING"
    return f"{worker.name} ({pool}, {tasks})"


def workers_outcome(workers: list[WorkerInfo], platform: Platform) -> Outcome:
    """Pure: fail on stale workers and on prefork under Windows; warn when none runs."""
    if not workers:
        return warned(
            f"no worker answered ping within {PING_TIMEOUT:g} s: notifications wait in the outbox until one runs",
            "start one: p419 worker (or the whole stack: p419 up)",
        )
    summary = f"{len(workers)} worker(s): " + ", ".join(describe(w) for w in workers)
    stale = [w.name for w in workers if w.tasks is not None and TASK_NAME not in w.tasks]
    forking = [w.name for w in workers if platform == "windows" and w.pool and pool_name(w.pool) == "prefork"]
    problems, fixes = [], []
    if stale:
        problems.append(
            f"{', '.join(stale)} does not have {TASK_NAME} registered: it runs old code or another app, "
            "and answers our messages with 'Received unregistered task'"
        )
        fixes.append(
            f"restart {', '.join(stale)} from the current code (stop it; then p419 worker or p419 up)"
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
    return workers_outcome(inspect_workers(ctx.target), ctx.platform)
