"""A worker's heartbeat file: written, touched, fresh or stale, and gone when the worker stops."""

from __future__ import annotations

import os
import time
from pathlib import Path

from python419.products.tasks.heartbeat import Heartbeat, folder_for, live_workers


def test_a_beating_worker_is_live_under_its_name_and_gone_when_stopped(tmp_path: Path) -> None:
    folder = folder_for(tmp_path)
    beat = Heartbeat(folder, "worker1@host", interval=0.05)
    beat.start()
    try:
        deadline = time.monotonic() + 5
        while not live_workers(folder) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert live_workers(folder) == ["worker1@host"]
        assert beat.name == "p419-heartbeat", "the worker's name is the file's, not the thread's"
        assert live_workers(folder, now=time.time() + 10) == [], "three missed beats: not live"
        first = beat.path.stat().st_mtime_ns
        while beat.path.stat().st_mtime_ns == first and time.monotonic() < deadline:
            time.sleep(0.01)
        assert beat.path.stat().st_mtime_ns > first, "the file is touched at each beat"
    finally:
        beat.stop()
        beat.join(5)
    assert not beat.path.exists() and live_workers(folder) == []


def test_files_of_workers_long_gone_are_removed_at_start(tmp_path: Path) -> None:
    folder = folder_for(tmp_path)
    folder.mkdir(parents=True)
    old = folder / "12345.alive"
    old.write_text("gone@host", encoding="utf-8")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    beat = Heartbeat(folder, "new@host", interval=60)
    beat.start()
    try:
        deadline = time.monotonic() + 5
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not old.exists()
        assert live_workers(folder) == ["new@host"]
    finally:
        beat.stop()
        beat.join(5)
