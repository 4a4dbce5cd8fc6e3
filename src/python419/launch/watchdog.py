"""A child must not outlive a supervisor that was killed hard. Linux's parent-death signal and Windows' Job
Object do it from the supervisor's side; this watchdog runs inside every launcher as the backstop, and as the
only mechanism on macOS: when the supervisor is gone, stop warmly as the supervisor would have asked (SIGTERM),
and after `grace` seconds take the whole process group down (a prefork pool's children with it)."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from collections.abc import Callable, Mapping

from . import contract

STILL_ACTIVE = 259
SYNCHRONIZE_AND_QUERY = 0x00100000 | 0x1000  # SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION


def parent_gone(windows: bool, supervisor_pid: int, current_ppid: int, alive: Callable[[int], bool]) -> bool:
    """POSIX reparents an orphan (its ppid changes); Windows keeps a stale ppid, so ask whether it still lives."""
    if windows:
        return not alive(supervisor_pid)
    return current_ppid != supervisor_pid


def pid_alive(pid: int) -> bool:
    """Does process `pid` still run? (The OS call; Windows: its exit code is still STILL_ACTIVE.)"""
    if os.name != "nt":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    k32.OpenProcess.restype = ctypes.c_void_p
    handle = k32.OpenProcess(SYNCHRONIZE_AND_QUERY, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        k32.GetExitCodeProcess(ctypes.c_void_p(handle), ctypes.byref(code))
        return code.value == STILL_ACTIVE
    finally:
        k32.CloseHandle(ctypes.c_void_p(handle))


class Watchdog(threading.Thread):
    def __init__(
        self,
        supervisor_pid: int,
        grace: float = 10.0,
        interval: float = 0.5,
        escalate: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="p419-watchdog", daemon=True)
        self.supervisor_pid, self.grace, self.interval = supervisor_pid, grace, interval
        self.escalate = escalate  # what ends what is left once the grace is over (default: our process group)

    def run(self) -> None:
        windows = os.name == "nt"
        while not parent_gone(windows, self.supervisor_pid, os.getppid(), pid_alive):
            threading.Event().wait(self.interval)
        signal.raise_signal(signal.SIGTERM)  # the warm stop: a task in hand may finish within the grace
        threading.Event().wait(self.grace)
        if self.escalate is not None:
            self.escalate()
        elif not windows and os.getpgrp() == os.getpid():  # we lead our group (p419 starts each child so)
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(1)


def start_from_env(environ: Mapping[str, str]) -> Watchdog | None:
    """The watchdog, when this child was started by `p419 up` (the supervisor's pid in the environment)."""
    value = environ.get(contract.SUPERVISOR_PID, "")
    if not value.isdigit():
        return None
    try:
        grace = float(environ.get(contract.GRACE, "") or 10.0)
    except ValueError:
        grace = 10.0
    watchdog = Watchdog(int(value), grace=grace)
    watchdog.start()
    return watchdog
