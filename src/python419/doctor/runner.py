"""Run every check at once, each on its own daemon thread, and wait for each no longer than its timeout.

Daemon threads rather than a ThreadPoolExecutor: the executor joins its threads at exit, so one hung check
(a socket that never answers) would hold the whole command past its deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from python419.doctor.context import Context
from python419.doctor.model import Check, Outcome, Result, warned


def skipped_for_settings() -> Outcome:
    return warned("not checked: the settings are invalid (see env.values)", "fix env.values first")


def skipped_for_project() -> Outcome:
    return warned(
        "not checked: the p419 configuration is invalid, so which app and interpreter is unknown (see env.values)",
        "fix env.values first",
    )


def run_one(check: Check, ctx: Context) -> Outcome:
    if check.needs_project and ctx.project is None:
        return skipped_for_project()
    if check.needs_settings and ctx.settings is None:
        return skipped_for_settings()
    try:
        return check.run(ctx)
    except Exception as exc:  # a check must never take the report down with it
        return warned(f"could not check: {type(exc).__name__}: {exc}", "run `p419 doctor` again")


class _Slot:
    def __init__(self, check: Check, ctx: Context) -> None:
        self.check = check
        self.done = threading.Event()
        self.outcome: Outcome | None = None
        self._thread = threading.Thread(target=self._run, args=(ctx,), name=f"doctor-{check.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self, ctx: Context) -> None:
        self.outcome = run_one(self.check, ctx)
        self.done.set()


def run_checks(checks: Sequence[Check], ctx: Context) -> list[Result]:
    """Results in the order of `checks`, whatever order they finish in."""
    started = time.monotonic()
    slots = [_Slot(check, ctx) for check in checks]
    for slot in slots:
        slot.start()
    results = []
    for slot in slots:
        check = slot.check
        if slot.done.wait(max(0.0, started + check.timeout - time.monotonic())) and slot.outcome:
            outcome = slot.outcome
        else:
            outcome = Outcome(check.on_timeout, f"timed out after {check.timeout:g} s", check.timeout_fix)
        results.append(
            Result(check.id, outcome.status, ctx.redact(outcome.detail), _redact_fix(ctx, outcome))
        )
    return results


def _redact_fix(ctx: Context, outcome: Outcome) -> str | None:
    return ctx.redact(outcome.fix) if outcome.fix else None
