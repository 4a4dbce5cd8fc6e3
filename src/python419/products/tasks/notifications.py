"""The notification task, under the original project's wire name, with the outbox as source of truth."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject

from python419.products import TASK_NAME
from python419.products.settings import ProductSettings, get_settings
from python419.products.store import Status, Store, open_store
from python419.products.tasks.retry_policy import decide, gave_up
from python419.products.telegram import TelegramError, product_message, shared_client

log = logging.getLogger(__name__)

# A message whose row this worker cannot find goes back to the queue after this pause: a misconfigured
# worker must not spin on it, nor ack it away (issue 12).
UNKNOWN_REQUEUE_PAUSE = 1.0


def deliver(settings: ProductSettings, product_name: str, product_id: int) -> dict[str, Any]:
    """Send the product message (or log it, in dry-run). Raises TelegramError on failure."""
    text = product_message(product_name, product_id)
    token, chat_id = settings.token, settings.telegram_chat_id
    if not token or not chat_id:
        log.info("dry-run (no TELEGRAM_BOT_TOKEN/TELEGRAM_CHAT_ID): would send %r", text)
        return {"status": "dry-run", "message": text}
    shared_client(token, settings.telegram_api_url, settings.telegram_timeout).send_message(chat_id, text)
    return {"status": "success", "message": text}


class OutboxRow:
    """The task's view of its outbox row: every write names the chain (task id) it comes from."""

    def __init__(self, store: Store, notification_id: int, task_id: str) -> None:
        self.store, self.id, self.task_id = store, notification_id, task_id
        self.created_at = time.time()

    def claim(self, lease_seconds: float) -> tuple[bool, str, int]:
        """(granted, why not, attempts so far including this one)."""
        claim = self.store.claim(self.id, self.task_id, lease_seconds)
        row = claim.notification
        if row is None:
            return False, "unknown", 0
        self.created_at = row.created_at
        if not claim.granted:
            return False, "superseded" if row.task_id != self.task_id else row.status, row.attempts
        return True, "", row.attempts

    def retry_later(self, error: str, countdown: float, lease_seconds: float) -> None:
        self.store.release_for_retry(self.id, self.task_id, error, countdown, lease_seconds)

    def finish(self, status: Status, error: str | None = None) -> None:
        self.store.finish(self.id, self.task_id, status, error)


def as_telegram_error(exc: Exception) -> TelegramError:
    if isinstance(exc, TelegramError):
        return exc
    return TelegramError(f"{type(exc).__name__}: {exc}", None, retryable=True)  # unexpected: worth a retry


# A shared task: defined before any app exists; registered on the app when `celery_app.create_app` makes it.
@shared_task(bind=True, max_retries=3, name=TASK_NAME)
def send_tg_notification(
    self: Task,
    product_name: str,
    product_id: int,
    notification_id: int | None = None,
    first_attempt: float | None = None,
    transient_failures: int = 0,
) -> dict[str, Any]:
    """Notify Telegram about a new product.

    `notification_id` ties the message to its outbox row; messages from the original project have none and
    are simply sent. 400/401/403 fail at once; 429 waits Telegram's retry_after and never counts against a
    budget; network errors and 5xx back off exponentially with jitter (tasks/retry_policy.py). A notification
    with an outbox row retries until the delivery deadline (P419_DELIVERY_DEADLINE after the product was
    created); a message without one keeps the write-up's `max_retries=3` for network errors and 5xx
    (counted in `transient_failures`), within the same deadline from its first attempt.
    """
    settings = get_settings()
    now = time.time()
    attempts = self.request.retries + 1
    failures = transient_failures + 1  # if this attempt fails with a network error or a 5xx
    first_at = first_attempt if first_attempt is not None else now
    budget: int | None = self.max_retries
    row = None
    if notification_id is not None:
        store = open_store(settings.database_path)
        row = OutboxRow(store, notification_id, str(self.request.id))
        granted, why_not, attempts = row.claim(settings.lease_seconds)
        if not granted:
            if why_not == "unknown":
                # Not ours to judge: another stack's message, or an API on another data dir. Leave it in
                # the queue for the worker that has the row; never ack it as done.
                log.warning(
                    "notification %s is not in %s: left in the queue for the worker that has it"
                    " (do the API and this worker share P419_DATA_DIR?)",
                    notification_id,
                    settings.database_path.resolve(),
                )
                time.sleep(UNKNOWN_REQUEUE_PAUSE)
                raise Reject(f"notification {notification_id} is not in this worker's outbox", requeue=True)
            # Already delivered, held by another sender, or replaced by the sweep: never send twice.
            return {"status": "skipped", "message": f"notification {notification_id} is {why_not}"}
        # The row counts attempts across chains (a chain the sweep replaced does not reset the backoff),
        # and its deadline runs from the product's creation.
        failures, first_at, budget = attempts, row.created_at, None
    try:
        result = deliver(settings, product_name, product_id)
    except Exception as exc:
        error = as_telegram_error(exc)
        now = time.time()
        decision = decide(
            error,
            failures=failures,
            budget=budget,
            now=now,
            first_at=first_at,
            deadline=settings.delivery_deadline,
            base=settings.retry_delay,
        )
        if decision.retry:
            if row is not None:
                row.retry_later(str(error), decision.countdown, settings.lease_seconds)
            kwargs = {
                "notification_id": notification_id,
                "first_attempt": first_at,
                "transient_failures": transient_failures + (error.retry_after is None),
            }
            # `decide` has applied the budget (429s exempt): tell Celery's own count check to let it through.
            limit = self.request.retries + 1
            raise self.retry(
                exc=error, countdown=decision.countdown, kwargs=kwargs, max_retries=limit
            ) from None
        message = gave_up(str(error), decision.reason, attempts, now)
        if row is not None:
            row.finish("failed", message)
        log.warning("notification for product %s failed: %s", product_id, message)
        return {"status": "failed", "message": message}
    if row is not None:
        row.finish("sent" if result["status"] == "success" else "dry-run")
    return result
