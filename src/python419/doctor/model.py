"""What a check reports, and how a check is declared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from python419.doctor.context import Context

Status = Literal["pass", "warn", "fail"]
STATUSES: tuple[Status, ...] = ("pass", "warn", "fail")


@dataclass(frozen=True)
class Outcome:
    """What one check found: its verdict, what it saw, and (unless it passed) the one-line fix."""

    status: Status
    detail: str
    fix: str | None = None


def passed(detail: str) -> Outcome:
    return Outcome("pass", detail)


def warned(detail: str, fix: str) -> Outcome:
    return Outcome("warn", detail, fix)


def failed(detail: str, fix: str) -> Outcome:
    return Outcome("fail", detail, fix)


@dataclass(frozen=True)
class Result:
    """An outcome under its check's id: one row of the report."""

    id: str
    status: Status
    detail: str
    fix: str | None = None

    @classmethod
    def of(cls, check_id: str, outcome: Outcome) -> Result:
        return cls(check_id, outcome.status, outcome.detail, outcome.fix)


@dataclass(frozen=True)
class Check:
    id: str
    run: Callable[[Context], Outcome]
    timeout: float = 1.0
    # A check that cannot answer in time is itself a finding; some (a hung broker) are failures.
    on_timeout: Status = "warn"
    timeout_fix: str = "run `p419 doctor` again; if it keeps timing out, that component is hanging"
    # Most checks read the settings; with invalid settings they are skipped (env.values reports why).
    needs_settings: bool = True
