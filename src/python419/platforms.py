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


# --- the one table of stops -------------------------------------------------------------------------------
# Which signals stop the stack on each OS, and `p419 up`'s exit status after that orderly stop: Ctrl+C (SIGINT)
# 130 and a closed terminal (SIGHUP) 129, as shells and honcho report them; SIGTERM (a service manager), SIGBREAK
# (a closed console on Windows) and `p419 down` 0.
STACK_STOPS: tuple[tuple[str, int, tuple[Platform, ...]], ...] = (
    ("SIGINT", 130, PLATFORMS),
    ("SIGTERM", 0, ("linux", "macos")),
    ("SIGHUP", 129, ("linux", "macos")),
    ("SIGBREAK", 0, ("windows",)),
)
# A child's exit status that means it stopped because we asked it to: 0, death by our SIGTERM (uvicorn re-raises
# SIGTERM after its graceful shutdown: -15; through a shell or the guard, 128+15), or Windows'
# STATUS_CONTROL_C_EXIT for a console program ended by CTRL_BREAK without a handler.
STATUS_CONTROL_C_EXIT = 0xC000013A
CLEAN_STOP_CODES = frozenset({0, -int(signal.SIGTERM), 128 + int(signal.SIGTERM), STATUS_CONTROL_C_EXIT})


def supervisor_stop_signals(platform: Platform) -> list[str]:
    """Signal names that mean 'stop the stack' for the supervisor itself."""
    return [name for name, _, where in STACK_STOPS if platform in where]


def stop_exit_code(signal_name: str | None) -> int:
    """`p419 up`'s exit status after an orderly stop on `signal_name` (None: `p419 down`)."""
    return next((code for name, code, _ in STACK_STOPS if name == signal_name), 0)


def stopped_cleanly(code: int | None) -> bool:
    return code in CLEAN_STOP_CODES
