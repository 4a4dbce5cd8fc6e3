"""Health of each component the API depends on: database, broker, workers."""

from __future__ import annotations

import time
from typing import Any

from python419.broker import broker_ping
from python419.products.settings import ProductSettings
from python419.products.store import Store
from python419.products.tasks import heartbeat
from python419.products.tasks.celery_app import get_target
from python419.runfiles import read_state


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check() or {}
        ok = True
    except Exception as exc:
        detail, ok = {"error": f"{type(exc).__name__}: {exc}"}, False
    return {"ok": ok, "ms": round((time.perf_counter() - started) * 1000, 1), **detail}


def health(
    store: Store, settings: ProductSettings, *, ping_workers: bool = True
) -> tuple[int, dict[str, Any]]:
    """200 when the API can take products and queue them; workers are reported, and their absence
    makes the status `degraded` (notifications wait in the outbox) rather than 503.

    Workers are known by their heartbeat files (tasks/heartbeat.py): a worker dead or frozen for
    STALE_AFTER (3 s) is no longer listed, and reading them takes microseconds, where a Celery ping waited
    out its whole 0.5 s timeout on every call."""
    # The path shows at a glance whether the API and the workers share one database (same P419_DATA_DIR).
    database = {**_timed(store.ping), "path": str(store.path.resolve())}
    broker = _timed(lambda: broker_ping(get_target()))
    if not ping_workers:
        # A quick readiness probe: is this API able to take products? (used by `p419 up`)
        ok = database["ok"] and broker["ok"]
        return (200 if ok else 503), {
            "status": "ok" if ok else "down",
            "database": database,
            "broker": broker,
        }
    folder = heartbeat.folder_for(settings.data_dir)
    workers = _timed(lambda: {"names": heartbeat.live_workers(folder)})
    workers["ok"] = workers["ok"] and bool(workers.get("names"))
    fatal = given_up(settings)
    if not (database["ok"] and broker["ok"]):
        status, code = "down", 503
    elif not workers["ok"] or fatal:
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = {"status": status, "database": database, "broker": broker, "workers": workers}
    return code, {**body, "fatal": fatal} if fatal else body


def given_up(settings: ProductSettings) -> list[str]:
    """The children the running `p419 up` gave up on (they could not start), from its state file."""
    state = read_state(settings.run_dir)
    children = state.get("children", {}) if state else {}
    return sorted(name for name, child in children.items() if child.get("state") == "fatal")
