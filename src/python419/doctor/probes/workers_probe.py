"""Ask the running workers, over the broker, who they are, which pool they run and which tasks they know."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from python419.broker import BrokerTarget

PING_TIMEOUT = 0.5  # workers on a healthy broker answer in milliseconds
INSPECT_TIMEOUT = 1.0


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    pool: str | None  # Celery's pool implementation, e.g. "celery.concurrency.solo:TaskPool"
    tasks: tuple[str, ...] | None  # None: the worker did not report them in time


def control_app(target: BrokerTarget) -> Any:
    """A bare Celery app on the stack's broker: remote control needs no tasks, and importing ours (or the
    user's) here would make this check depend on the very import problems the registration check reports."""
    from celery import Celery

    app = Celery("p419-doctor", set_as_current=False)
    conf: dict[str, Any] = {"broker_url": target.url, "broker_connection_timeout": 1.0}
    if target.kind == "embedded":
        conf["broker_transport_options"] = dict(target.transport_options)
    else:
        conf["broker_transport_options"] = {"socket_connect_timeout": 1, "socket_timeout": 2}
    app.conf.update(conf)
    return app


def inspect_workers(target: BrokerTarget) -> list[WorkerInfo]:
    if target.kind == "embedded":
        root = target.folder
        if root is None or not ((root / "queue").is_dir() and (root / "control").is_dir()):
            return []  # no worker has started on this folder yet (a worker's app creates them)
    app = control_app(target)
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
