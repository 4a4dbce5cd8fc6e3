"""`p419 service install|uninstall|start|stop|status`: the project's systemd unit, installed and driven with
systemctl. Linux only; Windows services are production/windows_service.py; macOS has no systemd.

Whether it can run here is a pure function of what was found (`Host`: the platform, systemctl's path, whether
systemd is the init system, the user id); the commands run systemctl through an injected `Run`, so the
install's order and its roll-back are testable without systemd. An install that fails part way leaves what was
there before: the unit file written is removed (or the replaced one put back) and systemd reloaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from python419.platforms import Platform

# (argv, capture) -> (exit status, what it printed); capture=False lets systemctl talk to the terminal itself.
Run = Callable[[Sequence[str], bool], tuple[int, str]]
BOOTED_MARKER = Path("/run/systemd/system")  # sd_booted(3): systemd is the init system


class ServiceError(Exception):
    """One line for the user, and the exit status: 2 for what must change first, 1 for a systemctl failure."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Host:
    platform: Platform
    systemctl: str | None  # its path, None: not on PATH
    booted: bool  # systemd runs as PID 1
    euid: int | None  # None on Windows
    unit_dir: Path  # where the unit goes (system or user)
    user_unit: bool = False


def find_host(platform: Platform, unit_dir: Path, user_unit: bool) -> Host:
    """What this machine has: the only place that looks."""
    geteuid = getattr(os, "geteuid", None)
    return Host(
        platform=platform,
        systemctl=shutil.which("systemctl") if platform == "linux" else None,
        booted=BOOTED_MARKER.is_dir(),
        euid=geteuid() if geteuid is not None else None,
        unit_dir=unit_dir,
        user_unit=user_unit,
    )


def blocker(host: Host, *, writes: bool) -> str | None:
    """Why `p419 service` cannot work here, in one line (None: it can). `writes`: install/uninstall."""
    if host.platform == "windows":
        return (
            "this is the systemd side of p419 service; on Windows p419 service drives a Windows service "
            "(python419.production.windows_service)"
        )
    if host.platform != "linux":
        return f"p419 service needs systemd (Linux); {host.platform} has none (launchd units are not written by p419)"
    if host.systemctl is None:
        return "p419 service needs systemctl (systemd): not found on PATH"
    if not host.booted:
        return (
            f"p419 service needs systemd as the init system, and this machine was not booted with it (no "
            f"{BOOTED_MARKER}); p419 export systemd prints the unit for a host that has it"
        )
    if writes and not host.user_unit and host.euid not in (0, None):
        return f"writing to {host.unit_dir} needs root: run it with sudo, or install a user unit with --user"
    return None


def systemctl(host: Host, *args: str) -> list[str]:
    assert host.systemctl is not None
    return [host.systemctl, *(["--user"] if host.user_unit else []), *args]


def unit_path(host: Host, name: str) -> Path:
    return host.unit_dir / f"{name}.service"


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _check(host: Host, run: Run, *args: str) -> None:
    code, output = run(systemctl(host, *args), True)
    if code != 0:
        raise ServiceError(f"systemctl {' '.join(args)} failed (exit {code}): {_last_line(output)}", 1)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.p419-tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)


def install(host: Host, name: str, text: str, *, force: bool, run: Run) -> list[str]:
    """Write the unit, reload systemd, enable it. Returns what to tell the user; raises ServiceError."""
    why = blocker(host, writes=True)
    if why:
        raise ServiceError(why)
    path = unit_path(host, name)
    previous: str | None = None
    if path.exists():
        if not force:
            raise ServiceError(f"{path} exists: p419 service install --force replaces it")
        previous = path.read_text(encoding="utf-8")
    try:
        _write(path, text)
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror or exc}", 1) from None
    try:
        _check(host, run, "daemon-reload")
        _check(host, run, "enable", f"{name}.service")
    except ServiceError:
        # Nothing half-installed: what was there before, and systemd told so.
        with contextlib.suppress(OSError):
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                _write(path, previous)
        run(systemctl(host, "daemon-reload"), True)
        raise
    start = " ".join(["systemctl", *(["--user"] if host.user_unit else []), "start", name])
    return [f"installed and enabled {path}", f"start it now: p419 service start (or {start})"]


def uninstall(host: Host, name: str, *, run: Run) -> list[str]:
    why = blocker(host, writes=True)
    if why:
        raise ServiceError(why)
    path = unit_path(host, name)
    if not path.exists():
        raise ServiceError(f"no unit {path} to uninstall (--name names another one)")
    _check(host, run, "disable", "--now", f"{name}.service")  # stops it too: the stack stops in order
    try:
        path.unlink()
    except OSError as exc:
        raise ServiceError(f"cannot remove {path}: {exc.strerror or exc}", 1) from None
    _check(host, run, "daemon-reload")
    return [f"stopped, disabled and removed {path}"]


def control(host: Host, verb: str, name: str, *, run: Run) -> int:
    """start / stop / status: systemctl's own output and exit status (status: 3 when it is not running)."""
    why = blocker(host, writes=False)
    if why:
        raise ServiceError(why)
    if not unit_path(host, name).exists():
        raise ServiceError(
            f"no unit {unit_path(host, name)}: p419 service install{' --user' if host.user_unit else ''} first"
        )
    code, _ = run(systemctl(host, verb, f"{name}.service"), False)
    return code


def run_command(argv: Sequence[str], capture: bool) -> tuple[int, str]:
    """The real Run: systemctl itself."""
    if not capture:
        return subprocess.call(list(argv)), ""
    done = subprocess.run(list(argv), capture_output=True, text=True, errors="replace")
    return done.returncode, done.stdout + done.stderr
