"""Children must not outlive a supervisor that was killed hard (kill -9, a closed terminal).

- Linux: each child gets a parent-death signal (prctl PR_SET_PDEATHSIG), so the kernel tells it at once:
  SIGTERM for our Python children (a warm stop; their watchdog kills what is left), SIGKILL for anything else
  (redis-server), which runs no watchdog of ours and may ignore SIGTERM (see `pdeathsig_for`).
- Windows: children are put in a Job Object with KILL_ON_JOB_CLOSE before they run (created suspended); the OS
  kills them, and whatever they started, when our handle dies.
- Everywhere, our launcher runs a watchdog inside each child (python419/launch/watchdog.py) that notices the
  supervisor is gone and takes its own process group down (the macOS mechanism, and the backstop elsewhere).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

PR_SET_PDEATHSIG = 1
LINUX_SIGKILL = 9  # spelled out: signal.SIGKILL does not exist on Windows, where this module is imported too


def pdeathsig_for(has_watchdog: bool) -> int:
    """The parent-death signal for a child (Linux).

    Our launcher's children (the API, workers) get SIGTERM: a warm stop, and their Watchdog takes their tree
    down if that has not worked within its grace period. Anything else (redis-server) runs no watchdog of
    ours, so nothing would escalate: redis-server refuses to exit on SIGTERM when it cannot save its RDB
    snapshot ("Error trying to save the DB, can't exit"); on a full disk it stayed alive with ppid 1 for 7+
    minutes (issue 12). It gets SIGKILL, which loses nothing it acknowledged: with appendonly yes, Redis
    writes each change to its AOF before replying.
    """
    return int(signal.SIGTERM) if has_watchdog else LINUX_SIGKILL


def pdeathsig_preexec(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn for Popen on Linux; None elsewhere. SIGTERM, so a child still shuts down warmly (our
    Python children's watchdog kills what is left after its grace period)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # resolved before fork: nothing to import in the child
    prctl = libc.prctl
    parent = os.getpid()

    def set_pdeathsig() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl ran: the signal will never come
            os.kill(os.getpid(), sig)

    return set_pdeathsig


# --- Windows Job Object (ctypes only, no pywin32) ---------------------------------------------

JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9
CREATE_SUSPENDED = 0x00000004


class _IoCounters(ctypes.Structure):
    _fields_ = [(name, ctypes.c_ulonglong) for name in ("r", "w", "o", "rb", "wb", "ob")]


class _BasicLimits(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_longlong),
        ("PerJobUserTimeLimit", ctypes.c_longlong),
        ("LimitFlags", ctypes.c_uint32),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", ctypes.c_uint32),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", ctypes.c_uint32),
        ("SchedulingClass", ctypes.c_uint32),
    ]


class ExtendedLimits(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", _BasicLimits),
        ("IoInfo", _IoCounters),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


def kernel32() -> Any:
    """kernel32 with the prototypes we use: HANDLE results are pointer-sized, not ctypes' default int."""
    from ctypes import wintypes

    k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    k32.CreateJobObjectW.argtypes = (wintypes.LPVOID, wintypes.LPCWSTR)
    k32.CreateJobObjectW.restype = wintypes.HANDLE
    k32.SetInformationJobObject.argtypes = (wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID, wintypes.DWORD)
    k32.SetInformationJobObject.restype = wintypes.BOOL
    k32.AssignProcessToJobObject.argtypes = (wintypes.HANDLE, wintypes.HANDLE)
    k32.AssignProcessToJobObject.restype = wintypes.BOOL
    return k32


def _win_error(what: str) -> OSError:
    get_last_error = getattr(ctypes, "get_last_error", lambda: 0)
    return OSError(f"{what} failed (Windows error {get_last_error()})")


class JobObject:
    """Every process assigned here dies when the supervisor's last handle to the job closes (at its death)."""

    def __init__(self, k32: Any = None) -> None:
        self._k32 = k32 if k32 is not None else kernel32()
        self.handle = self._k32.CreateJobObjectW(None, None)
        if not self.handle:
            raise _win_error("CreateJobObjectW")
        limits = ExtendedLimits()
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        ok = self._k32.SetInformationJobObject(
            self.handle,
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
            ctypes.byref(limits),
            ctypes.sizeof(limits),
        )
        if not ok:
            raise _win_error("SetInformationJobObject")

    def assign(self, process_handle: int) -> None:
        """`process_handle`: the handle Popen holds (full access; no pid-reuse window as with OpenProcess).
        Assign a child before it runs (`spawn_in_job`): what it starts after that is in the job too."""
        if not self._k32.AssignProcessToJobObject(self.handle, process_handle):
            raise _win_error("AssignProcessToJobObject")


def resume_process(process_handle: int, ntdll: Any = None) -> None:
    """Let a child created with CREATE_SUSPENDED run. ntdll's NtResumeProcess, as psutil's resume(): Popen
    keeps the process's handle but closes its first thread's, which ResumeThread would need."""
    if ntdll is None:
        from ctypes import wintypes

        ntdll = ctypes.WinDLL("ntdll")  # type: ignore[attr-defined]
        ntdll.NtResumeProcess.argtypes = (wintypes.HANDLE,)
        ntdll.NtResumeProcess.restype = ctypes.c_long
    status = ntdll.NtResumeProcess(process_handle)
    if status != 0:
        raise OSError(f"NtResumeProcess failed (NTSTATUS {status & 0xFFFFFFFF:#010x})")


def spawn_in_job(
    job: JobObject | None,
    argv: Sequence[str],
    *,
    suspended: bool,
    resume: Callable[[int], None] = resume_process,
    **options: Any,
) -> subprocess.Popen[bytes]:
    """subprocess.Popen, with the child in `job`. `suspended` (Windows, whose plan guards orphans with the
    job): created suspended, assigned, then resumed, so it is in the job before it runs at all. Assigned
    once it ran, a child could start its own first, outside the job, to outlive a supervisor killed hard: a
    virtualenv's python.exe is a launcher that starts the real interpreter at once (so is pipx's p419.exe).
    A child that cannot be put in the job is killed, never left unaccounted for."""
    if job is None:
        return subprocess.Popen(argv, **options)
    if suspended:
        options["creationflags"] = options.get("creationflags", 0) | CREATE_SUSPENDED
    popen: subprocess.Popen[bytes] = subprocess.Popen(argv, **options)
    handle = int(getattr(popen, "_handle", popen.pid))  # Windows Popen keeps the process's handle
    try:
        job.assign(handle)
        if suspended:
            resume(handle)
    except OSError:
        popen.kill()
        popen.wait()
        raise
    return popen
