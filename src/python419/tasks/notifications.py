"""The notification task, under the original project's wire name, with the outbox as source of truth."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from python419.settings import Settings, get_settings
from python419.store import open_store
from python419.tasks.celery_app import TASK_NAME, celery_app
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


@celery_app.task(bind=True, max_retries=3, name=TASK_NAME)
def send_tg_notification(
    self: Task, product_name: str, product_id: int, notification_id: int | None = None
) -> dict[str, Any]:
    """Notify Telegram about a new product.

    `notification_id` ties the message to its outbox row; messages from the original project have none and
    are simply sent. Transient failures retry after P419_RETRY_DELAY (5 s) or Telegram's retry_after, at most
    3 times; 400/401/403 fail at once.
    """
    settings = get_settings()
    task_id = str(self.request.id)
    store = open_store(settings.database_path) if notification_id is not None else None
    if store is not None and notification_id is not None:
        claim = store.claim(notification_id, task_id, settings.lease_seconds)
        if not claim.granted:
            # Already delivered, held by another sender, or replaced by the sweep: never send twice.
            row = claim.notification
            state = "unknown" if row is None else ("superseded" if row.task_id != task_id else row.status)
            return {"status": "skipped", "message": f"notification {notification_id} is {state}"}
    try:
        result = deliver(settings, product_name, product_id)
    except Exception as exc:
        error = (
            exc
            if isinstance(exc, TelegramError)
            else TelegramError(f"{type(exc).__name__}: {exc}", None, True)
        )
        if error.retryable and self.request.retries < self.max_retries:
            countdown = error.retry_after if error.retry_after is not None else settings.retry_delay
            if store is not None and notification_id is not None:
                store.release_for_retry(
                    notification_id, task_id, str(error), countdown, settings.lease_seconds
                )
            raise self.retry(exc=error, countdown=countdown) from None
        if store is not None and notification_id is not None:
            store.finish(notification_id, task_id, "failed", str(error))
        log.warning("notification for product %s failed: %s", product_id, error)
        return {"status": "failed", "message": str(error)}
    if store is not None and notification_id is not None:
        store.finish(notification_id, task_id, "sent" if result["status"] == "success" else "dry-run")
    return result
