"""What a worker does besides running tasks: sweep the outbox, beat its heart, tell a supervisor it is ready."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from python419.settings import get_settings
from python419.store import open_store
from python419.tasks.heartbeat import Heartbeat, folder_for
from python419.tasks.outbox import Sweeper

READY_FILE_ENV = "P419_READY_FILE"  # set by `p419 up` for each worker it starts
_threads: list[Sweeper | Heartbeat] = []


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    sweeper = Sweeper(open_store(settings.database_path), settings)
    sweeper.start()
    hostname = str(getattr(sender, "hostname", None) or f"worker@{socket.gethostname()}")
    heartbeat = Heartbeat(folder_for(settings.data_dir), hostname)
    heartbeat.start()
    _threads.extend((sweeper, heartbeat))
    ready_file = os.environ.get(READY_FILE_ENV)
    if ready_file:
        Path(ready_file).parent.mkdir(parents=True, exist_ok=True)
        Path(ready_file).write_text(str(os.getpid()), encoding="utf-8")


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    while _threads:
        _threads.pop().stop()
