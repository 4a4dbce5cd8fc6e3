"""Getting outbox rows onto the broker: right after a product is created, and by a periodic sweep in every
worker that picks up rows never enqueued (broker was down) or whose lease ran out (worker killed mid-task)."""

from __future__ import annotations

import logging
import threading

from python419.settings import Settings
from python419.store import Notification, Store
from python419.tasks.celery_app import get_target
from python419.tasks.embedded import clean_processed, clean_results, clean_stale_control_messages
from python419.tasks.notifications import send_tg_notification
from python419.tasks.queues import queue_name, waiting_messages

log = logging.getLogger(__name__)


def enqueue(store: Store, settings: Settings, notification: Notification) -> str | None:
    """Publish the task for a row that is already `queued` with a lease (by `Store.create_product` or
    `Store.due_for_enqueue`, in the transaction that made it due: no second write on success). Returns the
    task id, or None when the broker is unreachable (the row is then `pending` again, for the sweep)."""
    try:
        result = send_tg_notification.apply_async(
            args=(notification.product_name, notification.product_id),
            kwargs={"notification_id": notification.id},
            task_id=notification.task_id,  # the row's chain: claim() refuses messages of any other
            queue=queue_name(settings),
            retry=False,
            # The outbox row records the outcome. Skipping the result backend also keeps a publish from
            # blocking on the backend's reconnect loop while Redis is down.
            ignore_result=True,
        )
    except Exception as exc:  # kombu raises OperationalError and friends; the row stays for the sweep
        log.warning("broker unreachable, notification %s stays pending: %s", notification.id, exc)
        store.forget_lease(notification.id, str(notification.task_id))
        return None
    return str(result.id)


def sweep(store: Store, settings: Settings) -> int:
    """Enqueue every row that needs a message now. Returns how many were published.

    `queued` rows past their lease are published again only while the stack's queue is empty: their
    message was then either taken by a worker that died before claiming the row, or lost in the hand-over
    from Redis to a killed worker (see `Store.due_for_enqueue`). While messages wait, it may just be in line.
    """
    published = 0
    waiting = waiting_messages(settings, get_target())
    due = store.due_for_enqueue(settings.lease_seconds, queued_too=waiting == 0)
    for index, notification in enumerate(due):
        if enqueue(store, settings, notification) is None:
            for rest in due[index + 1 :]:  # broker down: the rest would fail the same way
                store.forget_lease(rest.id, str(rest.task_id))
            break
        published += 1
    return published


class Sweeper(threading.Thread):
    """Runs `sweep` at start and every `settings.sweep_interval` seconds until stopped."""

    def __init__(self, store: Store, settings: Settings) -> None:
        super().__init__(name="p419-outbox-sweeper", daemon=True)
        self._store, self._settings = store, settings
        self._stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                count = sweep(self._store, self._settings)
                if count:
                    log.info("outbox sweep re-enqueued %d notification(s)", count)
                if get_target().kind == "embedded":
                    clean_results(self._settings.embedded_dir / "results")
                    clean_stale_control_messages(self._settings.embedded_dir / "queue")
                    clean_processed(self._settings.embedded_dir / "processed")
            except Exception:
                log.exception("outbox sweep failed; will try again")
            if self._stopped.wait(self._settings.sweep_interval):
                return

    def stop(self) -> None:
        self._stopped.set()
