"""The state file a running `p419 up` keeps in the data dir, for `p419 status` and `p419 down`."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from python419.supervisor import events as ev

STATE_FILE = "up.json"
STOP_FILE = "stop-request"


class StateFile:
    """Listens to manager events and keeps `run/up.json` current (written atomically)."""

    def __init__(self, run_dir: Path, supervisor_pid: int, api_url: str, broker: str) -> None:
        self.path = run_dir / STATE_FILE
        run_dir.mkdir(parents=True, exist_ok=True)
        me = psutil.Process(supervisor_pid)
        self.data: dict[str, Any] = {
            "pid": supervisor_pid,
            "create_time": me.create_time(),
            "started": time.time(),
            "api_url": api_url,
            "broker": broker,
            "ready": False,
            "children": {},
        }
        self._write()

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.Output):
            return
        children = self.data["children"]
        match event:
            case ev.Started(name, pid):
                child = children.setdefault(name, {"restarts": -1})
                child.update(pid=pid, state="starting", since=time.time(), restarts=child["restarts"] + 1)
                child["create_time"] = _create_time(pid)
            case ev.ChildReady(name, _):
                children[name]["state"] = "running"
            case ev.Exited(name, code, _):
                children[name].update(state="exited", code=code)
            case ev.Restarting(name, delay, _):
                children[name]["state"] = f"restarting in {delay:g}s"
            case ev.StackReady():
                self.data["ready"] = True
            case ev.Stopping():
                self.data["stopping"] = True
            case _:
                return
        self._write()

    def _write(self) -> None:
        """Never lets a failure reach the manager: the state file is a report, not part of the control loop."""
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.data, indent=2), encoding="utf-8")
            for attempt in range(20):
                try:
                    os.replace(tmp, self.path)
                    return
                except PermissionError:  # Windows: a reader (`p419 down`, an antivirus) has it open
                    time.sleep(0.025 * (attempt + 1))
        except OSError:
            pass

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _same_process(pid: int, create_time: float | None) -> psutil.Process | None:
    """The process, unless it is gone or its pid now belongs to another one."""
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 1:
            return None
        return proc
    except psutil.Error:
        return None


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The state of a live `p419 up`, or None (no file, or its supervisor is gone)."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
        if _same_process(int(data["pid"]), float(data["create_time"])) is None:
            return None  # gone, or the pid was recycled
    except (OSError, ValueError, KeyError):
        return None
    return dict(data)


def running_broker(run_dir: Path) -> str | None:
    """The broker kind (redis/embedded) of a live `p419 up` on this data dir, if one runs."""
    state = read_state(run_dir)
    broker = state.get("broker") if state else None
    return broker if broker in ("redis", "embedded") else None


@dataclass(frozen=True)
class ChildStatus:
    name: str
    pid: int | None
    state: str
    uptime: float | None
    restarts: int
    cpu_percent: float | None
    rss_mb: float | None


def child_statuses(state: dict[str, Any], sample: float = 0.1) -> list[ChildStatus]:
    """Each child of a state file, with CPU (over `sample` seconds) and RSS measured now."""
    procs: dict[str, psutil.Process] = {}
    for name, child in state["children"].items():
        proc = _same_process(int(child.get("pid") or 0), child.get("create_time"))
        if proc is not None:
            try:
                proc.cpu_percent(None)
                procs[name] = proc
            except psutil.Error:
                pass
    time.sleep(sample)
    now = time.time()
    rows = []
    for name, child in state["children"].items():
        cpu = rss = None
        proc = procs.get(name)
        if proc is not None:
            try:
                cpu, rss = proc.cpu_percent(None), proc.memory_info().rss / 2**20
            except psutil.Error:
                proc = None
        running = proc is not None and child.get("state") in ("starting", "running")
        since = child.get("since")
        rows.append(
            ChildStatus(
                name,
                child.get("pid"),
                child.get("state", "?"),
                now - since if running and since else None,
                int(child.get("restarts", 0)),
                cpu,
                rss,
            )
        )
    return rows


def request_stop(run_dir: Path) -> None:
    """What `p419 down` does: the running `up` polls for this file and stops as on Ctrl+C."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STOP_FILE).write_text(str(os.getpid()), encoding="utf-8")
