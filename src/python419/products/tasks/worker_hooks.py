"""What a worker of the bundled app does besides running tasks: sweep the outbox, beat its heart.

(Telling a supervisor it is ready is the launcher's job, for every app: `python419.launch`.)
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from python419.products.settings import ProductSettings, get_settings
from python419.products.store import open_store
from python419.products.tasks.heartbeat import Heartbeat, folder_for
from python419.products.tasks.outbox import Sweeper
from python419.products.telegram import shared_client

log = logging.getLogger(__name__)

_threads: list[Sweeper | Heartbeat] = []


def warm_up(settings: ProductSettings) -> None:
    """Make now what the first task would otherwise make: the Bot API client (its SSL context: 20-25 ms,
    more on a busy machine) and this thread's SQLite connection. Measured in the bench's scale row: each
    worker's first task took 0.10-0.29 s against 0.056 s for the next ones (py-spy: the SSL context), which
    with four workers sharing 160 products cost a tenth of the run. Runs before the worker says it is
    ready (this receiver is connected before the launcher's), so a ready worker is a warm one."""
    open_store(settings.database_path).ping()  # solo: the thread that runs the tasks
    if settings.token and settings.telegram_chat_id:
        shared_client(settings.token, settings.telegram_api_url, settings.telegram_timeout)


@worker_process_init.connect
def _on_process_init(**_: Any) -> None:
    # A prefork child: a client and a connection of its own (worker_ready runs in the parent only).
    from celery import current_app

    if current_app.main != "python419":
        return  # a worker of another app that happens to import this package
    try:
        warm_up(get_settings())
    except Exception:
        log.exception("warming up the worker process failed; the first task will do it")


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    if getattr(getattr(sender, "app", None), "main", None) != "python419":
        return  # a worker of another app that happens to import this package
    settings = get_settings()
    try:
        warm_up(settings)
    except Exception:
        log.exception("warming up the worker failed; the first task will do it")
    sweeper = Sweeper(open_store(settings.database_path), settings)
    sweeper.start()
    hostname = str(getattr(sender, "hostname", None) or f"worker@{socket.gethostname()}")
    heartbeat = Heartbeat(folder_for(settings.data_dir), hostname)
    heartbeat.start()
    _threads.extend((sweeper, heartbeat))


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    while _threads:
        _threads.pop().stop()
