"""The state file a running `p419 up` keeps in the data dir, for `p419 status` and `p419 down`, and the lock
that makes it the only `p419 up` of that data dir.

A state file is a report written by another process: anything in it may be wrong (a crash mid-write, a hand
edit, another version). Every field `status` and `down` use is checked here (`parse_state`); a file that fails
is "no live state file", and `up` moves it aside.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from python419.launch.filelock import try_lock
from python419.platforms import Platform
from python419.runfiles import LOCK_FILE, STATE_FILE, parse_state, same_process
from python419.supervisor import events as ev

if TYPE_CHECKING:
    import psutil


class StateError(Exception):
    """The data dir cannot take a `p419 up`: the message says why, in one line."""


class AlreadyRunning(StateError):
    pass


# --- the lock --------------------------------------------------------------------------------------


def lock_method(platform: Platform) -> Literal["flock", "msvcrt"]:
    """POSIX: flock(2), released by the kernel when the holder dies, whatever kills it; not inherited past
    exec by our children (Python's descriptors are non-inheritable). Windows: msvcrt.locking (LockFile),
    released when the process ends."""
    return "msvcrt" if platform == "windows" else "flock"


class UpLock:
    """`run/up.lock`, locked by the OS for the supervisor's whole life: two `p419 up` on one data dir started
    at the same moment cannot both pass (the old check read the state file, then wrote it: issue 12).

        with UpLock(run_dir, platform) as lock:   # raises AlreadyRunning / StateError
            ...                                   # lock.moved_aside: a corrupt state file set aside
    """

    def __init__(self, run_dir: Path, platform: Platform) -> None:
        self.run_dir, self.method = run_dir, lock_method(platform)
        self.path = run_dir / LOCK_FILE
        self.fd: int | None = None
        self.moved_aside: Path | None = None

    def acquire(self) -> UpLock:
        data_dir = self.run_dir.parent
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(
                f"cannot write to the data dir {data_dir} ({exc.strerror or exc}): p419 up needs a writable "
                "data dir (set P419_DATA_DIR)"
            ) from None
        try:
            locked = try_lock(fd, self.method)
        except OSError as exc:  # a file system without locks
            os.close(fd)
            raise StateError(f"cannot lock {self.path} ({exc.strerror or exc})") from None
        if not locked:
            holder = _read_pid(fd)
            for _ in range(10):  # it locked a moment ago and is writing its pid
                if holder:
                    break
                time.sleep(0.02)
                holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "starting"
            raise AlreadyRunning(f"p419 up is already running for {data_dir} ({who}); p419 down stops it")
        self.fd = fd
        with contextlib.suppress(OSError):  # who holds it, for the message above; the lock is what counts
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid():<20}".encode())
        self.moved_aside = set_aside_if_corrupt(self.run_dir / STATE_FILE)
        return self

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor releases the lock (both flock and LockFile)

    def __enter__(self) -> UpLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 20).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def set_aside_if_corrupt(path: Path) -> Path | None:
    """Called with the lock held: a state file there is stale; one that is not even valid is kept for a look
    (renamed `up.json.corrupt-<time>`) rather than overwritten. Returns its new name."""
    try:
        parse_state(json.loads(path.read_text(encoding="utf-8")))
        return None
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # CorruptState and JSONDecodeError are ValueErrors
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, aside)
        except OSError:
            return None
        return aside


# --- the state file --------------------------------------------------------------------------------


class StateFile:
    """Listens to manager events and keeps `run/up.json` current (written atomically)."""

    def __init__(
        self,
        run_dir: Path,
        supervisor_pid: int,
        api_url: str,
        broker: str,
        broker_shown: str = "",
        stack: str = "",
    ) -> None:
        self.path = run_dir / STATE_FILE
        run_dir.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {
            "pid": supervisor_pid,
            "create_time": _create_time(supervisor_pid),
            "started": time.time(),
            "api_url": api_url,
            "broker": broker,
            "broker_url": broker_shown,  # without its password
            "stack": stack,  # the data dir's identity (runfiles.stack_id)
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
            case ev.GaveUp(name, _, _):
                children[name]["state"] = "fatal"
            case ev.StepDone(name, _):
                children[name].update(state="done", code=0)
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
        """Never raises: it runs in the supervisor's `finally`."""
        for path in (self.path, self.path.with_suffix(".tmp")):  # a write cut short by a full disk
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _create_time(pid: int) -> float | None:
    import psutil  # here and below: not on `p419 up`'s way to its first child

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


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
    import psutil

    procs: dict[str, psutil.Process] = {}
    for name, child in state["children"].items():
        proc = same_process(int(child.get("pid") or 0), child.get("create_time"))
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
