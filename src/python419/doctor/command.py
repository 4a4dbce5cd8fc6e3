"""The `p419 doctor` Typer command: parse, run every check, print, exit 0 / 1 (2 on bad usage).

Imported by every `p419` invocation, so the checks are imported only when the doctor actually runs.
"""

from __future__ import annotations

import typer


def doctor(
    json_output: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON document (a list of {id, status, detail, fix}) and nothing else.",
    ),
    app: str | None = typer.Option(
        None,
        "--app",
        metavar="MODULE[:ATTR]",
        help="The Celery app to check, as for `celery -A` (default: the project's, else the bundled one).",
    ),
    python: str | None = typer.Option(
        None,
        "--python",
        metavar="PATH",
        help="The project's interpreter or virtualenv (default: VIRTUAL_ENV, .venv/venv/env, poetry/pipenv/uv/pdm).",
    ),
) -> None:
    """Diagnose the stack: every known failure mode, each with its fix. Exit 1 when a check fails."""
    import sys
    import time

    from rich.console import Console

    from python419.doctor.app_spec import parse_app_spec
    from python419.doctor.checks import checks_for
    from python419.doctor.context import build_context
    from python419.doctor.render import exit_code, print_table, to_json
    from python419.doctor.runner import run_checks

    try:
        spec = parse_app_spec(app) if app else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--app") from None
    started = time.monotonic()
    ctx = build_context(spec, python=python)
    results = run_checks(checks_for(ctx.plugin), ctx)
    if json_output:
        sys.stdout.write(to_json(results) + "\n")
    else:
        # Wide when piped, so a logged report is not wrapped at 80 columns.
        console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
        print_table(results, time.monotonic() - started, console)
    sys.stdout.flush()
    raise typer.Exit(exit_code(results))
