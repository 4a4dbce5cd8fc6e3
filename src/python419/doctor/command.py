"""The `p419 doctor` Typer command (placeholder until the checks land)."""

from __future__ import annotations

import typer


def doctor() -> None:
    """Diagnose the stack: every known failure mode, each with its fix."""
    typer.echo("p419 doctor: not implemented yet", err=True)
    raise typer.Exit(2)
