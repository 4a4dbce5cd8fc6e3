"""`p419 send`: fire one notification through the broker (or in-process) and report the outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass

from python419.broker import broker_ping
from python419.products.settings import ProductSettings
from python419.products.telegram import TelegramError
from python419.redis_server import redis_install_hint


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    line: str


def _describe(result: object, elapsed: float) -> SendOutcome:
    if not isinstance(result, dict):
        return SendOutcome(False, f"unexpected result: {result!r}")
    status = str(result.get("status"))
    ok = status in ("success", "dry-run", "skipped")
    return SendOutcome(ok, f"{status} in {elapsed:.2f}s: {result.get('message')}")


def send(
    settings: ProductSettings, name: str, product_id: int, *, timeout: float, wait: bool, direct: bool
) -> SendOutcome:
    started = time.perf_counter()
    if direct:
        from python419.products.tasks.notifications import deliver

        try:
            return _describe(deliver(settings, name, product_id), time.perf_counter() - started)
        except TelegramError as exc:
            return SendOutcome(False, f"failed: {exc}")
    from python419.products.tasks.celery_app import get_app, get_target

    target = get_target()  # a running stack's broker, else the settings'
    try:
        broker_ping(target, timeout=min(timeout, 2.0))
    except Exception as exc:
        hint = "start Redis (redis-server) or run `p419 up`"
        if target.kind == "redis" and "refused" in str(exc).lower():
            hint += f"; no Redis installed? {redis_install_hint(settings.platform)}"
        return SendOutcome(False, f"broker unreachable at {target.safe} ({exc}); {hint}")
    get_app()  # the task below is a shared task: it goes through this process's app

    from python419.products.tasks.notifications import send_tg_notification

    try:
        result = send_tg_notification.apply_async(args=(name, product_id), retry=False)
    except Exception as exc:
        return SendOutcome(False, f"could not enqueue: {exc}")
    if not wait:
        return SendOutcome(True, f"queued task {result.id}")
    remaining = max(0.1, timeout - (time.perf_counter() - started))
    try:
        value = result.get(timeout=remaining, propagate=False)
    except Exception:
        # Unsubscribe now: left to AsyncResult.__del__ at interpreter exit, it prints a traceback.
        result.backend.remove_pending_result(result)
        return SendOutcome(
            False,
            f"no result within {timeout:g}s for task {result.id}: is a worker running? (p419 worker, p419 up)",
        )
    return _describe(value, time.perf_counter() - started)
