"""`p419 send TASK ...` for a user's project, in the project's interpreter: load its Celery app as a worker
would, find the task among the names it registers (a unique last part is enough: `create_task` for
`worker.create_task`), send it by name (the app's own routes and serializer apply), print its id and, when
asked to wait, its state and result.

Exit codes: 0 sent (or SUCCESS when waiting), 1 the task failed or did not finish in time, 2 no such task."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .child import LaunchError, configure_for_stack, load_celery_app

NOT_FOUND_EXIT = 2


def registered(app: Any) -> list[str]:
    """The project's own tasks (Celery's built-in ones left out), as a worker started from it would know them."""
    app.loader.import_default_modules()  # `include=` and `imports`, as a worker does at start
    app.finalize(auto=True)
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def resolve(name: str, names: list[str]) -> str:
    """The full task name for `name`: itself, or the one task whose last part it is."""
    if name in names:
        return name
    ends = [n for n in names if n.rsplit(".", 1)[-1] == name or n.endswith("." + name)]
    if len(ends) == 1:
        return ends[0]
    close = ends or [n for n in names if name.lower() in n.lower()]
    hint = (
        f"did you mean {', '.join(close[:5])}?"
        if close
        else f"it registers: {', '.join(names[:12]) or 'none'}"
    )
    raise LaunchError(f"the app registers no task {name!r}: {hint}")


def parse_args(raw: list[str]) -> list[Any]:
    """Each argument as JSON when it parses (2 → int, '{"a": 1}' → dict), else as the string it is."""
    parsed: list[Any] = []
    for text in raw:
        try:
            parsed.append(json.loads(text))
        except ValueError:
            parsed.append(text)
    return parsed


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    """argv: APP TASK KWARGS_JSON QUEUE WAIT_SECONDS ARGS..."""
    spec, name, kwargs_json, queue, wait, *raw = argv
    try:
        app = load_celery_app(spec)
        configure_for_stack(app, environ)
        full = resolve(name, registered(app))
        kwargs = json.loads(kwargs_json) if kwargs_json else {}
        if not isinstance(kwargs, dict):
            raise LaunchError(f"--kwargs must be a JSON object, not {kwargs_json}")
    except (LaunchError, ValueError) as exc:
        print(f"p419: {exc}", flush=True)
        return NOT_FOUND_EXIT
    result = app.send_task(full, args=parse_args(raw), kwargs=kwargs, queue=queue or None)
    print(f"sent {full} {result.id}", flush=True)
    if not float(wait):
        return 0
    try:
        value = result.get(timeout=float(wait), propagate=False)
    except Exception as exc:  # noqa: BLE001 - a timeout, or a backend that cannot be read: say it
        print(f"{result.state} {type(exc).__name__}: {exc}", flush=True)
        return 1
    shown = json.dumps(value, default=repr) if result.successful() else f"{type(value).__name__}: {value}"
    print(f"{result.state} {shown}", flush=True)
    return 0 if result.successful() else 1
