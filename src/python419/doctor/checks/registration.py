"""registration: would a worker started from this app know our task? Checked in a fresh interpreter, so a
circular import or an autodiscovery that silently found nothing shows up exactly as the worker would hit it."""

from __future__ import annotations

from python419.doctor.app_spec import TASK_MODULE, TASK_NAME, AppSpec
from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed
from python419.doctor.probes.app_probe import AppProbe, Autodiscovery

UNREGISTERED = "a worker started from it answers our messages with 'Received unregistered task'"
CYCLE_FIX = (
    "create the Celery app in a module that imports no tasks; import the tasks module after the app exists "
    "(at the bottom of the app module), or list it in Celery(include=[...])"
)


def missing_fix(probe: AppProbe, spec: AppSpec) -> str:
    if probe.task_module_exists:
        return (
            f"list the task module in the app: Celery(..., include=['{TASK_MODULE}']), "
            f"or `import {TASK_MODULE}` at the bottom of {spec.module}, after the app is created"
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


def registration_outcome(probe: AppProbe, spec: AppSpec) -> Outcome:
    app = str(spec)
    reproduce = f'reproduce with: python -c "import {spec.module}"'
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
    if TASK_NAME in probe.tasks:
        return passed(
            f"{app} imports cleanly in a fresh interpreter; {len(probe.tasks)} task(s) registered, "
            f"including {TASK_NAME}"
        )
    registered = ", ".join(probe.tasks) or "none"
    detail = f"{app} imports, but {TASK_NAME} is not registered (registered: {registered})"
    if probe.autodiscover:
        detail += f": {describe_discovery(probe.autodiscover)}"
    if probe.task_module_exists:
        detail += f"; {TASK_MODULE} exists, but nothing imports it"
    return failed(f"{detail}; {UNREGISTERED}", missing_fix(probe, spec))


def check_registration(ctx: Context) -> Outcome:
    return registration_outcome(ctx.app_probe.get(), ctx.app)
