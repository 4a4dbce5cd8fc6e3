"""The Windows branches of p419 doing real Windows calls: the Job Object, the creation flags, the stop.

Run by a Windows CPython (scripts/test-windows runs them under Wine). Nothing here is faked: children are real
processes, the Job Object is the kernel's, and what a child sees of its own creation flags is read from its
process parameters.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from ctypes import wintypes

import pytest

from python419.platforms import CREATE_NEW_PROCESS_GROUP, creation_flags, stop_method
from python419.supervisor.orphans import JobObject, kernel32, spawn_in_job
from python419.supervisor.plan import ChildSpec, Plan
from python419.supervisor.process import OsChild, ProcessFactory
from tests.plans import plan_for

SLEEPER = "import time; time.sleep(120)"
SYNCHRONIZE, PROCESS_QUERY_LIMITED_INFORMATION = 0x00100000, 0x1000
WAIT_OBJECT_0 = 0

# A child reads its own RTL_USER_PROCESS_PARAMETERS.ConsoleFlags (PEB+0x20 -> params+0x18 on x64): CreateProcess
# sets it to 1 for CREATE_NEW_PROCESS_GROUP (Ctrl+C ignored; the group can be sent CTRL_BREAK on its own).
CONSOLE_FLAGS = r"""
import ctypes
from ctypes import wintypes
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_void_p) for n in ("status", "peb", "affinity", "priority", "pid", "ppid")]
query = ctypes.WinDLL("ntdll").NtQueryInformationProcess
query.argtypes = (wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.ULONG, ctypes.c_void_p)
info = Info()
assert query(wintypes.HANDLE(-1), 0, ctypes.byref(info), ctypes.sizeof(info), None) == 0
params = ctypes.c_void_p.from_address(info.peb + 0x20).value
print("console-flags", ctypes.c_uint32.from_address(params + 0x18).value, flush=True)
"""

# A child that stops warmly on CTRL_BREAK (as Celery's worker does on SIGBREAK).
ON_BREAK = r"""
import signal, sys, time
def stop(*_):
    print("got SIGBREAK, stopping warmly", flush=True)
    sys.exit(0)
signal.signal(signal.SIGBREAK, stop)
print("waiting", flush=True)
time.sleep(60)
sys.exit(3)
"""


def _k32() -> ctypes.WinDLL:
    k32 = kernel32()
    k32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    k32.OpenProcess.restype = wintypes.HANDLE
    k32.WaitForSingleObject.argtypes = (wintypes.HANDLE, wintypes.DWORD)
    k32.WaitForSingleObject.restype = wintypes.DWORD
    k32.CloseHandle.argtypes = (wintypes.HANDLE,)
    k32.CloseHandle.restype = wintypes.BOOL
    k32.IsProcessInJob.argtypes = (wintypes.HANDLE, wintypes.HANDLE, ctypes.POINTER(wintypes.BOOL))
    k32.IsProcessInJob.restype = wintypes.BOOL
    return k32


K32 = _k32()


def in_job(process_handle: int, job_handle: int) -> bool:
    result = wintypes.BOOL()
    assert K32.IsProcessInJob(process_handle, job_handle, ctypes.byref(result)), ctypes.get_last_error()
    return bool(result.value)


def under_wine() -> bool:
    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


def open_for_wait(pid: int) -> int:
    handle = K32.OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    assert handle, f"OpenProcess({pid}) failed: {ctypes.get_last_error()}"
    return int(handle)


def exits_within(handle: int, seconds: float) -> bool:
    return K32.WaitForSingleObject(handle, int(seconds * 1000)) == WAIT_OBJECT_0


def sleeper(**options: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", SLEEPER], stdin=subprocess.DEVNULL, **options)  # type: ignore[call-overload]


class Lines:
    """A LineSink for ProcessFactory that lets a test wait for a child's line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.changed = threading.Condition()

    def __call__(self, name: str, line: str) -> None:
        with self.changed:
            self.lines.append((name, line))
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for _, line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                assert left > 0, f"no line with {text!r} in {self.lines}"
                self.changed.wait(left)


# --- the Job Object ---------------------------------------------------------------------------------


def test_kill_on_job_close_kills_a_real_child_when_the_handle_closes() -> None:
    job = JobObject()
    child = sleeper(creationflags=creation_flags("windows"))
    try:
        job.assign(int(child._handle))  # type: ignore[attr-defined]
        assert in_job(child._handle, job.handle)  # type: ignore[attr-defined]
        assert child.poll() is None
        assert K32.CloseHandle(job.handle)
        assert child.wait(timeout=15) is not None
    finally:
        child.kill()


def test_a_child_outside_the_job_survives_its_close() -> None:
    """The control for the test above: closing a job ends only its members."""
    job = JobObject()
    member, outsider = sleeper(), sleeper()
    try:
        job.assign(int(member._handle))  # type: ignore[attr-defined]
        assert not in_job(outsider._handle, job.handle)  # type: ignore[attr-defined]
        K32.CloseHandle(job.handle)
        member.wait(timeout=15)
        time.sleep(1)
        assert outsider.poll() is None
    finally:
        member.kill()
        outsider.kill()


# A launcher, as a virtualenv's python.exe is: it starts the real process at once, then waits for it.
LAUNCHER = r"""
import subprocess, sys
real = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdin=subprocess.DEVNULL)
print("started", real.pid, flush=True)
real.wait()
"""


class SlowJob(JobObject):
    """A job whose assignment comes late, as when the supervisor is descheduled right after CreateProcess."""

    def assign(self, process_handle: int) -> None:
        time.sleep(8)  # the launcher below starts its child well within this (about 1 s under Wine)
        super().assign(process_handle)


def test_what_a_child_starts_at_once_is_in_the_job_too() -> None:
    """spawn_in_job creates the child suspended: however late it is assigned, it has started nothing outside
    the job. (Started and then assigned, a launcher's real process escaped the job and outlived it.)"""
    job = SlowJob()
    launcher = spawn_in_job(
        job,
        [sys.executable, "-c", LAUNCHER],
        suspended=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        assert launcher.stdout is not None
        words = launcher.stdout.readline().split()
        assert words[:1] == [b"started"], words
        real = open_for_wait(int(words[1]))
        assert not exits_within(real, 0.5)
        assert K32.CloseHandle(job.handle)  # the supervisor's last handle: the job kills its members
        assert exits_within(real, 15), "the launcher's child escaped the job"
    finally:
        launcher.kill()


def test_the_control_started_then_assigned_a_launchers_child_escapes_the_job() -> None:
    """The control for the test above: with the child assigned after it started (as p419 did before), the
    launcher's own child is outside the job and outlives it; only the launcher dies."""
    job = SlowJob()
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    real_pid = None
    try:
        job.assign(int(launcher._handle))  # type: ignore[attr-defined]
        assert launcher.stdout is not None
        words = launcher.stdout.readline().split()
        assert words[:1] == [b"started"], words
        real_pid = int(words[1])
        real = open_for_wait(real_pid)
        assert K32.CloseHandle(job.handle)
        assert launcher.wait(15) is not None  # the member dies
        assert not exits_within(real, 2), "the launcher's child was in the job: the control proves nothing"
    finally:
        launcher.kill()
        if real_pid is not None:
            with contextlib.suppress(OSError):
                os.kill(real_pid, signal.SIGTERM)  # TerminateProcess


HOLDER = r"""
import subprocess, sys, time
from python419.supervisor.orphans import JobObject
job = JobObject()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdin=subprocess.DEVNULL)
job.assign(int(child._handle))
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_supervisor_killed_hard_takes_its_job_with_it() -> None:
    """TerminateProcess on the job's owner: the kernel closes its handles, so the job kills the grandchild."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        grandchild = open_for_wait(int(holder.stdout.readline()))
        assert not exits_within(grandchild, 0.5)
        holder.kill()  # TerminateProcess: no Python code of the holder runs any more
        holder.wait(15)
        assert exits_within(grandchild, 15)
    finally:
        holder.kill()


# --- ProcessFactory: creation flags and the job, as `p419 up` starts a child -------------------------


@pytest.fixture
def plan(tmp_path) -> Plan:
    """The real Windows plan of the bundled app on the embedded broker, as `p419 up` would execute it."""
    made = plan_for("windows", tmp_path, mode="embedded", redis_binary=None, python=sys.executable)
    assert made.creation_flags == creation_flags("windows") == CREATE_NEW_PROCESS_GROUP
    assert made.stop == stop_method("windows").kind == "ctrl-break" and made.orphan_guard == "job-object"
    return made


def test_process_factory_starts_children_in_a_new_process_group_inside_the_job(plan: Plan) -> None:
    job, lines = JobObject(), Lines()
    factory = ProcessFactory(plan, os.environ, lines, job)
    child = factory(ChildSpec("probe", "worker", [sys.executable, "-c", CONSOLE_FLAGS]))
    try:
        assert lines.wait_for("console-flags") == "console-flags 1"
        assert in_job(child.popen._handle, job.handle)  # type: ignore[attr-defined]
        assert child.popen.wait(15) == 0
    finally:
        child.kill_tree()


def test_without_the_flag_a_child_shares_our_group() -> None:
    """The control: the probe really reads the flag (0 without CREATE_NEW_PROCESS_GROUP)."""
    done = subprocess.run([sys.executable, "-c", CONSOLE_FLAGS], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "console-flags 0", done.stderr


# --- stopping ----------------------------------------------------------------------------------------


def start_breakable(plan: Plan, lines: Lines) -> OsChild:
    factory = ProcessFactory(plan, os.environ, lines, JobObject())
    child = factory(ChildSpec("breakable", "worker", [sys.executable, "-c", ON_BREAK]))
    lines.wait_for("waiting")
    return child


@pytest.mark.xfail(
    under_wine(),
    strict=True,
    reason="Wine 8: GenerateConsoleCtrlEvent fails (os.kill(pid, CTRL_BREAK_EVENT) -> WinError 12 with pipes)",
)
def test_stop_sends_ctrl_break_and_the_child_stops_warmly(plan: Plan) -> None:
    """On Windows, OsChild.stop() sends CTRL_BREAK_EVENT to the child's own process group (a child with no
    stop file, as a plain command would be)."""
    assert stop_method("windows").signal_number == signal.CTRL_BREAK_EVENT
    lines = Lines()
    child = start_breakable(plan, lines)
    try:
        child.stop()
        lines.wait_for("got SIGBREAK", timeout=15)
        assert child.popen.wait(15) == 0
    finally:
        child.kill_tree()


def test_stop_never_raises_and_kill_tree_always_ends_the_child(plan: Plan) -> None:
    """Where CTRL_BREAK cannot be delivered (Wine, no shared console), stop() must not crash the supervisor,
    and the forced path after the grace period must still end the child."""
    lines = Lines()
    child = start_breakable(plan, lines)
    try:
        child.stop()  # delivered (real Windows) or failed quietly (Wine: WinError 12)
        child.kill_tree()
        assert child.popen.wait(15) is not None
    finally:
        child.kill_tree()


def test_what_ctrl_break_does_here() -> None:
    """Records the raw os.kill outcome: delivered on Windows, WinError 12 (or 6 under a console) on Wine 8."""
    child = sleeper(creationflags=creation_flags("windows"))
    try:
        try:
            os.kill(child.pid, signal.CTRL_BREAK_EVENT)
            outcome = "delivered"
        except OSError as exc:
            outcome = f"WinError {exc.winerror}"
        print(f"os.kill(pid, CTRL_BREAK_EVENT): {outcome}")
        if under_wine():
            assert outcome in ("WinError 12", "WinError 6")
        else:
            assert outcome == "delivered"
    finally:
        child.kill()


TINY_ASGI = """
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
"""


def test_uvicorn_behind_the_launcher_exits_0_after_a_warm_stop(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """uvicorn re-raises the SIGTERM that stopped it once its graceful shutdown is over; without a handler the
    C runtime ends the process with exit code 3 (uvicorn's code for a failed start-up). The launcher makes
    the stop it was asked for (here through the stop file, which needs no console) end with 0."""
    import socket
    import urllib.request

    (tmp_path / "tinyasgi.py").write_text(TINY_ASGI)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop_file = tmp_path / "api.stop"
    env = {**os.environ, "P419_STACK_STOP_FILE": str(stop_file), "PYTHONPATH": str(tmp_path)}
    argv = [sys.executable, "-m", "python419.launch", "uvicorn", "tinyasgi:app", "--port", str(port)]
    child = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    assert answer.read() == b"ok"
                break
            except OSError:
                assert child.poll() is None and time.monotonic() < deadline, "uvicorn never answered"
                time.sleep(0.2)
        stop_file.touch()
        code = child.wait(60)
        output = child.stdout.read().decode(errors="replace") if child.stdout else ""
        assert "Finished server process" in output, output
        assert code == 0, output
    finally:
        if child.poll() is None:
            child.kill()
