"""The Windows service host: the process the service manager starts for `p419 service install`'s service.

    python.exe -I <this file> NAME      (the service's command line; see windows_service.host_command_line)

It reads the service's Parameters (windows_service.HostConfig), runs `p419 up` there as its child (the project's
folder as working directory, the same flags as in a terminal, output through a pipe into
`<data dir>/logs/service.log`), and hands it to pywin32's service framework:

- start: the service is running once p419 up is started; one line in the event log;
- the service manager's stop (or shutdown): the stop file of `p419 down` (runfiles.request_stop), which needs
  no console, then a wait of the stop timeout (--grace + 20 s) while "stop pending" is reported; past it, p419
  up's whole tree is ended through the host's Job Object. One line in the event log;
- p419 up ending on its own: exit 0 stops the service; exit 2 (a configuration error) stops it with
  service-specific exit code 2 and is not retried; anything else ends this process without reporting "stopped",
  which the service manager treats as a crash and answers with the failure actions (a restart). One error line
  in the event log, the reason and the last lines kept in `<data dir>/logs/service-exit.json`.

Nothing in this file is imported before `_bootstrap` has put python419 and pywin32 on sys.path (the host runs
with -I, and in a venv it is the base interpreter: see windows_service.host_interpreter). The decisions
(`outcome`, `exit_reason`) and the run itself (`Host`, with its OS calls injected) are tested on Linux.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

SERVICES_KEY = r"SYSTEM\CurrentControlSet\Services"


def _bootstrap(name: str) -> None:
    """Put the service's SitePackages first on sys.path, with their .pth files (stdlib only: nothing of
    python419 or pywin32 is importable yet)."""
    import importlib
    import site

    winreg: Any = importlib.import_module("winreg")

    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, rf"{SERVICES_KEY}\{name}\Parameters") as key:
            dirs, _ = winreg.QueryValueEx(key, "SitePackages")
    except OSError:
        dirs = []
    before = list(sys.path)
    for folder in dirs or ():
        site.addsitedir(folder)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + [p for p in sys.path if p not in added]


def main(argv: list[str]) -> int:
    name = argv[1] if len(argv) > 1 else ""
    if not name:
        print("usage: python -I winsvc_host.py SERVICE_NAME (the service manager runs it)", file=sys.stderr)
        return 2
    _bootstrap(name)
    import servicemanager  # type: ignore[import-not-found,unused-ignore]

    from python419.production.winsvc_host import service_class

    servicemanager.Initialize(name, None)
    servicemanager.PrepareToHostSingle(service_class())
    try:
        servicemanager.StartServiceCtrlDispatcher()
    except Exception as exc:  # pywintypes.error; 1063: not started by the service manager
        print(
            f"p419's Windows service host for {name}: the service manager starts it "
            f"(p419 service start --name {name}); here: {exc}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


# --- below: run once python419 is on the path (the script above stops at sys.exit) ------------------------

from python419.production.windows_service import (  # noqa: E402
    CONFIG_ERROR,
    ERROR_SERVICE_SPECIFIC_ERROR,
    EXIT_RECORD,
    LOG_NAME,
    LOG_ROTATE_BYTES,
    HostConfig,
    child_environment,
    host_config,
    shown_command,
)

CREATE_NO_WINDOW = 0x08000000  # p419 up gets a console of its own, with no window; its children share it
SERVICE_STOPPED, SERVICE_STOP_PENDING, SERVICE_RUNNING = 1, 3, 4
SERVICE_CONTROL_PRESHUTDOWN, SERVICE_ACCEPT_PRESHUTDOWN = 15, 0x100
TAIL_LINES = 20
_PREFIX = re.compile(r"^\S+\s*\|\s?")  # "p419    | text": the printer's name column


def outcome(code: int | None, stop_requested: bool, killed: bool) -> str:
    """How a run of p419 up ended: stopped (asked, or exit 0 on its own: p419 down on the data dir), killed (it
    outlived the stop timeout), config (exit 2: not retried), failed (a restart by the failure actions)."""
    if killed:
        return "killed"
    if stop_requested or code == 0:
        return "stopped"
    if code == CONFIG_ERROR:
        return "config"
    return "failed"


def exit_reason(lines: list[str]) -> str:
    """The line that says why p419 up ended: its own error (`p419: ...`), else its last line."""
    cleaned = [line.strip() for line in lines if line.strip()]
    for line in reversed(cleaned):
        if line.startswith("p419:"):
            return line.removeprefix("p419:").strip()[:400]
    for line in reversed(cleaned):
        text = _PREFIX.sub("", line).strip()
        if text:
            return text[:400]
    return ""


def stamp(now: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


class Child(Protocol):
    pid: int
    returncode: int | None
    stdout: IO[bytes] | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


@dataclass
class Ended:
    code: int | None
    outcome: str
    reason: str
    seconds: float  # from the stop request (or the start) to the end


class Host:
    """One run of p419 up for the service, from start to exit. The OS calls are injected: `spawn` starts the
    child, `contain` puts it in a Job Object and returns the call that ends its whole tree, `request_stop`
    writes the stop file, `report` tells the service manager, `event` writes to the event log."""

    def __init__(
        self,
        config: HostConfig,
        *,
        report: Callable[..., None],
        event: Callable[[str, str], None],
        spawn: Callable[..., Child] | None = None,
        contain: Callable[[Child], Callable[[], None] | None] | None = None,
        request_stop: Callable[[Path], None] | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 0.5,
    ) -> None:
        from python419.runfiles import request_stop as write_stop_file

        self.config = config
        self.report, self.event = report, event
        self.spawn = spawn or _spawn
        self.contain = contain or _contain
        self.request_stop_file = request_stop or write_stop_file
        self.environ = os.environ if environ is None else environ
        self.clock, self.poll_interval = clock, poll_interval
        self.stop_wanted = threading.Event()
        self.stop_why = ""
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._log: IO[str] | None = None
        self._log_lock = threading.Lock()

    # --- the service manager's side (called on its control thread) --------------------------------------

    def request_stop(self, why: str) -> None:
        if not self.stop_wanted.is_set():
            self.stop_why = why
            self.stop_wanted.set()
        self.report(SERVICE_STOP_PENDING, wait_ms=int(self.config.stop_timeout * 1000) + 5000)

    # --- the log ----------------------------------------------------------------------------------------

    def _open_log(self) -> None:
        logs = self.config.logs_dir
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / LOG_NAME
        try:
            if path.stat().st_size > LOG_ROTATE_BYTES:
                os.replace(path, path.with_name(LOG_NAME + ".1"))
        except OSError:
            pass
        self._log = path.open("a", encoding="utf-8", errors="replace")

    def write(self, line: str, own: bool = False) -> None:
        """One line into service.log, stamped; the host's own lines say `service:`."""
        text = f"{stamp(time.time())} {'service: ' if own else ''}{line}\n"
        with self._log_lock:
            if self._log is None:
                return
            try:
                self._log.write(text)
                self._log.flush()
            except (OSError, ValueError):
                pass

    def _pump(self, child: Child) -> None:
        stream = child.stdout
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.tail.append(line)
            self.write(line)

    # --- the run ----------------------------------------------------------------------------------------

    def run(self) -> Ended:
        config = self.config
        self._open_log()
        self.write(
            f"starting p419 up in {config.working_dir}: {shown_command(config.command)}",
            own=True,
        )
        began = self.clock()
        try:
            child = self.spawn(
                list(config.command),
                cwd=config.working_dir,
                env=child_environment(config.environment, self.environ),
            )
        except OSError as exc:  # the project's folder or the interpreter is gone: retrying cannot help
            reason = f"cannot start {config.command[0]} in {config.working_dir}: {exc.strerror or exc}"
            return self._ended(None, Ended(CONFIG_ERROR, "config", reason, 0.0))
        end_tree = self.contain(child)
        pump = threading.Thread(target=self._pump, args=(child,), name="p419-service-pump", daemon=True)
        pump.start()
        self.event(
            "info",
            f"{config.name}: started p419 up (pid {child.pid}) in {config.working_dir}; log: {config.logs_dir / LOG_NAME}",
        )
        while child.poll() is None and not self.stop_wanted.wait(self.poll_interval):
            pass
        killed = False
        if child.poll() is None:  # the service manager asked: p419 down's warm stop
            self.write(f"stop: {self.stop_why}; asking p419 up to stop (the stop file)", own=True)
            began = self.clock()
            deadline = began + config.stop_timeout
            while child.poll() is None and self.clock() < deadline:
                # again each time: p419 up deletes a stale stop file as it starts (and may hold it as we write)
                with contextlib.suppress(OSError):
                    self.request_stop_file(config.run_dir)
                self.report(SERVICE_STOP_PENDING, wait_ms=5000)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(min(2.0, max(0.1, deadline - self.clock())))
            if child.poll() is None:
                killed = True
                self.write(
                    f"p419 up did not stop within {config.stop_timeout:g}s: ending its processes", own=True
                )
                (end_tree or child.kill)()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(15)
        pump.join(5)
        code = child.poll()
        kind = outcome(code, self.stop_wanted.is_set(), killed)
        reason = "" if kind in ("stopped", "killed") else exit_reason(list(self.tail))
        return self._ended(child.pid, Ended(code, kind, reason, self.clock() - began))

    def _ended(self, pid: int | None, ended: Ended) -> Ended:
        config = self.config
        name = config.name
        if ended.outcome == "stopped":
            why = self.stop_why or "p419 up stopped on its own (p419 down on its data dir?)"
            text = f"{name}: stopped ({why}; p419 up exited {ended.code} after {ended.seconds:.1f}s)"
            level = "info"
        elif ended.outcome == "killed":
            text = (
                f"{name}: stopped ({self.stop_why}); p419 up did not stop within {config.stop_timeout:g}s, so its "
                "processes were ended"
            )
            level = "warning"
        elif ended.outcome == "config":
            text = (
                f"{name}: p419 up cannot start (exit {ended.code}, not retried): {ended.reason}; fix it, then "
                "p419 service start"
            )
            level = "error"
        else:
            text = (
                f"{name}: p419 up exited with code {ended.code}: {ended.reason}; the service manager restarts the "
                "service (its failure actions)"
            )
            level = "error"
        self.write(text, own=True)
        record = {
            "service": name,
            "time": stamp(time.time()),
            "epoch": time.time(),
            "pid": pid,
            "code": ended.code,
            "outcome": ended.outcome,
            "reason": ended.reason,
            "stop": self.stop_why,
            "lines": list(self.tail),
        }
        try:
            (config.logs_dir / EXIT_RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
        except OSError as exc:
            self.write(f"cannot write {EXIT_RECORD}: {exc}", own=True)
        self.event(level, text)
        with self._log_lock:
            if self._log is not None:
                self._log.close()
                self._log = None
        return ended


# --- the OS edges (Windows) -----------------------------------------------------------------------------------


def _spawn(argv: list[str], *, cwd: str, env: Mapping[str, str]) -> Child:
    """p419 up, created suspended: `_contain` puts it in the job, then lets it run (see spawn_in_job: the
    command may be pipx's p419.exe or a virtualenv's python.exe, launchers that start the real process at
    once)."""
    from python419.supervisor.orphans import CREATE_SUSPENDED

    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        creationflags=CREATE_NO_WINDOW | CREATE_SUSPENDED,
    )


def _contain(child: Child) -> Callable[[], None] | None:
    """The child in a Job Object that dies with this process (a killed host takes p419 up and its tree with it:
    p419 up's own Job Object nests in it). Returns the call that ends the whole tree, None without a job."""
    from ctypes import wintypes

    from python419.supervisor.orphans import JobObject, kernel32, resume_process

    handle = int(getattr(child, "_handle", child.pid))
    try:
        job = JobObject()
        job.assign(handle)
    except OSError:
        return None
    finally:
        try:
            resume_process(handle)  # `_spawn` created it suspended: it runs now, in the job when there is one
        except OSError:
            child.kill()  # never a child left suspended
            raise
    k32 = kernel32()
    k32.TerminateJobObject.argtypes = (wintypes.HANDLE, wintypes.UINT)
    k32.TerminateJobObject.restype = wintypes.BOOL
    _keep.append(job)  # the handle lives as long as this process: closing it would end the tree

    def end_tree() -> None:
        if not k32.TerminateJobObject(job.handle, 1):
            child.kill()

    return end_tree


_keep: list[Any] = []


def service_class() -> type:
    """pywin32's ServiceFramework subclass (built on call: pywin32 exists on Windows only)."""
    import servicemanager  # type: ignore[import-not-found,unused-ignore]
    import win32service  # type: ignore[import-not-found,unused-ignore]
    import win32serviceutil  # type: ignore[import-not-found,unused-ignore]

    def event(level: str, text: str) -> None:
        log = {"info": servicemanager.LogInfoMsg, "warning": servicemanager.LogWarningMsg}.get(
            level, servicemanager.LogErrorMsg
        )
        # pywintypes.error: an event log that refuses must not stop the service
        with contextlib.suppress(Exception):
            log(text)

    class P419Service(win32serviceutil.ServiceFramework):  # type: ignore[misc,unused-ignore]
        _svc_name_ = "p419"
        _svc_display_name_ = "p419"

        def __init__(self, args: Any) -> None:
            self._svc_name_ = str(args[0])  # the framework names the event source after it
            super().__init__(args)
            self.state = win32service.SERVICE_START_PENDING
            self.host: Host | None = None
            self.early_stop = ""  # a stop that came before the host was made
            self.lock = threading.Lock()

        def GetAcceptedControls(self) -> int:
            accepted = int(super().GetAcceptedControls())
            return accepted | SERVICE_ACCEPT_PRESHUTDOWN if accepted else accepted

        def report(self, state: int, wait_ms: int = 5000, win32_exit: int = 0, service_exit: int = 0) -> None:
            if state != SERVICE_STOP_PENDING or self.state != SERVICE_STOPPED:
                self.state = state
                self.ReportServiceStatus(
                    state, waitHint=wait_ms, win32ExitCode=win32_exit, svcExitCode=service_exit
                )

        def SvcInterrogate(self) -> None:
            self.ReportServiceStatus(self.state)

        def _stop(self, why: str) -> None:
            with self.lock:
                host = self.host
                if host is None:
                    self.early_stop = self.early_stop or why
            if host is not None:
                host.request_stop(why)
            else:
                self.report(SERVICE_STOP_PENDING)

        def SvcStop(self) -> None:
            self._stop("the service manager's stop")

        def SvcShutdown(self) -> None:
            self._stop("Windows is shutting down")

        def SvcOtherEx(self, control: int, event_type: int, data: Any) -> None:
            if control == SERVICE_CONTROL_PRESHUTDOWN:
                self._stop("Windows is shutting down")

        def SvcRun(self) -> None:
            self.state = win32service.SERVICE_RUNNING
            self.ReportServiceStatus(win32service.SERVICE_RUNNING)
            self.SvcDoRun()

        def SvcDoRun(self) -> None:
            from python419.production.windows_service import PywinScm

            try:
                config = host_config(self._svc_name_, PywinScm().parameters(self._svc_name_))
            except ValueError as exc:
                event("error", f"{self._svc_name_}: {exc}")
                self.report(SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR, CONFIG_ERROR)
                os._exit(0)
            host = Host(config, report=self.report, event=event)
            with self.lock:
                self.host = host
                if self.early_stop:
                    host.request_stop(self.early_stop)  # p419 up still starts, and is stopped at once, warmly
            try:
                ended = host.run()
            except Exception as exc:  # noqa: BLE001 - a log folder it may not write, a bug: one line, then a crash
                event("error", f"{self._svc_name_}: the service host failed: {type(exc).__name__}: {exc}")
                os._exit(1)  # a crash for the service manager: its failure actions restart it
            if ended.outcome == "failed" and not host.stop_wanted.is_set():
                # A crash for the service manager: its failure actions restart it. (A stop that came while
                # p419 up was failing is a stop: the user asked for it.)
                sys.stdout and sys.stdout.flush()
                os._exit(ended.code if ended.code and 0 < ended.code < 256 else 1)
            if ended.outcome == "config":  # stopped with exit code 2: not retried
                self.report(SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR, CONFIG_ERROR)
                os._exit(0)
            # stopped or killed: the framework reports "stopped" when this returns

    return P419Service
