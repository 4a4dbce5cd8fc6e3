"""What a check reports, and how a check is declared."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from python419.doctor.context import Context
    from python419.settings import Settings

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
    # Checks of the project's interpreter and app: skipped when the p419 configuration is invalid (which
    # interpreter, which app is then unknown; env.values reports why).
    needs_project: bool = False


@dataclass(frozen=True)
class AppChecks:
    """An application's own part of the report, run only when the doctor checks that application: the bundled
    products app has one (python419/products/doctor.py); a user's project has none, so nothing of the
    bundled app (its Telegram settings, its outbox, its task) is ever asked of it."""

    name: str
    # The tasks its Celery app must register and every running worker must have (the wire names).
    tasks: tuple[str, ...]
    # Its checks, each placed after the launcher check named first: (after, check).
    checks: tuple[tuple[str, Check], ...] = ()
    # The variables of its own settings: env.keys suggests them, env.values says where they are set.
    setting_names: frozenset[str] = frozenset()
    # Names people reach for that difflib cannot match to its settings: {"BOT_TOKEN": "TELEGRAM_BOT_TOKEN"}.
    aliases: Mapping[str, str] = field(default_factory=dict)
    # env.values: a warning about valid settings that do not make sense together, as (detail, fix).
    settings_warning: Callable[[Settings], tuple[str, str] | None] = lambda _settings: None
    # The broker queues its messages wait in (the broker probe counts them).
    queues: Callable[[Settings | None], tuple[str, ...]] = lambda _settings: ("celery",)
    # The api check: when the API port is held, does the app's own API answer there? An Outcome when it
    # does (or when it can tell what answers instead), None when it cannot tell.
    api_answers: Callable[[str, int], Outcome | None] = lambda _host, _port: None
    # The app's API, as the api check names it when something else holds its port.
    api_name: str = "the API"
