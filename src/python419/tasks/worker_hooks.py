"""What a worker of the bundled app does besides running tasks: sweep the outbox, beat its heart.

(Telling a supervisor it is ready is the launcher's job, for every app: `python419.launch`.)
"""

from __future__ import annotations

import socket
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from python419.settings import get_settings
from python419.store import open_store
from python419.tasks.heartbeat import Heartbeat, folder_for
from python419.tasks.outbox import Sweeper

_threads: list[Sweeper | Heartbeat] = []


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    if getattr(getattr(sender, "app", None), "main", None) != "python419":
        return  # a worker of another app that happens to import this package
    settings = get_settings()
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
