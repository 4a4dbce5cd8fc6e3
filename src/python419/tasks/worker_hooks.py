"""What a worker does besides running tasks: sweep the outbox, and tell a supervisor it is ready."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from python419.settings import get_settings
from python419.store import open_store
from python419.tasks.outbox import Sweeper

READY_FILE_ENV = "P419_READY_FILE"  # set by `p419 up` for each worker it starts
_sweepers: list[Sweeper] = []


@worker_ready.connect
def _on_ready(**_: Any) -> None:
    settings = get_settings()
    sweeper = Sweeper(open_store(settings.database_path), settings)
    sweeper.start()
    _sweepers.append(sweeper)
    ready_file = os.environ.get(READY_FILE_ENV)
    if ready_file:
        Path(ready_file).parent.mkdir(parents=True, exist_ok=True)
        Path(ready_file).write_text(str(os.getpid()), encoding="utf-8")


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    while _sweepers:
        _sweepers.pop().stop()
