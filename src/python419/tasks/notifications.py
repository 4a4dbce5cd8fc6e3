"""The notification task, under the original project's wire name, with the outbox as source of truth."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from python419.settings import Settings, get_settings
from python419.store import Status, Store, open_store
from python419.tasks.celery_app import TASK_NAME
from python419.telegram import TelegramClient, TelegramError, product_message

log = logging.getLogger(__name__)


def deliver(settings: Settings, product_name: str, product_id: int) -> dict[str, Any]:
    """Send the product message (or log it, in dry-run). Raises TelegramError on failure."""
    text = product_message(product_name, product_id)
    token, chat_id = settings.token, settings.telegram_chat_id
    if not token or not chat_id:
        log.info("dry-run (no TELEGRAM_BOT_TOKEN/TELEGRAM_CHAT_ID): would send %r", text)
        return {"status": "dry-run", "message": text}
    TelegramClient(token, settings.telegram_api_url, settings.telegram_timeout).send_message(chat_id, text)
    return {"status": "success", "message": text}


class OutboxRow:
    """The task's view of its outbox row: every write names the chain (task id) it comes from."""

    def __init__(self, store: Store, notification_id: int, task_id: str) -> None:
        self.store, self.id, self.task_id = store, notification_id, task_id

    def claim(self, lease_seconds: float) -> tuple[bool, str, int]:
        """(granted, why not, attempts so far including this one)."""
        claim = self.store.claim(self.id, self.task_id, lease_seconds)
        row = claim.notification
        if row is None:
            return False, "unknown", 0
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
    self: Task, product_name: str, product_id: int, notification_id: int | None = None
) -> dict[str, Any]:
    """Notify Telegram about a new product.

    `notification_id` ties the message to its outbox row; messages from the original project have none and
    are simply sent. Transient failures retry after P419_RETRY_DELAY (5 s) or Telegram's retry_after, at most
    3 times; 400/401/403 fail at once.
    """
    settings = get_settings()
    retries = self.request.retries
    row = None
    if notification_id is not None:
        row = OutboxRow(open_store(settings.database_path), notification_id, str(self.request.id))
        granted, why_not, attempts = row.claim(settings.lease_seconds)
        if not granted:
            if why_not == "unknown":
                log.warning(
                    "notification %s is not in %s: do the API and this worker share P419_DATA_DIR?",
                    notification_id,
                    settings.database_path.resolve(),
                )
            # Already delivered, held by another sender, or replaced by the sweep: never send twice.
            return {"status": "skipped", "message": f"notification {notification_id} is {why_not}"}
        # The row counts attempts across chains, so a chain the sweep replaced does not reset the limit.
        retries = max(retries, attempts - 1)
    try:
        result = deliver(settings, product_name, product_id)
    except Exception as exc:
        error = as_telegram_error(exc)
        if error.retryable and retries < self.max_retries:
            countdown = error.retry_after if error.retry_after is not None else settings.retry_delay
            if row is not None:
                row.retry_later(str(error), countdown, settings.lease_seconds)
            raise self.retry(exc=error, countdown=countdown) from None
        if row is not None:
            row.finish("failed", str(error))
        log.warning("notification for product %s failed: %s", product_id, error)
        return {"status": "failed", "message": str(error)}
    if row is not None:
        row.finish("sent" if result["status"] == "success" else "dry-run")
    return result
