"""The report: a rich table for people, or one JSON document (a list of checks) for scripts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict

from rich.console import Console
from rich.table import Table
from rich.text import Text

from python419.doctor.model import Result

STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def exit_code(results: Sequence[Result]) -> int:
    """0 when nothing failed (warnings allowed), 1 otherwise."""
    return 1 if any(r.status == "fail" for r in results) else 0


def to_json(results: Sequence[Result]) -> str:
    """`[{"id", "status", "detail", "fix"}, ...]` in report order; fix is null when there is nothing to do."""
    return json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False)


def summary(results: Sequence[Result], seconds: float) -> str:
    counts = Counter(r.status for r in results)
    return f"{counts['pass']} passed, {counts['warn']} warning(s), {counts['fail']} failed in {seconds:.1f} s"


def table(results: Sequence[Result]) -> Table:
    grid = Table(show_lines=True, expand=False)
    grid.add_column("id", no_wrap=True)
    grid.add_column("status", no_wrap=True)
    grid.add_column("detail", overflow="fold", ratio=3)
    grid.add_column("fix", overflow="fold", ratio=2)
    for r in results:
        # Text, not markup: details quote user code and paths, where "[...]" is not a style.
        grid.add_row(r.id, Text(r.status, style=STYLES[r.status]), Text(r.detail), Text(r.fix or ""))
    return grid


def print_table(results: Sequence[Result], seconds: float, console: Console) -> None:
    console.print(table(results))
    console.print(Text(summary(results, seconds), style=STYLES["fail" if exit_code(results) else "pass"]))
