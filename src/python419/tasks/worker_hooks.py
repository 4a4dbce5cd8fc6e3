"""What a worker of the bundled app does besides running tasks: sweep the outbox.

(Telling a supervisor it is ready is the launcher's job, for every app: `python419.launch`.)
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready, worker_shutdown

from python419.settings import get_settings
from python419.store import open_store
from python419.tasks.outbox import Sweeper

_sweepers: list[Sweeper] = []


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    if getattr(getattr(sender, "app", None), "main", None) != "python419":
        return  # a worker of another app that happens to import this package
    settings = get_settings()
    sweeper = Sweeper(open_store(settings.database_path), settings)
    sweeper.start()
    _sweepers.append(sweeper)


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    while _sweepers:
        _sweepers.pop().stop()
