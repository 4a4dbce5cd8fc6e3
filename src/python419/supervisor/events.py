"""What the manager tells the world. The printer and the state file listen; neither decides anything."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Output:
    name: str
    line: str


@dataclass(frozen=True)
class Started:
    name: str
    pid: int


@dataclass(frozen=True)
class ChildReady:
    name: str
    seconds: float
    warning: str | None = None  # ready, but the user should look (an API answering 5xx on its ready path)


@dataclass(frozen=True)
class StackReady:
    seconds: float
    urls: tuple[str, ...]


@dataclass(frozen=True)
class Exited:
    """`expected`: we asked it to stop. Then `clean` says it stopped as asked (exit 0, or died of our SIGTERM,
    as uvicorn does on purpose), `killed` that we had to kill it."""

    name: str
    code: int | None
    expected: bool
    clean: bool = False
    killed: bool = False


@dataclass(frozen=True)
class Restarting:
    name: str
    delay: float
    failures: int


@dataclass(frozen=True)
class StepDone:
    """A one-shot step ran to completion (exit 0)."""

    name: str
    seconds: float


@dataclass(frozen=True)
class GaveUp:
    """A child that cannot start was given up; the rest of the stack runs on (`p419 restart NAME` or a
    --reload save brings it back). `tail` is its last log lines."""

    name: str
    reason: str
    tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failed:
    """The stack cannot run: a child gave up or never got ready. `tail` is its last log lines."""

    name: str
    reason: str
    tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stopping:
    reason: str
    force: bool = False


@dataclass(frozen=True)
class Stopped:
    """The whole stop, reported once every child has been reaped."""

    seconds: float
    killed: tuple[str, ...] = ()
    forced: bool = False  # a second interrupt cut the grace period short


@dataclass(frozen=True)
class Note:
    text: str
    loud: bool = False


@dataclass(frozen=True)
class Drained:
    """The manager has handled every line waiting for it and is about to wait: a burst of output ended.
    Listeners that buffer (the printer's console and file logs) flush here, once per burst, not per line."""


Event = (
    Drained
    | Output
    | Started
    | ChildReady
    | StackReady
    | Exited
    | GaveUp
    | StepDone
    | Restarting
    | Failed
    | Stopping
    | Stopped
    | Note
)
