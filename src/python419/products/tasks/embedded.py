"""Housekeeping for the embedded (filesystem) broker: Celery's file result backend never deletes results."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

RESULT_MAX_AGE = 3600.0  # matches result_expires


PIDBOX_MAX_AGE = 60.0


def clean_results(folder: Path, max_age: float = RESULT_MAX_AGE, now: float | None = None) -> int:
    """Delete result files older than `max_age` seconds. Returns how many went."""
    return _clean(folder, max_age, now, lambda _: True)


def clean_stale_control_messages(
    folder: Path, max_age: float = PIDBOX_MAX_AGE, now: float | None = None
) -> int:
    """Pings and replies addressed to workers that no longer run are never consumed: delete old ones.

    A live worker reads its control messages within a poll (50 ms), so a minute-old one has no reader.
    """
    return _clean(folder, max_age, now, lambda path: ".pidbox" in path.name)


def clean_processed(folder: Path, max_age: float = PIDBOX_MAX_AGE, now: float | None = None) -> int:
    """Consumed messages kombu moved aside: kept only as long as a debugging glance needs."""
    return _clean(folder, max_age, now, lambda _: True)


def _clean(folder: Path, max_age: float, now: float | None, wanted: Callable[[Path], bool]) -> int:
    if not folder.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - max_age
    removed = 0
    for path in folder.iterdir():
        try:
            if wanted(path) and path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            pass  # another worker got there first
    return removed
