"""Ask the running workers, over the broker, who they are, which pool they run and which tasks they know."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python419.settings import Settings

PING_TIMEOUT = 0.5  # workers on a healthy broker answer in milliseconds
INSPECT_TIMEOUT = 1.0


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    pool: str | None  # Celery's pool implementation, e.g. "celery.concurrency.solo:TaskPool"
    tasks: tuple[str, ...] | None  # None: the worker did not report them in time


def control_app(settings: Settings, cwd: Path) -> Any:
    """A bare Celery app on the stack's broker: remote control needs no tasks, and importing ours (or the
    user's) here would make this check depend on the very import problems the registration check reports."""
    from celery import Celery

    app = Celery("p419-doctor", set_as_current=False)
    conf: dict[str, Any] = {"broker_url": settings.broker_url, "broker_connection_timeout": 1.0}
    if settings.broker == "embedded":
        root = cwd / settings.embedded_dir
        conf["broker_transport_options"] = {
            "data_folder_in": str(root / "queue"),
            "data_folder_out": str(root / "queue"),
            "control_folder": str(root / "control"),
            "store_processed": True,  # as the stack does: consumed replies stay on the data dir's drive
            "processed_folder": str(root / "processed"),
        }
    else:
        conf["broker_transport_options"] = {"socket_connect_timeout": 1, "socket_timeout": 2}
    app.conf.update(conf)
    return app


def inspect_workers(settings: Settings, cwd: Path) -> list[WorkerInfo]:
    if settings.broker == "embedded":
        root = cwd / settings.embedded_dir
        if not ((root / "queue").is_dir() and (root / "control").is_dir()):
            return []  # no worker has started on this folder yet (a worker's app creates them)
    app = control_app(settings, cwd)
    try:
        with app.connection_for_write() as conn:
            replies = app.control.ping(timeout=PING_TIMEOUT, connection=conn) or []
            names = sorted(name for reply in replies for name in reply)
            if not names:
                return []
            # With destination and limit, inspect returns as soon as every named worker has answered.
            inspect = app.control.inspect(
                destination=names, timeout=INSPECT_TIMEOUT, limit=len(names), connection=conn
            )
            stats = inspect.stats() or {}
            registered = inspect.registered() or {}
    finally:
        app.close()
    return [
        WorkerInfo(
            name,
            (stats.get(name) or {}).get("pool", {}).get("implementation"),
            tuple(registered[name]) if name in registered else None,
        )
        for name in names
    ]
