"""`p419 status` and `p419 down`: talk to a running `p419 up` through its state file, from another terminal."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import psutil
from rich.table import Table

from python419.runfiles import request_stop
from python419.supervisor.state import child_statuses


def status_document(state: dict[str, Any]) -> dict[str, Any]:
    """What `p419 status --json` prints."""
    rows = child_statuses(state)
    return {
        "running": True,
        "pid": state["pid"],
        "ready": state["ready"],
        "api_url": state["api_url"],
        "broker": state.get("broker"),
        "broker_url": state.get("broker_url"),
        "stack": state.get("stack"),
        "children": [dataclasses.asdict(r) for r in rows],
    }


def status_table(document: dict[str, Any]) -> Table:
    broker = document.get("broker_url") or document.get("broker") or "?"
    stack = f"stack {document['stack']} — " if document.get("stack") else ""
    table = Table(title=f"p419 up (pid {document['pid']}) — {stack}{document['api_url']} — broker {broker}")
    for column in ("name", "pid", "state", "uptime", "restarts", "cpu %", "rss MB"):
        table.add_column(column)
    for child in document["children"]:
        table.add_row(
            child["name"],
            str(child["pid"] or "-"),
            child["state"],
            _fmt(child["uptime"], "{:.0f}s"),
            str(child["restarts"]),
            _fmt(child["cpu_percent"], "{:.1f}"),
            _fmt(child["rss_mb"], "{:.1f}"),
        )
    return table


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def stop_and_wait(run_dir: Path, state: dict[str, Any], timeout: float) -> bool:
    """Ask the running `up` to stop, as Ctrl+C would. True when it stopped within `timeout`."""
    request_stop(run_dir)
    # Poll the supervisor process, not its state file: on Windows a reader holding up.json open makes the
    # supervisor's final unlink fail with WinError 32 (sharing violation; seen under Wine, where it crashed
    # `p419 up` at exit).
    try:
        proc = psutil.Process(int(state["pid"]))
        if abs(proc.create_time() - float(state["create_time"])) > 1:
            return True  # the pid now belongs to another process: ours is gone
    except (psutil.Error, KeyError, ValueError):
        return True
    deadline = time.monotonic() + timeout
    while _alive(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a POSIX parent that has not reaped it yet; it will never write again)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
