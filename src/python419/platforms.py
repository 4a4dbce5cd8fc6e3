"""Every OS decision, as pure functions of an explicit platform value.

Nothing here touches the OS except `detect_platform()`; tests cover the Windows branch by passing "windows".
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from typing import Literal

Platform = Literal["windows", "linux", "macos"]
PLATFORMS: tuple[Platform, ...] = ("windows", "linux", "macos")


def detect_platform(sys_platform: str | None = None) -> Platform:
    name = sys_platform if sys_platform is not None else sys.platform
    if name.startswith("win") or name == "cygwin":
        return "windows"
    if name == "darwin":
        return "macos"
    return "linux"


# --- starting and stopping children -------------------------------------------------------------

# Windows process creation flags (from WinBase.h); kept here so they are testable on any OS.
CREATE_NEW_PROCESS_GROUP = 0x00000200
CTRL_BREAK_EVENT = 1


def creation_flags(platform: Platform) -> int:
    """A child in its own process group can be sent CTRL_BREAK_EVENT without hitting us too."""
    return CREATE_NEW_PROCESS_GROUP if platform == "windows" else 0


def starts_new_session(platform: Platform) -> bool:
    """On POSIX each child leads its own session, so a terminal's Ctrl+C reaches only the supervisor,
    which then stops children in order."""
    return platform != "windows"


@dataclass(frozen=True)
class StopMethod:
    kind: Literal["signal", "ctrl-break"]
    signal_number: int


def stop_method(platform: Platform) -> StopMethod:
    """How to ask a child for a warm shutdown: SIGTERM on POSIX, CTRL_BREAK_EVENT on Windows."""
    if platform == "windows":
        return StopMethod("ctrl-break", CTRL_BREAK_EVENT)
    return StopMethod("signal", int(signal.SIGTERM))


def sigterm_ends_cleanly(platform: Platform) -> bool:
    """Must the launcher turn a SIGTERM into a clean exit? On Windows, yes: uvicorn re-raises the signal that
    stopped it once its graceful shutdown is over, and a raised SIGTERM without a handler makes the C runtime
    end the process with exit code 3, uvicorn's own code for a failed start-up (the Wine lane: "api stopped
    with exit code 3" after every clean stop). On POSIX the process dies of the signal, which says the same."""
    return platform == "windows"


def orphan_guard(platform: Platform) -> Literal["job-object", "pdeathsig", "watchdog"]:
    """How children die with a supervisor that was killed hard."""
    return {"windows": "job-object", "linux": "pdeathsig", "macos": "watchdog"}[platform]  # type: ignore[return-value]


def supervisor_stop_signals(platform: Platform) -> list[str]:
    """Signal names that mean 'stop the stack' for the supervisor itself."""
    if platform == "windows":
        return ["SIGINT", "SIGBREAK"]
    return ["SIGINT", "SIGTERM", "SIGHUP"]
