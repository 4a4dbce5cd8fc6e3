"""Driving `p419 up` under Wine from Linux: shared by the e2e tests of tests/windows/e2e.

scripts/test-windows exports P419_WINE, P419_WINE_PYTHON (p419's Windows interpreter) and
P419_WINE_PROJECT_PYTHON (a user project's: the same CPython with only a Celery project's packages). Wine's
processes are Linux processes too, so "every child gone" is checked from /proc: each run tags its environment
with a unique P419_WINE_RUN value, which every Windows child inherits.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path

import psutil
import pytest

from tests.conftest import clean_environ
from tests.procs import free_port, wait_until

WINE = os.environ.get("P419_WINE", "")
WINE_PYTHON = os.environ.get("P419_WINE_PYTHON", "")
WINE_PROJECT_PYTHON = os.environ.get("P419_WINE_PROJECT_PYTHON", "")
READY = re.compile(r"^p419\s+\| ready in", re.M)
# Wine is slow to start a process: about 3 s for python.exe, 8-30 s to ready (30 s on a busy 2-core machine).
READY_TIMEOUT = 120  # p419 up gives up then; with the wait below it stays within pytest-timeout (180 s)


def winpath(path: Path | str) -> str:
    """A Linux path as the Windows side sees it (Wine maps / to Z:)."""
    return "Z:" + str(path).replace("/", "\\")


def require_wine(*pythons: str) -> None:
    """Never a silent skip: these tests exist to run under Wine."""
    if not (WINE and pythons and all(p and Path(p).exists() for p in pythons)):
        pytest.fail(
            "tests/windows/e2e needs the Windows interpreters under Wine: run bash scripts/test-windows"
        )


def windows_env(**extra: str) -> dict[str, str]:
    """The test process's environment for a Windows process: none of our settings, and the console's default
    code page (no forced UTF-8), as a Windows user's shell has it."""
    env = {
        k: v
        for k, v in clean_environ().items()
        if k not in ("PYTHONIOENCODING", "PYTHONUTF8", "PYTHONLEGACYWINDOWSSTDIO")
    }
    return {**env, **extra}


def decode(raw: bytes) -> str:
    """What a Windows process writes to a pipe: UTF-8, or the ANSI code page (cp1252 here)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def run_windows(
    python: str, args: list[str], cwd: Path, env: Mapping[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """A Windows Python under Wine, to completion, its output through pipes (Wine needs them)."""
    return subprocess.run(
        [WINE, python, *args],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        encoding="cp1252",
        errors="replace",
    )


class WineUp:
    """`p419 up --broker embedded` under Wine in `cwd`, its output read through a pipe (as Wine requires, and as
    CI, a service wrapper or `> log` would give it on Windows). Its data dir is `cwd/data`."""

    def __init__(self, cwd: Path, *args: str, env: Mapping[str, str] | None = None, grace: float = 5) -> None:
        self.tmp_path, self.tag = cwd, uuid.uuid4().hex
        self.api_port = free_port()
        self.data_dir = cwd / "data"
        self.env = windows_env(
            P419_WINE_RUN=self.tag,
            P419_API_PORT=str(self.api_port),
            P419_DATA_DIR=winpath(self.data_dir),
            **dict(env or {}),
        )
        self.lines: list[str] = []
        self.log = cwd / "up.log"
        self.proc = subprocess.Popen(
            [WINE, WINE_PYTHON, "-m", "python419", "up", "--broker", "embedded", "--workers", "1"]
            + ["--grace", str(grace), "--ready-timeout", str(READY_TIMEOUT), *args],
            env=self.env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("w", encoding="utf-8") as log:
            for raw in iter(self.proc.stdout.readline, b""):
                line = decode(raw).rstrip("\r\n")
                self.lines.append(line)
                log.write(line + "\n")
                log.flush()

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self) -> None:
        ok = wait_until(
            lambda: READY.search(self.output()) or self.proc.poll() is not None, READY_TIMEOUT + 30
        )
        assert ok and self.proc.poll() is None, f"not ready:\n{self.output()[-4000:]}"

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, f"the supervisor died:\n{self.output()[-4000:]}"

    def p419(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run_windows(WINE_PYTHON, ["-m", "python419", *args], self.tmp_path, self.env, timeout)

    def windows_processes(self) -> list[psutil.Process]:
        """This run's Windows Python processes (the supervisor and its descendants), as Linux sees them."""
        found = []
        for proc in psutil.process_iter():
            try:
                if (
                    "python.exe" in " ".join(proc.cmdline())
                    and proc.environ().get("P419_WINE_RUN") == self.tag
                ):
                    found.append(proc)
            except psutil.Error:
                pass
        return found

    def children(self) -> list[psutil.Process]:
        return [p for p in self.windows_processes() if p.pid != self.proc.pid]

    def stop(self) -> None:
        for proc in [*self.windows_processes()]:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self._reader.join(10)


def alive(procs: list[psutil.Process]) -> list[int]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            pass
    return out
