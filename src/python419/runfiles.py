"""The run folder of a data dir (`<data dir>/run`): the one place that names its files, and what the verbs in
another terminal read or leave there for a running `p419 up` (its state, a stop or restart request, the URL of
the Redis it started)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

STATE_FILE = "up.json"
STOP_FILE = "stop-request"
LOCK_FILE = "up.lock"
RESTART_FILE = "restart-request"
REDIS_URL_FILE = "redis-url"  # the URL of the Redis a running `up` started (owner-only)


class CorruptState(ValueError):
    """A state file whose content is not what `p419 up` writes."""


def same_process(pid: int, create_time: float | None) -> psutil.Process | None:
    """The process, unless it is gone or its pid now belongs to another one."""
    import psutil  # here: imported by every verb, before `p419 up`'s first child (5.5-6.6 ms)

    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 1:
            return None
        return proc
    except psutil.Error:
        return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float)


def parse_state(raw: object) -> dict[str, Any]:
    """A state file's content, checked field by field; raises CorruptState saying what is wrong."""
    if not isinstance(raw, dict):
        raise CorruptState(f"not a JSON object but {type(raw).__name__}")
    checks: dict[str, tuple[Any, str]] = {
        "pid": (lambda v: _is_int(v) and v > 0, "a process id"),
        "create_time": (_is_number, "a number"),
        "api_url": (lambda v: isinstance(v, str), "a string"),
        "ready": (lambda v: isinstance(v, bool), "true or false"),
        "children": (lambda v: isinstance(v, dict), "an object"),
    }
    for key, (ok, what) in checks.items():
        if key not in raw:
            raise CorruptState(f"no {key!r}")
        if not ok(raw[key]):
            raise CorruptState(f"{key!r} is {raw[key]!r}, not {what}")
    if "broker" in raw and not isinstance(raw["broker"], str | None):
        raise CorruptState(f"'broker' is {raw['broker']!r}, not a string")
    child_checks: dict[str, tuple[Any, str]] = {
        "pid": (lambda v: v is None or _is_int(v), "a process id"),
        "state": (lambda v: isinstance(v, str), "a string"),
        "since": (lambda v: v is None or _is_number(v), "a number"),
        "create_time": (lambda v: v is None or _is_number(v), "a number"),
        "restarts": (_is_int, "a number"),
    }
    for name, child in raw["children"].items():
        if not isinstance(child, dict):
            raise CorruptState(f"child {name!r} is {child!r}, not an object")
        for key, (ok, what) in child_checks.items():
            if key in child and not ok(child[key]):
                raise CorruptState(f"{name}.{key} is {child[key]!r}, not {what}")
    return dict(raw)


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The state of a live `p419 up`, or None: no file, an unreadable or corrupt one (see parse_state), or
    its supervisor is gone (or its pid now belongs to another process)."""
    try:
        data = parse_state(json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):  # CorruptState and JSONDecodeError are ValueErrors
        return None
    if same_process(data["pid"], float(data["create_time"])) is None:
        return None
    return data


def running_broker(run_dir: Path) -> str | None:
    """The broker kind (redis/embedded) of a live `p419 up` on this data dir, if one runs."""
    state = read_state(run_dir)
    broker = state.get("broker") if state else None
    return broker if broker in ("redis", "embedded") else None


def request_restart(run_dir: Path, names: list[str]) -> None:
    """What `p419 restart NAME` does: the running `up` polls for this file (as for a stop)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RESTART_FILE
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in names))


def take_restart_requests(run_dir: Path) -> list[str]:
    """The names asked for since the last call (the file is consumed)."""
    path = run_dir / RESTART_FILE
    taken = run_dir / (RESTART_FILE + ".taken")
    try:
        path.replace(taken)
    except OSError:
        return []
    try:
        return [line.strip() for line in taken.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError:
        return []
    finally:
        taken.unlink(missing_ok=True)


def request_stop(run_dir: Path) -> None:
    """What `p419 down` does: the running `up` polls for this file and stops as on Ctrl+C."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STOP_FILE).write_text(str(os.getpid()), encoding="utf-8")


def write_private(path: Path, text: str) -> None:
    """Written readable by the owner only (chmod 600; on Windows the folder's ACL applies)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def write_redis_url(run_dir: Path, url: str) -> None:
    """`p419 send`/`worker`/`doctor` in another terminal follow this Redis (its password too, when set)."""
    write_private(run_dir / REDIS_URL_FILE, url)


def remove_redis_url(run_dir: Path) -> None:
    (run_dir / REDIS_URL_FILE).unlink(missing_ok=True)


def stack_redis_url(run_dir: Path) -> str | None:
    """The URL of the Redis a running `up` on this data dir started, if it did."""
    try:
        return (run_dir / REDIS_URL_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


# --- the data dir's identity -----------------------------------------------------------------------------

STACK_ID_FILE = "stack-id"


def stack_id(data_dir: Path) -> str:
    """A random id made once and kept in the data dir: the stack's identity (its own queue on a shared Redis).
    Not derived from the data dir's path: two containers or hosts with the same path (/srv/app/data) on one
    Redis took each other's messages. Made atomically (a hard link that fails when the file exists), so the
    API and the workers starting at once agree."""
    path = data_dir / STACK_ID_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    made = data_dir / f".{STACK_ID_FILE}.{os.getpid()}.{os.urandom(4).hex()}"
    made.write_text(os.urandom(6).hex(), encoding="utf-8")
    try:
        os.link(made, path)
    except FileExistsError:
        pass  # another process of the stack made it first: theirs
    except OSError:  # no hard links on this file system: the first writer still wins, nearly always
        if not path.exists():
            os.replace(made, path)
    finally:
        made.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()
