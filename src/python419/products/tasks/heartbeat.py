"""Workers say they are alive by touching a file in the data dir; /health reads the files.

Asking the workers (a Celery ping) always waited out its whole timeout, since the number of workers to
wait for is unknown: /health took 515-521 ms (issue 11). A heartbeat file per worker, touched every
INTERVAL seconds, is read in well under a millisecond, and tells the truth within STALE_AFTER seconds of
a worker dying (or freezing). The files sit next to the database, so a stack only sees its own workers,
whatever else shares the broker.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

INTERVAL = 1.0
STALE_AFTER = 3.0  # three missed beats: dead, stopped, or stuck
FORGET_AFTER = 3600.0  # files of workers long gone are removed by the next worker that starts


def folder_for(data_dir: Path) -> Path:
    return data_dir / "workers"


def live_workers(folder: Path, now: float | None = None, stale_after: float = STALE_AFTER) -> list[str]:
    """Names of the workers whose heartbeat is fresh."""
    now = time.time() if now is None else now
    names = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        try:
            if entry.name.endswith(".alive") and now - entry.stat().st_mtime <= stale_after:
                names.append(Path(entry.path).read_text(encoding="utf-8").strip() or entry.name)
        except OSError:
            continue  # removed by a worker stopping right now
    return sorted(names)


class Heartbeat(threading.Thread):
    def __init__(self, folder: Path, name: str, interval: float = INTERVAL) -> None:
        super().__init__(name="p419-heartbeat", daemon=True)
        self.path = folder / f"{os.getpid()}.alive"
        self._worker, self._interval = name, interval  # not _name: that is the thread's own name
        self._stopped = threading.Event()

    def run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._forget_old()
        self.path.write_text(self._worker, encoding="utf-8")
        while not self._stopped.wait(self._interval):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                with contextlib.suppress(OSError):
                    self.path.write_text(self._worker, encoding="utf-8")
            except OSError:
                pass  # a full or read-only disk: /health will say so by the heartbeat going stale

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _forget_old(self) -> None:
        cutoff = time.time() - FORGET_AFTER
        for path in self.path.parent.glob("*.alive"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
