"""The only part of the supervisor that touches the OS: start a child, read its output, stop it, kill its tree.

Every OS difference is looked up in `python419.platforms` (pure); this module just applies the answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any, Protocol

import psutil

from python419.platforms import Platform, creation_flags, starts_new_session, stop_method
from python419.supervisor.orphans import JobObject, pdeathsig_for, pdeathsig_preexec
from python419.supervisor.plan import ChildSpec

LineSink = Callable[[str, str], None]


class Child(Protocol):
    """What the manager needs from a running child (real or fake)."""

    pid: int

    def poll(self) -> int | None: ...
    def stop(self) -> None: ...
    def kill_tree(self) -> None: ...


class OsChild:
    def __init__(self, spec: ChildSpec, popen: subprocess.Popen[bytes], platform: Platform) -> None:
        self.spec, self.popen, self.platform = spec, popen, platform
        self.pid = popen.pid
        self._known: dict[int, psutil.Process] = {}
        self.remember_descendants()

    def poll(self) -> int | None:
        return self.popen.poll()

    def remember_descendants(self) -> None:
        """Grandchildren are reparented when a child dies; remember them while we can still see them."""
        try:
            root = psutil.Process(self.pid)
            for proc in [root, *root.children(recursive=True)]:
                self._known.setdefault(proc.pid, proc)
        except psutil.Error:
            pass

    def stop(self) -> None:
        """Ask for a warm shutdown: SIGTERM on POSIX, CTRL_BREAK_EVENT to its process group on Windows."""
        self.remember_descendants()
        if self.popen.poll() is not None:
            return
        method = stop_method(self.platform)
        with contextlib.suppress(OSError):
            os.kill(self.pid, method.signal_number)

    def kill_tree(self) -> None:
        self.remember_descendants()
        for proc in self._known.values():
            try:
                if proc.is_running():  # also guards against a recycled pid
                    proc.kill()
            except psutil.Error:
                pass
        if self.popen.poll() is None:
            with contextlib.suppress(OSError):
                self.popen.kill()


class ProcessFactory:
    """Starts children for real. `job` is the Windows Job Object (None elsewhere)."""

    def __init__(
        self, platform: Platform, base_env: dict[str, str], sink: LineSink, job: JobObject | None
    ) -> None:
        self.platform, self.base_env, self.sink, self.job = platform, base_env, sink, job
        self._preexec = (
            {kind: pdeathsig_preexec(pdeathsig_for(kind)) for kind in ("redis", "api", "worker")}
            if platform == "linux"
            else {}
        )

    def __call__(self, spec: ChildSpec) -> OsChild:
        options: dict[str, Any] = {}
        if self.platform == "windows":
            options["creationflags"] = creation_flags(self.platform)
        else:
            options["start_new_session"] = starts_new_session(self.platform)
            if self._preexec.get(spec.kind):
                options["preexec_fn"] = self._preexec[spec.kind]
        popen = subprocess.Popen(
            spec.argv,
            env={**self.base_env, **spec.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **options,
        )
        if self.job is not None:
            try:
                self.job.assign(int(getattr(popen, "_handle", popen.pid)))  # Windows Popen keeps a handle
            except OSError:
                popen.kill()  # never leave a child we cannot account for
                popen.wait()
                raise
        assert popen.stdout is not None
        threading.Thread(target=_pump, args=(spec.name, popen.stdout, self.sink), daemon=True).start()
        return OsChild(spec, popen, self.platform)


def _pump(name: str, stream: Any, sink: LineSink) -> None:
    for raw in iter(stream.readline, b""):
        sink(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    stream.close()


def install_stop_handlers(names: list[str], handler: Callable[[int, Any], None]) -> None:
    for name in names:
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, handler)
