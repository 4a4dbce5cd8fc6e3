"""registration: does the app import as a worker imports it, and which tasks does it register (for the bundled
app: its own task, which every message of the stack names)? Checked in a fresh interpreter, the project's, so a
circular import or an autodiscovery that silently found nothing shows up exactly as the worker would hit it."""

from __future__ import annotations

from python419.doctor.app_spec import AppSpec
from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed, warned
from python419.doctor.probes.app_probe import AppProbe, Autodiscovery

UNREGISTERED = "a worker started from it answers their messages with 'Received unregistered task'"
CLEAN = "imports cleanly in a fresh run of the project's interpreter"
CYCLE_FIX = (
    "create the Celery app in a module that imports no tasks; import the tasks module after the app exists "
    "(at the bottom of the app module), or list it in Celery(include=[...])"
)


def task_module(task: str) -> str:
    """Where a task's name says it lives: Celery names a task module.function by default."""
    return task.rsplit(".", 1)[0]


def missing_fix(probe: AppProbe, spec: AppSpec, missing: list[str]) -> str:
    found = [m for m in dict.fromkeys(task_module(t) for t in missing) if m in probe.task_modules_found]
    if found:
        listed = ", ".join(f"'{m}'" for m in found)
        return (
            f"list the task module in the app: Celery(..., include=[{listed}]), "
            f"or `import {found[0]}` at the bottom of {spec.module}, after the app is created"
        )
    return (
        "import the module that defines the task from the app module, after creating the app, "
        "or list it in Celery(include=[...])"
    )


def import_chain(probe: AppProbe) -> str:
    """`a (line 3) → b (line 1) → a (partially initialized)`: who imported whom when it broke."""
    steps = [f"{frame.module} (line {frame.line})" for frame in probe.chain]
    if probe.partial:
        steps.append(f"{probe.partial} (partially initialized)")
    return " → ".join(steps)


def describe_discovery(calls: tuple[Autodiscovery, ...]) -> str:
    parts = []
    for call in calls:
        looked = ", ".join(call.missing) or "modules that do not define it"
        found = "found nothing" if call.missing else "imported them"
        parts.append(f"autodiscover_tasks({list(call.packages)!r}) looked for {looked} and {found}")
    return "; ".join(parts)


def took(probe: AppProbe) -> str:
    """` (Python 3.9.18, celery 5.2.7; in 0.3 s of a 30 s budget)`: where it was imported, and how long it took."""
    parts = []
    if probe.python:
        parts.append(f"Python {probe.python}, celery {probe.celery or '?'}")
    if probe.seconds is not None:
        parts.append(f"in {probe.seconds:.1f} s of a {probe.budget:g} s budget")
    return f" ({'; '.join(parts)})" if parts else ""


def registration_outcome(probe: AppProbe, spec: AppSpec, expected: tuple[str, ...] = ()) -> Outcome:
    """`expected`: the tasks a worker must know (the bundled app's); none for a user's project, whose tasks
    are listed."""
    app = str(spec)
    reproduce = f'reproduce with: python -c "import {spec.module}"'
    if probe.stage == "interpreter":
        return warned(f"not checked: {probe.error}", "fix python first")
    if probe.stage == "timeout":
        return failed(f"{probe.error}: does it connect to something at import time?", reproduce)
    if probe.stage == "crash":
        return failed(f"importing {app} in a fresh interpreter crashed: {probe.error}", reproduce)
    if probe.partial:
        return failed(f"circular import: {import_chain(probe)} — {probe.error}", CYCLE_FIX)
    if probe.stage == "import":
        chain = f" (while importing {import_chain(probe)})" if probe.chain else ""
        return failed(f"importing {app} fails: {probe.error}{chain}", f"fix that error; {reproduce}")
    if probe.stage == "find":
        return failed(str(probe.error), "point --app at the module that creates the Celery app (MODULE:attr)")
    if probe.stage == "finalize":
        return failed(
            f"{app} imports, but loading its task modules fails: {probe.error}",
            f"fix that error; {reproduce}",
        )
    if not expected:
        shown = ", ".join(probe.tasks[:8]) + (
            f" and {len(probe.tasks) - 8} more" if len(probe.tasks) > 8 else ""
        )
        if not probe.tasks:
            return warned(
                f"{app} imports cleanly, but registers no task: a worker would run nothing",
                "import your tasks modules from the app module, or list them in Celery(include=[...])",
            )
        return passed(f"{app} {CLEAN}{took(probe)}; {len(probe.tasks)} task(s): {shown}")
    missing = [task for task in expected if task not in probe.tasks]
    if not missing:
        return passed(
            f"{app} {CLEAN}{took(probe)}; {len(probe.tasks)} task(s) registered, including {', '.join(expected)}"
        )
    registered = ", ".join(probe.tasks) or "none"
    detail = f"{app} imports, but {', '.join(missing)} is not registered (registered: {registered})"
    if probe.autodiscover:
        detail += f": {describe_discovery(probe.autodiscover)}"
    unimported = [m for m in dict.fromkeys(task_module(t) for t in missing) if m in probe.task_modules_found]
    if unimported:
        detail += f"; {', '.join(unimported)} exists, but nothing imports it"
    return failed(f"{detail}; {UNREGISTERED}", missing_fix(probe, spec, missing))


def check_registration(ctx: Context) -> Outcome:
    expected = ctx.plugin.tasks if ctx.plugin else ()
    return registration_outcome(ctx.app_probe.get(), ctx.app, expected)


def routes_outcome(probe: AppProbe, groups: list[tuple[str, tuple[str, ...]]]) -> Outcome:
    """Pure: does some worker group consume the queue of every task? A task routed elsewhere waits forever."""
    if probe.stage != "ok":
        return warned(
            "could not read the task routes: the app did not load (see registration)",
            "fix registration first",
        )
    default = probe.queues or (probe.default_queue or "celery",)  # what a worker without -Q consumes
    consumed = {q for _, queues in groups for q in (queues or default)}
    orphans = [(task, queue) for task, queue in probe.routes if queue not in consumed]
    if orphans:
        listed = "; ".join(f"{task} → queue {queue!r}" for task, queue in orphans)
        return failed(
            f"no worker group consumes the queue of: {listed} (groups consume: {', '.join(sorted(consumed))})",
            f"add the queue to a group's queues in the p419 config, e.g. queues = [{orphans[0][1]!r}]",
        )
    return passed(f"every task's queue is consumed ({', '.join(sorted(consumed))})")


def check_routes(ctx: Context) -> Outcome:
    project = ctx.project
    groups: list[tuple[str, tuple[str, ...]]] = (
        [(g.name, g.queues) for g in project.workers] if project else [("worker", ())]
    )
    return routes_outcome(ctx.app_probe.get(), groups)
