"""queue: messages waiting in the broker, and the oldest notification the outbox has not finished."""

from __future__ import annotations

import time
from pathlib import Path

from python419.doctor.context import Context
from python419.doctor.model import Outcome, passed, warned
from python419.doctor.probes.broker_probe import QUEUE
from python419.store import Notification, Store

# Retries (3 x 5 s), leases (30 s) and sweeps (10 s) settle well within this; older means nothing is delivering.
STUCK_AFTER = 300.0


def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def backlog_outcome(
    waiting: int | None,
    database: Path,
    exists: bool,
    oldest: Notification | None,
    now: float,
    queues: tuple[str, ...] = (QUEUE,),
) -> Outcome:
    """Pure: how much is waiting, and whether the oldest open notification looks stuck."""
    names = ", ".join(f"'{q}'" for q in queues)
    queue = (
        f"{waiting} message(s) waiting in {names}"
        if waiting is not None
        else "queue length unknown (broker unreachable)"
    )
    if not exists:
        return passed(f"{queue}; no outbox yet ({database} does not exist)")
    if oldest is None:
        return passed(f"{queue}; no open notifications in {database}")
    age = now - oldest.created_at
    detail = (
        f"{queue}; oldest open notification #{oldest.id} (product {oldest.product_id}) "
        f"is {oldest.status} for {format_age(age)}"
    )
    if age > STUCK_AFTER:
        return warned(
            f"{detail}: notifications are not being delivered",
            "make sure a worker runs and the broker is reachable (see workers, broker): p419 up",
        )
    return passed(detail)


def check_queue(ctx: Context) -> Outcome:
    probe = ctx.broker.get()
    database = ctx.path(ctx.config.database_path)
    exists = database.is_file()
    # Store() would create a missing database; the doctor only looks.
    oldest = Store(database).oldest_open() if exists else None
    return backlog_outcome(probe.waiting, database, exists, oldest, time.time(), ctx.queues)
