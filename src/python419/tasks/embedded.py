"""Housekeeping for the embedded (filesystem) broker: Celery's file result backend never deletes results."""

from __future__ import annotations

import time
from pathlib import Path

RESULT_MAX_AGE = 3600.0  # matches result_expires


def clean_results(folder: Path, max_age: float = RESULT_MAX_AGE, now: float | None = None) -> int:
    """Delete result files older than `max_age` seconds. Returns how many went."""
    if not folder.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - max_age
    removed = 0
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            pass  # another worker got there first
    return removed
